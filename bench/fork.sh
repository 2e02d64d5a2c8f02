#!/usr/bin/env bash
# Fork latency and the child's first-write cost, pyalloc (private heap,
# copied inside fork) against glibc malloc (copy-on-write), for 1, 16 and
# 256 MiB of 64-byte objects, in one VM boot.  Part of `make bench`; writes
# bench/results/fork.csv and bench/results/fork.md.  A benchmark, not a test.
#
#   bench/fork.sh            (FORK_REPS=5 FORK_SIZES="1 16 256")
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
REPS=${FORK_REPS:-5}
SIZES=${FORK_SIZES:-"1 16 256"}
OUT=${BENCH_OUT:-$here/results}

make -C "$top" --no-print-directory vm-module >&2
cc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$top/uapi" \
	-o "$here/forkbench" "$here/forkbench.c"

work=$(mktemp -d "${TMPDIR:-/tmp}/forkbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat >"$work/fork-guest.sh" <<GUEST
set -e
mkdir -p /out
echo "allocator,mib,rep,fork_us,first_write_us" >/out/fork.csv
for mib in $SIZES; do
	for a in pyalloc glibc; do
		./forkbench \$a \$mib $REPS >>/out/fork.csv
	done
done
uname -r >/out/fork-kernel.txt
GUEST
"$top/vm/run.sh" --timeout 900 --mem 3072 --cpu "${BENCH_CPU:-max}" \
	--add "$here/forkbench" --add "$work/fork-guest.sh" \
	--append "slab_debug=- kfence.sample_interval=0 mitigations=${BENCH_MITIGATIONS:-auto}" \
	--log "$top/build/vm/fork-console.log" --out "$work/out" \
	-- sh ./fork-guest.sh >&2
mkdir -p "$OUT"
cp "$work/out/fork.csv" "$OUT/fork.csv"
python3 - "$OUT/fork.csv" "$(cat "$work/out/fork-kernel.txt")" \
	>"$OUT/fork.md" <<'PY'
import csv, datetime, os, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
med = {}
for r in rows:
    k = (r["allocator"], int(r["mib"]))
    med.setdefault(k, ([], []))
    med[k][0].append(float(r["fork_us"]))
    med[k][1].append(float(r["first_write_us"]))
print("Fork latency and the child's first write to every object, median of")
print(f"{len(rows) // max(1, len(med))} forks, 64-byte objects, one VM run "
      f"({datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, guest {sys.argv[2]}, QEMU TCG -cpu {os.environ.get('BENCH_CPU') or 'max'}):")
print()
print("| heap | pyalloc fork | glibc fork | ratio | pyalloc first write | glibc first write | ratio |")
print("|---|---|---|---|---|---|---|")
for mib in sorted({k[1] for k in med}):
    p, g = med[("pyalloc", mib)], med[("glibc", mib)]
    pf, gf = statistics.median(p[0]), statistics.median(g[0])
    pw, gw = statistics.median(p[1]), statistics.median(g[1])
    print(f"| {mib} MiB | {pf/1000:.2f} ms | {gf/1000:.2f} ms | {pf/gf:.1f}x "
          f"| {pw/1000:.2f} ms | {gw/1000:.2f} ms | {pw/gw:.2f}x |")
PY
cat "$OUT/fork.md"
