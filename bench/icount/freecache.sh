#!/usr/bin/env bash
# The kernel's FREE path in first-level cache misses, on the host:
# bench/icount/freecache under cachegrind (a 32 KiB, 8-way first level and
# a 1 MiB last level, 64-byte lines, whatever the host's), blocks given
# back in order and scattered; prints misses per freed block in the FREE
# path (pya_free_blocks and what it calls or inlines).  Not part of make
# bench: a check for changes to the layout of kmod/'s pools and arenas.
#
#   bench/icount/freecache.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
make -s --no-print-directory -C "$here" obj/freecache >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/freecache.XXXXXX")
trap 'rm -rf "$work"' EXIT
rounds=4
echo "| blocks freed | D1 read misses a block | D1 write misses a block | instructions a block |"
echo "|---|---|---|---|"
for order in order scattered; do
	valgrind --tool=cachegrind --cache-sim=yes --D1=32768,8,64 \
		--LL=1048576,16,64 --cachegrind-out-file="$work/cg.$order" \
		"$here/obj/freecache" "$order" "$rounds" 2>/dev/null
	cg_annotate --show=Ir,D1mr,D1mw "$work/cg.$order" |
		python3 -c '
import re, sys
order, blocks = sys.argv[1], int(sys.argv[2])
path = ("pya_free_blocks", "commit_free", "pool_put", "arena_release", "arena_destroy")
tot = [0, 0, 0]
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \([^)]*\)\s+([\d,.]+)(?: \([^)]*\))?\s+([\d,.]+)(?: \([^)]*\))?\s+\S+:(\w+)$", line)
    if not m or m.group(4) not in path:
        continue
    for k in range(3):
        v = m.group(k + 1)
        tot[k] += 0 if v == "." else int(v.replace(",", ""))
print(f"| {order} | {tot[1] / blocks:.2f} | {tot[2] / blocks:.2f} | {tot[0] / blocks:.1f} |")
' "$order" $((262144 * rounds))
done
