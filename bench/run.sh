#!/usr/bin/env bash
# `make bench`: pyalloc against glibc, jemalloc, mimalloc and tcmalloc,
# rendered into bench/results/ (results.md, results.csv, icount.md,
# python-icount.md, throughput.png, memory.png, raw-*.csv, fork.md,
# batch.md, python-insn.md), and the tables printed:
#   1. instructions per pair, and of the Python programs, on the host under
#      callgrind (bench/icount/);
#   2. pyabench, every allocator (bench/guest.sh), and
#   3. real programs: Python under each allocator (bench/py/), both in one
#      VM boot with the host's root filesystem;
#   4. fork latency of private heaps (bench/fork.sh), its own boot;
#   5. the kernel's batches alone (bench/batch.sh), its own boot;
#   6. the Python programs once more in a VM whose clock counts
#      instructions (bench/pyinsn.sh, QEMU -icount), its own boot.
#
#   bench/run.sh
#
# Environment: BENCH_REPS (throughput repetitions, 8), BENCH_SECS (timed
# seconds per run, 0.4), BENCH_MEMREPS (memory repetitions, 3),
# BENCH_PYREPS (Python repetitions at most, 9), BENCH_PYMINREPS (at least,
# 3), BENCH_PYBUDGET (seconds the Python repetitions may take, 150: a
# repetition starts only if it should end within it; bench/pyinsn.sh's
# counts, which repeat, took the time of the rest), BENCH_CPU (QEMU's
# -cpu for every boot, max; "max,-erms,-fsrm" to compare, see
# bench/README.md), BENCH_MITIGATIONS (the guest's
# mitigations= : "auto", the kernel's default, unless set; "off" for a
# comparison run), BENCH_OUT (results directory, bench/results).
#
# Installs its Debian packages if missing (apt-get update only then), builds
# the VM module, libpyalloc and pyabench: see bench/README.md for the
# method.  Sized to finish in under 20 minutes on 2 cores without KVM.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
start=$(date +%s)

REPS=${BENCH_REPS:-8}
SECS=${BENCH_SECS:-0.4}
MEMREPS=${BENCH_MEMREPS:-3}
PYREPS=${BENCH_PYREPS:-9}
PYMINREPS=${BENCH_PYMINREPS:-3}
PYBUDGET=${BENCH_PYBUDGET:-150}
MITIGATIONS=${BENCH_MITIGATIONS:-auto}
CPU=${BENCH_CPU:-max}
OUT=${BENCH_OUT:-$here/results}

log() { printf 'bench: %s\n' "$*" >&2; }

# shellcheck source=bench/common.sh
. "$here/common.sh"
bench_deps libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 gnuplot-nox python3
bench_allocators

make -C "$top" --no-print-directory vm-module lib >&2
make -C "$here" --no-print-directory >&2
preload=$top/userspace/libpyalloc-malloc.so
[ -f "$preload" ] || { log "no $preload"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pyabench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

# 1. Instructions per pair on the host (about a minute), and of the Python
# programs (another), before any VM so that nothing else runs beside them.
BENCH_OUT="$OUT" "$here/icount/run.sh" >/dev/null
BENCH_OUT="$OUT" "$here/icount/python.sh" >/dev/null

# Kernel debugging that vm/run.sh turns on for tests (slab debugging,
# KFENCE sampling) is switched off: it would tax the kernel path (ioctls,
# page faults) that is being measured.  vm/run.sh boots with
# mitigations=off for tests; a later mitigations= on the command line
# wins, so the benchmark runs with the kernel's default ("auto"), as on a
# user's machine, unless BENCH_MITIGATIONS says otherwise.
bootargs="slab_debug=- kfence.sample_interval=0 mitigations=$MITIGATIONS"
# 2 and 3 in one boot with the host's root filesystem (vm/run.sh
# --host-fs: the host's python3 and the Debian allocators as they are
# installed here): pyabench (guest.sh), then the Python programs
# (py/driver.py), stock python3 (pymalloc) and PYTHONMALLOC=malloc under
# every allocator.  One boot: runs are serialised on the VM lock, and a
# second boot could wait behind another user's long run.
libdir=$(dirname "$jemalloc")
for f in "$mimalloc" "$tcmalloc"; do
	[ "$(dirname "$f")" = "$libdir" ] || { log "$f is not in $libdir"; exit 1; }
done
set +e
# shellcheck disable=SC2016 # expanded by the guest's shell
"$top/vm/run.sh" --host-fs --timeout 1500 --cpu "$CPU" \
	--add "$here/pyabench" --add "$here/guest.sh" --add "$here/py" \
	--add "$preload" \
	--append "$bootargs" \
	--log "$top/build/vm/bench-console.log" \
	--out "$work/out" \
	-- sh -c 'OUT=/tmp/out LIBDIR="$1" REPS="$2" SECS="$3" MEMREPS="$4" sh ./guest.sh; a=$?
		python3 py/driver.py /tmp/out/python.csv "$5" "$1" "$(pwd)/libpyalloc-malloc.so" "$6" "$7"; b=$?
		[ $a = 0 ] && [ $b = 0 ]' \
	sh "$libdir" "$REPS" "$SECS" "$MEMREPS" "$PYREPS" "$PYMINREPS" "$PYBUDGET" \
	>&2 2> >(tee "$work/vm.err" >&2)
rc=$?
wait
set -e
if [ ! -s "$work/out/throughput.csv" ]; then
	log "the VM returned no results (status $rc)"
	exit 1
fi
[ -s "$work/out/python.csv" ] || log "no Python results (status $rc)"
vmtime=$(sed -n 's/.*guest verdict .* after \([0-9]*\)s$/\1/p' "$work/vm.err" | tail -n1)

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
machine="${cpu:-unknown CPU} host ($(nproc) cores), QEMU TCG -cpu $CPU, 2 vCPUs"
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || true)
elapsed=$(($(date +%s) - start))
# The VMs' own time, without any wait for another VM run.
took="$((elapsed / 60)) min $((elapsed % 60)) s"
[ -n "$vmtime" ] && took+=", of which the VM run (pyabench and Python) $((vmtime / 60)) min $((vmtime % 60)) s"
python3 "$here/render.py" "$work/out" "$OUT" \
	--machine "$machine" --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
	--commit "$commit" --elapsed "$took"
cat "$OUT/results.md" "$OUT/icount.md" "$OUT/python-icount.md"
log "results in $OUT (${elapsed}s)"
# Fork latency of private heaps against glibc (its own VM boot, about 30 s).
BENCH_OUT="$OUT" "$here/fork.sh" >&2 || rc=1
# The kernel's ALLOC and FREE per block (its own VM boot, about 15 s).
BENCH_OUT="$OUT" "$here/batch.sh" >&2 || rc=1
# Python's instructions, the kernel's included (its own boot, about 2 min).
BENCH_OUT="$OUT" "$here/pyinsn.sh" >&2 || rc=1
exit "$rc"
