#!/usr/bin/env bash
# The kernel's batches on their own: nanoseconds a block of ALLOC and FREE
# through the raw ABI, blocks freed in allocation order and scattered over
# the heap (bench/batchbench.c), in one VM boot.  Part of `make bench`;
# writes bench/results/batch.csv and bench/results/batch.md.  A benchmark,
# not a test.
#
#   bench/batch.sh            (BATCH_BLOCKS=262144 BATCH_ROUNDS=7)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
BLOCKS=${BATCH_BLOCKS:-262144}
ROUNDS=${BATCH_ROUNDS:-7}
OUT=${BENCH_OUT:-$here/results}

make -C "$top" --no-print-directory vm-module >&2
make -C "$here" --no-print-directory batchbench >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/batchbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$top/vm/run.sh" --timeout 600 --cpu "${BENCH_CPU:-max}" \
	--add "$here/batchbench" \
	--append "slab_debug=- kfence.sample_interval=0 mitigations=${BENCH_MITIGATIONS:-auto}" \
	--log "$top/build/vm/batch-console.log" --out "$work/out" \
	-- sh -c "mkdir -p /out && uname -r >/out/kernel.txt &&
		./batchbench --blocks=$BLOCKS --rounds=$ROUNDS >/out/batch.csv" >&2
mkdir -p "$OUT"
cp "$work/out/batch.csv" "$OUT/batch.csv"
python3 - "$OUT/batch.csv" "$(cat "$work/out/kernel.txt")" \
	"$(git -C "$top" rev-parse --short HEAD 2>/dev/null || true)" \
	>"$OUT/batch.md" <<'PY'
import csv, datetime, os, sys
rows = list(csv.DictReader(open(sys.argv[1])))
r0 = rows[0]
print(f"The kernel's batches, nanoseconds a block: {r0['blocks']} blocks of "
      f"16..128 B in batches of {r0['batch']}, through the raw ABI; median "
      f"of {rows[1]['rounds']} rounds [min-max]; one VM run "
      f"({datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, guest {sys.argv[2]}, "
      f"QEMU TCG -cpu {os.environ.get('BENCH_CPU') or 'max'}, tree {sys.argv[3]}):")
print()
print("| blocks freed | ALLOC | FREE |")
print("|---|---|---|")
by = {(r["order"], r["call"]): r for r in rows}
cell = lambda r: f"{float(r['ns_per_block_median']):.0f} [{float(r['min']):.0f}-{float(r['max']):.0f}]"
for order in ("in order", "scattered"):
    print(f"| {order} | {cell(by[(order, 'ALLOC')])} | {cell(by[(order, 'FREE')])} |")
print()
print(f"The first round's ALLOC, which also gets and zeroes the pages: "
      f"{float(by[('first', 'ALLOC')]['ns_per_block_median']):.0f} ns a block.")
PY
cat "$OUT/batch.md"
