# shellcheck shell=bash
# Sourced by bench/run.sh and bench/icount/run.sh (bash): the Debian
# packages a benchmark needs, and where the allocators' libraries are.
# The caller defines log().

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
