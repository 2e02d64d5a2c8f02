# shellcheck shell=bash
# Sourced by bench/run.sh, bench/icount/run.sh and bench/icount/python.sh
# (bash): the Debian packages a benchmark needs, where the allocators'
# libraries are, and what the host-side runs share.  The caller defines
# log().

# bench_deps PKG...: apt-get install the ones missing (update only then).
bench_deps() {
	local sudo='' p missing=()
	[ "$(id -u)" = 0 ] || sudo=sudo
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	log "apt-get install ${missing[*]}"
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >&2
}

# The shared object of a package, by name, wherever the package put it.
solib() {
	local f
	f=$(dpkg -L "$1" | grep -E "/$2\$" | head -n1)
	[ -n "$f" ] && [ -e "$f" ] || { log "no $2 in package $1"; exit 1; }
	echo "$f"
}

# jemalloc, mimalloc, tcmalloc: the paths of the Debian libraries.
bench_allocators() {
	jemalloc=$(solib libjemalloc2 libjemalloc.so.2)
	mimalloc=$(solib libmimalloc2.0 libmimalloc.so.2)
	tcmalloc=$(solib libtcmalloc-minimal4 libtcmalloc_minimal.so.4)
}

# bench_job CMD...: run CMD in the background, at most two at a time (the
# machine has 2 cores); bench_jobs_wait waits for the rest.  A failed job
# ends the script.
bench_pids=()
bench_job() {
	"$@" &
	bench_pids+=($!)
	if [ ${#bench_pids[@]} -ge 2 ]; then
		wait "${bench_pids[0]}" || exit 1
		bench_pids=("${bench_pids[@]:1}")
	fi
}
bench_jobs_wait() {
	local p
	for p in "${bench_pids[@]}"; do wait "$p" || exit 1; done
	bench_pids=()
}

# The host of a callgrind table: its CPU, cores and valgrind.
bench_callgrind_host() {
	local cpu
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
	echo "${cpu:-unknown CPU} host ($(nproc) cores), $(valgrind --version)"
}
