#!/usr/bin/env bash
# The instruction-count benchmark (issue 11) on the host: bench/icount/icount
# under callgrind for every allocator and row, the harness's own count (the
# no-op allocator) subtracted, reported per free+malloc pair in
# $BENCH_OUT/icount.md and icount.csv (bench/results by default).
#
#   bench/icount/run.sh          (make -C bench icount; part of make bench)
#
# Environment: ICOUNT_PAIRS (measured pairs per run, 200000; the same
# number again is run first as a warm-up), ICOUNT_ROWS, BENCH_OUT.
# Installs valgrind and the allocators' Debian packages when missing.
# Takes about a minute on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
OUT=${BENCH_OUT:-$top/bench/results}
PAIRS=${ICOUNT_PAIRS:-200000}
ROWS=${ICOUNT_ROWS:-"steady fixed16 fixed48 fixed512 mix"}

log() { printf 'icount: %s\n' "$*" >&2; }

# shellcheck source=bench/common.sh
. "$here/../common.sh"
bench_deps valgrind libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 python3
bench_allocators

make -s --no-print-directory -C "$here" build >&2

obj=$here/obj
work=$(mktemp -d "${TMPDIR:-/tmp}/icount.XXXXXX")
trap 'rm -rf "$work"' EXIT

# label  binary  --alloc  LD_PRELOAD  the object that must define malloc
configs=(
	"noop icount noop - -"
	"noop-static icount-static noop - -"
	"pyalloc icount pyalloc - -"
	"pyalloc-static icount-static pyalloc - -"
	"pyalloc-malloc icount system $obj/libpyalloc-malloc.so libpyalloc-malloc.so"
	"glibc icount system - libc.so.6"
	"jemalloc icount system $jemalloc libjemalloc.so.2"
	"mimalloc icount system $mimalloc libmimalloc.so.2"
	"tcmalloc icount system $tcmalloc libtcmalloc_minimal.so.4"
)

# one LABEL BINARY ALLOC PRELOAD EXPECT ROW
one() {
	local label=$1 bin=$2 alloc=$3 pre=$4 expect=$5 row=$6 line
	local base=$work/$label.$row
	local env=()
	[ "$pre" = - ] || env=(LD_PRELOAD="$pre")
	if ! env ${env[@]+"${env[@]}"} valgrind --tool=callgrind \
		--collect-atstart=no --callgrind-out-file="$base.cg" \
		"$obj/$bin" --alloc="$alloc" --row="$row" --pairs="$PAIRS" \
		>"$base.out" 2>"$base.err"; then
		log "FAILED: $label $row"; cat "$base.err" >&2; return 1
	fi
	line=$(cat "$base.out")
	if [ "$expect" != - ] && [ "${line##*malloc_from=}" != "$expect" ]; then
		log "$label: malloc came from ${line##*malloc_from=}, not $expect (LD_PRELOAD?)"
		return 1
	fi
}

start=$(date +%s)
for row in $ROWS; do
	for c in "${configs[@]}"; do
		# shellcheck disable=SC2086
		bench_job one $c "$row"
	done
done
bench_jobs_wait

mkdir -p "$OUT"
python3 "$here/report.py" "$work" "$OUT" --pairs "$PAIRS" --rows "$ROWS" \
	--machine "$(bench_callgrind_host)" \
	--date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
	--commit "$(git -C "$top" rev-parse --short HEAD 2>/dev/null || true)" \
	--seconds "$(($(date +%s) - start))"
cat "$OUT/icount.md"
