#!/usr/bin/env bash
# `make bench`: pyalloc against glibc, jemalloc, mimalloc and tcmalloc, all
# in one VM run, rendered into bench/results/ (results.md, results.csv,
# throughput.png, memory.png, raw-*.csv), and the table printed.
#
#   bench/run.sh
#
# Environment: BENCH_REPS (throughput repetitions, 15), BENCH_SECS (timed
# seconds per run, 0.4), BENCH_MEMREPS (memory repetitions, 3),
# BENCH_OUT (results directory, bench/results).
#
# Installs its Debian packages if missing (apt-get update only then), builds
# the VM module, libpyalloc and pyabench, and boots the VM once: see
# bench/guest.sh for what runs there and bench/README.md for the method.
# Sized to finish in under 15 minutes on 2 cores without KVM.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
start=$(date +%s)

REPS=${BENCH_REPS:-15}
SECS=${BENCH_SECS:-0.4}
MEMREPS=${BENCH_MEMREPS:-3}
OUT=${BENCH_OUT:-$here/results}

log() { printf 'bench: %s\n' "$*" >&2; }

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
PKGS=(libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 gnuplot-nox python3)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "apt-get install ${missing[*]}"
	$SUDO apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >&2
fi

# The shared object of a package, by name, wherever the package put it.
solib() {
	local f
	f=$(dpkg -L "$1" | grep -E "/$2\$" | head -n1)
	[ -n "$f" ] && [ -e "$f" ] || { log "no $2 in package $1"; exit 1; }
	echo "$f"
}
jemalloc=$(solib libjemalloc2 libjemalloc.so.2)
mimalloc=$(solib libmimalloc2.0 libmimalloc.so.2)
tcmalloc=$(solib libtcmalloc-minimal4 libtcmalloc_minimal.so.4)

make -C "$top" --no-print-directory vm-module lib >&2
make -C "$here" --no-print-directory >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/pyabench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Kernel debugging that vm/run.sh turns on for tests (slab debugging,
# KFENCE sampling) is switched off: it would tax the kernel path (ioctls,
# page faults) that is being measured.
set +e
"$top/vm/run.sh" --timeout 780 \
	--add "$here/pyabench" --add "$here/guest.sh" \
	--add "$jemalloc" --add "$mimalloc" --add "$tcmalloc" \
	--append "slab_debug=- kfence.sample_interval=0" \
	--log "$top/build/vm/bench-console.log" \
	--out "$work/out" \
	-- env REPS="$REPS" SECS="$SECS" MEMREPS="$MEMREPS" sh ./guest.sh \
	>&2 2> >(tee "$work/vm.err" >&2)
rc=$?
wait
set -e
if [ ! -s "$work/out/throughput.csv" ]; then
	log "the VM returned no results (status $rc)"
	exit 1
fi

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
machine="${cpu:-unknown CPU} host ($(nproc) cores), QEMU TCG, 2 vCPUs"
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || true)
elapsed=$(($(date +%s) - start))
# The VM's own time, without any wait for another VM run.
vmtime=$(sed -n 's/.*guest verdict .* after \([0-9]*\)s$/\1/p' "$work/vm.err" | tail -n1)
took="$((elapsed / 60)) min $((elapsed % 60)) s"
[ -n "$vmtime" ] && took+=", of which the VM run $((vmtime / 60)) min $((vmtime % 60)) s"
python3 "$here/render.py" "$work/out" "$OUT" \
	--machine "$machine" --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
	--commit "$commit" --elapsed "$took"
cat "$OUT/results.md"
log "results in $OUT (${elapsed}s)"
# Fork latency of private heaps against glibc (its own VM boot, about 30 s).
BENCH_OUT="$OUT" "$here/fork.sh" >&2 || rc=1
exit "$rc"
