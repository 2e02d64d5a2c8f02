#!/usr/bin/env bash
# The Python programs of bench/py/ once more, in a VM whose clock counts
# instructions (QEMU -icount shift=0: a guest nanosecond per instruction
# retired, whatever the host does), measuring each process's processor
# time, user and system: the instructions it retired, pyalloc's ioctls
# and page faults included.  Part of `make bench` (its own boot, about
# 2 minutes); writes bench/results/python-insn.csv and python-insn.md.
#
# Why beside the wall times of run.sh's boot: under TCG one process often
# runs twice as long as the next on a busy host, too noisy to tell 5%;
# these counts repeat to about 1%.  Why beside callgrind's counts
# (icount/python.sh): those see user space only, these the kernel's part
# too, the real module's rather than the host stand-in's.  What they do
# not see: cache misses, the cost of a system call's entry beyond its
# instructions, and TCG's own costs (a call through a pointer is one
# instruction here).  A string instruction's repetitions count one each
# (`rep stosb` clearing a page: 4096).
#
#   bench/pyinsn.sh          (PYINSN_REPS=2 PYINSN_ALLOCS=glibc,mimalloc)
#
# A fixed hash seed, as icount/python.sh has: with a random one, dicts and
# sets collide differently in every process and the counts move by 2%.
# Two repetitions, since they agree to about 1% (the table shows both),
# and beside pymalloc and pyalloc only glibc and mimalloc (the baseline
# and the closest peer; jemalloc and tcmalloc are in the wall-time table
# and callgrind's): single-threaded TCG counting instructions runs about
# a minute a repetition of the four, and `make bench` keeps to 20 minutes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
REPS=${PYINSN_REPS:-2}
ALLOCS=${PYINSN_ALLOCS:-glibc,mimalloc}
OUT=${BENCH_OUT:-$here/results}

log() { printf 'pyinsn: %s\n' "$*" >&2; }

# shellcheck source=bench/common.sh
. "$here/common.sh"
bench_deps libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 python3
bench_allocators
make -C "$top" --no-print-directory vm-module lib >&2
preload=$top/userspace/libpyalloc-malloc.so
libdir=$(dirname "$jemalloc")

work=$(mktemp -d "${TMPDIR:-/tmp}/pyinsn.XXXXXX")
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2016 # expanded by the guest's shell
"$top/vm/run.sh" --host-fs --icount 0 --timeout 900 --cpu "${BENCH_CPU:-max}" \
	--add "$here/py" --add "$preload" \
	--append "slab_debug=- kfence.sample_interval=0 mitigations=${BENCH_MITIGATIONS:-auto}" \
	--log "$top/build/vm/pyinsn-console.log" --out "$work/out" \
	-- sh -c 'PYTHONHASHSEED=0 DRIVER_ALLOCS="$3" python3 py/driver.py /tmp/out/python.csv "$2" "$1" "$(pwd)/libpyalloc-malloc.so"' \
	sh "$libdir" "$REPS" "$ALLOCS" >&2
mkdir -p "$OUT"
cp "$work/out/python.csv" "$OUT/python-insn.csv"
# The verdict is render.py's, as for the wall times: a spread that holds
# 1.05 is noise.
PYTHONPATH=$here python3 - "$OUT/python-insn.csv" "$work/out/python-guest.txt" \
	"$(git -C "$top" rev-parse --short HEAD 2>/dev/null || true)" \
	>"$OUT/python-insn.md" <<'PY'
import collections, csv, datetime, os, statistics, sys
from render import py_verdict
rows = list(csv.DictReader(open(sys.argv[1])))
info = dict(l.rstrip("\n").split(": ", 1) for l in open(sys.argv[2]) if ": " in l)
cpu = collections.defaultdict(dict)
for r in rows:
    cpu[r["program"], r["rep"]][r["alloc"]] = float(r["cpu_s"])
progs = list(dict.fromkeys(r["program"] for r in rows))
allocs = [a for a in ("pymalloc", "glibc", "jemalloc", "mimalloc", "tcmalloc",
                      "pyalloc") if any(r["alloc"] == a for r in rows)]
names = {"startup": "start-up only (`-c pass`)", "churn": "dict/list/str churn",
         "json": "JSON round trip", "gcgraph": "object graph + cyclic GC"}
reps = max(int(r["rep"]) for r in rows)


def ratios(p, a):
    """@a's per-repetition ratios to pymalloc on program @p, sorted."""
    return sorted(c[a] / c["pymalloc"] for (pp, _), c in cpu.items()
                  if pp == p and a in c and "pymalloc" in c)


print(f"Python {info.get('python', '?')}, processor time (user and system) of each "
      f"process in a VM whose clock counts instructions (QEMU `-icount "
      f"shift=0`, -cpu {os.environ.get('BENCH_CPU') or 'max'}, guest "
      f"{info.get('kernel', '?')}, mitigations as in the other boots), as "
      f"ratios to stock python3 (pymalloc) in the same repetition: median "
      f"of {reps} [lowest-highest]; pymalloc's column is its count, in "
      f"millions of instructions. {datetime.datetime.utcnow():%Y-%m-%d %H:%M} "
      f"UTC, tree `{sys.argv[3]}`, programs: {info.get('programs', '?')}.")
print()
print("| program | " + " | ".join(allocs) + " |")
print("|---" * (len(allocs) + 1) + "|")
for p in progs:
    cells = []
    for a in allocs:
        if a == "pymalloc":
            v = [c[a] for (pp, _), c in cpu.items() if pp == p and a in c]
            cells.append(f"{statistics.median(v) * 1000:.0f} M")
            continue
        r = ratios(p, a)
        cells.append(f"{statistics.median(r):.3f}x [{r[0]:.3f}-{r[-1]:.3f}]"
                     if r else "-")
    print(f"| {names.get(p, p)} | " + " | ".join(cells) + " |")
print()
for p in progs:
    if p == "startup":
        continue
    r = ratios(p, "pyalloc")
    if not r:
        continue
    m = statistics.median(r)
    print(f"- {names.get(p, p)}: pyalloc within 5% of pymalloc in instructions: "
          f"{m:.3f}x [{r[0]:.3f}-{r[-1]:.3f}], "
          + py_verdict(m, r[0], r[-1], spread="spread"))
PY
cat "$OUT/python-insn.md"
