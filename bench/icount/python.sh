#!/usr/bin/env bash
# The Python programs of bench/py/ under callgrind on the host (issue 11):
# the whole run's instructions under stock python3 (CPython's pymalloc) and
# with PYTHONMALLOC=malloc under glibc, jemalloc, mimalloc, tcmalloc and
# pyalloc's drop-in over the host stand-in of the device, whose own
# instructions (what the kernel does with the real device) are counted
# apart.  Repeatable where the VM's wall times move by several percent
# from one run to the next; it counts user space only, and no page fault,
# system call or cache miss.  Writes $BENCH_OUT/python-icount.md and .csv.
#
#   bench/icount/python.sh     (make -C bench icount; part of make bench)
#
# Environment: ICOUNT_PY ("program args" lines, smaller than the VM's so
# that callgrind takes about a minute), BENCH_OUT.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
OUT=${BENCH_OUT:-$top/bench/results}
PY=${ICOUNT_PY:-"churn.py 3000
jsonrt.py 1
gcgraph.py 1"}
python=/usr/bin/python3

log() { printf 'icount-python: %s\n' "$*" >&2; }

# shellcheck source=bench/common.sh
. "$here/../common.sh"
bench_deps valgrind libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 python3
bench_allocators

make -s --no-print-directory -C "$here" build >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/icount-py.XXXXXX")
trap 'rm -rf "$work"' EXIT

# label  LD_PRELOAD (- none)  PYTHONMALLOC (- unset)
configs=(
	"pymalloc - -"
	"glibc - malloc"
	"jemalloc $jemalloc malloc"
	"mimalloc $mimalloc malloc"
	"tcmalloc $tcmalloc malloc"
	"pyalloc-malloc $here/obj/libpyalloc-malloc.so malloc"
)

# one LABEL PRELOAD PYTHONMALLOC PROGRAM [ARGS...]
one() {
	local label=$1 pre=$2 pm=$3 prog=$4
	shift 4
	local env=() base=$work/$label.${prog%.py}
	[ "$pre" = - ] || env+=(LD_PRELOAD="$pre")
	[ "$pm" = - ] || env+=(PYTHONMALLOC="$pm")
	# A fixed hash seed: with a random one, dicts and sets collide
	# differently in every process and the counts move by 2%.
	env+=(PYTHONHASHSEED=0)
	if ! (cd "$top/bench/py" && env -u PYTHONMALLOC -u LD_PRELOAD \
		${env[@]+"${env[@]}"} valgrind --tool=callgrind \
		--callgrind-out-file="$base.cg" "$python" "$prog" "$@" \
		>"$base.out" 2>"$base.err"); then
		log "FAILED: $label $prog"; cat "$base.err" >&2; return 1
	fi
}

start=$(date +%s)
while read -r line; do
	[ -n "$line" ] || continue
	for c in "${configs[@]}"; do
		# shellcheck disable=SC2086 # words on purpose
		bench_job one $c $line
	done
done <<<"$PY"
bench_jobs_wait

mkdir -p "$OUT"
python3 "$here/pyreport.py" "$work" "$OUT" --programs "$PY" \
	--python "$("$python" -c 'import sys; print(sys.version.split()[0])')" \
	--machine "$(bench_callgrind_host)" \
	--date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
	--commit "$(git -C "$top" rev-parse --short HEAD 2>/dev/null || true)" \
	--seconds "$(($(date +%s) - start))"
cat "$OUT/python-icount.md"
