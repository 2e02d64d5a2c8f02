#!/bin/sh
# The benchmark inside the VM, started by bench/run.sh in the host's root
# filesystem (vm/run.sh --host-fs, in /tmp/pyalloc; busybox sh in
# /pyalloc works too): every allocator x workload x repetition as its own process,
# repetitions outermost and the allocators' order rotated every repetition,
# so that drift and host load spread over all allocators alike.
# Results go to $OUT (/out; copied back by vm/run.sh):
#   /out/throughput.csv  /out/memory.csv  /out/frag.csv  /out/guest.txt
#   /out/failures.txt
#
# Environment: REPS (throughput repetitions), SECS (timed seconds per run),
# MEMREPS (memory and fragmentation repetitions), MEMCOUNT (live objects),
# SETTLE (seconds to wait after the frees before measuring again), ALLOCS,
# WORKLOADS, OUT, LIBDIR (where libjemalloc.so.2, libmimalloc.so.2 and
# libtcmalloc_minimal.so.4 are; default the current directory),
# PYALLOC_MALLOC (libpyalloc-malloc.so; default in the current directory).
#
# pyalloc is measured through its own API (libpyalloc.a: pyalloc, and
# pyalloc-debug without magazines) and as a process's malloc, the way the
# others are: pyalloc-malloc is libpyalloc-malloc.so in LD_PRELOAD.
set -u
REPS=${REPS:-10}
SECS=${SECS:-0.5}
MEMREPS=${MEMREPS:-3}
MEMCOUNT=${MEMCOUNT:-1000000}
SETTLE=${SETTLE:-1}
ALLOCS=${ALLOCS:-"pyalloc pyalloc-malloc pyalloc-debug glibc jemalloc mimalloc tcmalloc"}
WORKLOADS=${WORKLOADS:-"steady growth prodcons fixed16 fixed48 fixed512 larson wide mix"}
MEMSIZES=${MEMSIZES:-"24 48 512"}

out=${OUT:-/out}
here=$(pwd)
LIBDIR=${LIBDIR:-$here}
PYALLOC_MALLOC=${PYALLOC_MALLOC:-$here/libpyalloc-malloc.so}
mkdir -p "$out"
: >"$out"/failures.txt

{
	echo "kernel: $(uname -r)"
	echo "cpus: $(grep -c ^processor /proc/cpuinfo)"
	echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
	echo "memory: $(sed -n 's/^MemTotal: *//p' /proc/meminfo)"
	echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	echo "cmdline: $(cat /proc/cmdline)"
	echo "params: REPS=$REPS SECS=$SECS MEMREPS=$MEMREPS MEMCOUNT=$MEMCOUNT SETTLE=$SETTLE"
	# What the CPU mitigations are (the kernel's default unless the
	# command line says otherwise).
	for f in /sys/devices/system/cpu/vulnerabilities/*; do
		[ -f "$f" ] && echo "vulnerability ${f##*/}: $(cat "$f")"
	done
} >"$out"/guest.txt

# rotate N WORDS...: the words, starting at the N-th (0-based, modulo)
rotate() {
	n=$1
	shift
	k=$(($n % $#))
	i=0
	first= rest=
	for x in "$@"; do
		if [ $i -lt $k ]; then rest="$rest $x"; else first="$first $x"; fi
		i=$((i + 1))
	done
	echo $first $rest
}

# run LABEL ARGS...: one pyabench process on allocator LABEL
run() {
	label=$1
	shift
	case $label in
	pyalloc|pyalloc-debug)
		set -- ./pyabench --alloc="$label" --label="$label" "$@" ;;
	pyalloc-malloc)
		set -- env LD_PRELOAD="$PYALLOC_MALLOC" \
			./pyabench --alloc=system --label=pyalloc-malloc "$@" ;;
	glibc)
		set -- ./pyabench --alloc=system --label=glibc "$@" ;;
	jemalloc)
		set -- env LD_PRELOAD="$LIBDIR/libjemalloc.so.2" \
			./pyabench --alloc=system --label=jemalloc "$@" ;;
	mimalloc)
		set -- env LD_PRELOAD="$LIBDIR/libmimalloc.so.2" \
			./pyabench --alloc=system --label=mimalloc "$@" ;;
	tcmalloc)
		set -- env LD_PRELOAD="$LIBDIR/libtcmalloc_minimal.so.4" \
			./pyabench --alloc=system --label=tcmalloc "$@" ;;
	esac
	if ! line=$("$@"); then
		echo "FAILED: $*" >>"$out"/failures.txt
		echo "pyabench: FAILED: $*" >&2
		return 1
	fi
	echo "$line"
	echo "  $line" >&2
}

wargs() {
	case $1 in
	steady) echo "--workload=steady --live=20000" ;;
	growth) echo "--workload=growth --count=20000" ;;
	prodcons) echo "--workload=prodcons" ;;
	fixed*) echo "--workload=fixed --live=20000 --size=${1#fixed}" ;;
	larson) echo "--workload=larson --threads=4" ;;
	wide) echo "--workload=wide --live=2000" ;;
	mix) echo "--workload=mix --live=20000" ;;
	esac
}

./pyabench --header --workload=steady >"$out"/throughput.csv
./pyabench --header --workload=mem >"$out"/memory.csv
./pyabench --header --workload=frag >"$out"/frag.csv

t0=$(date +%s)
rep=1
while [ $rep -le "$REPS" ]; do
	order=$(rotate $((rep - 1)) $ALLOCS)
	for w in $WORKLOADS; do
		for a in $order; do
			# shellcheck disable=SC2046
			run "$a" $(wargs "$w") --seconds="$SECS" --rep=$rep \
				>>"$out"/throughput.csv
		done
	done
	echo "pyabench: throughput repetition $rep done after $(($(date +%s) - t0))s"
	rep=$((rep + 1))
done

# Memory: the debug heap holds the same pages as the default heap (it only
# skips the magazines), so it is not measured separately.
rep=1
while [ $rep -le "$MEMREPS" ]; do
	for z in $MEMSIZES; do
		for a in $ALLOCS; do
			[ "$a" = pyalloc-debug ] && continue
			run "$a" --workload=mem --size="$z" --count="$MEMCOUNT" \
				--settle="$SETTLE" --rep=$rep >>"$out"/memory.csv
		done
	done
	for a in $ALLOCS; do
		[ "$a" = pyalloc-debug ] && continue
		run "$a" --workload=frag --count="$MEMCOUNT" --rep=$rep \
			>>"$out"/frag.csv
	done
	echo "pyabench: memory repetition $rep done after $(($(date +%s) - t0))s"
	rep=$((rep + 1))
done

cat "$out"/throughput.csv "$out"/memory.csv "$out"/frag.csv
[ ! -s "$out"/failures.txt ]
