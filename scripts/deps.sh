#!/usr/bin/env bash
# Install everything pyalloc needs to build and test, idempotently.
#
#   scripts/deps.sh [SERIES...]     SERIES: 6.12 (default), 6.1
#
# Debian packages are installed with apt (root).  The guest kernel image and
# the kselftest/checkpatch files are unpacked into a cache outside the repo,
# never into /boot or the tree:
#   $PYALLOC_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/pyalloc)
#     kernel-<abiname>/vmlinuz       guest kernel matching the headers
#     kernel-<abiname>/kdir          symlink to the matching headers
#     <series>.env                   VM_KVER= VM_KDIR= VM_VMLINUZ= for the Makefile
#     ksft/                          kselftest_harness.h, kselftest.h, runner
#     scripts/checkpatch.pl          with spelling.txt, const_structs.checkpatch
# When everything is present this takes a second or two.
set -euo pipefail

CACHE=${PYALLOC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyalloc}
mkdir -p "$CACHE"
SERIES=("$@")
[ ${#SERIES[@]} -gt 0 ] || SERIES=(6.12)

log() { printf 'deps: %s\n' "$*" >&2; }

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

HOST_PKGS=(qemu-system-x86 busybox-static cpio xz-utils gcc make libc6-dev file
	   sparse perl bc kmod libelf-dev)
# Packaging, reference docs and pyallocstat (packaging/check.sh,
# docs/check.sh, tools/tests/): DKMS, Debian packages, lintian, man page
# linters, docutils for the reST page, Debian's python3 for the guest.
HOST_PKGS+=(dkms debhelper dh-dkms dpkg-dev fakeroot lintian pkgconf binutils
	    mandoc groff-base man-db python3 python3-docutils)
# The drop-in malloc's proof on real programs (scripts/check.sh, preload
# lane): Debian's CPython and its regression tests, a C++ compiler.
HOST_PKGS+=(python3.11 libpython3.11-testsuite g++ dash)

apt_updated=
apt_update() {
	[ -n "$apt_updated" ] && return 0
	log "apt-get update"
	$SUDO apt-get update -qq >&2
	apt_updated=1
}

apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	apt_update
	log "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >&2
}

# The ABI name (e.g. 6.12.117+deb12-amd64) of the newest kernel of a series
# for which both the headers and the unsigned image are available.
resolve_abiname() {
	local series=$1 name
	case $series in
	6.12)
		name=$(apt-cache depends linux-headers-6.12-amd64 2>/dev/null |
			sed -n 's/.*Depends: linux-headers-\(6\.12\..*-amd64\)$/\1/p' |
			head -n1)
		if [ -z "$name" ]; then
			apt_update
			name=$(apt-cache depends linux-headers-6.12-amd64 |
				sed -n 's/.*Depends: linux-headers-\(6\.12\..*-amd64\)$/\1/p' |
				head -n1)
		fi
		;;
	6.1)
		local list
		list=$(apt-cache search --names-only '^linux-headers-6\.1\.0-[0-9]+-amd64$' |
			awk '{print $1}')
		if [ -z "$list" ]; then
			apt_update
			list=$(apt-cache search --names-only '^linux-headers-6\.1\.0-[0-9]+-amd64$' |
				awk '{print $1}')
		fi
		name=
		for p in $(echo "$list" | sed 's/^linux-headers-//' | sort -V -r); do
			if apt-cache show "linux-image-$p-unsigned" >/dev/null 2>&1; then
				name=$p
				break
			fi
		done
		;;
	*)
		log "unknown kernel series '$series' (want 6.12 or 6.1)"
		return 1
		;;
	esac
	[ -n "$name" ] || { log "cannot resolve a $series kernel"; return 1; }
	echo "$name"
}

setup_kernel() {
	local series=$1 abiname dir
	# Fast path: the env file names a kernel whose files are all there.
	if [ -f "$CACHE/$series.env" ]; then
		# shellcheck disable=SC1090
		. "$CACHE/$series.env"
		if [ -f "$VM_VMLINUZ" ] && [ -f "$VM_KDIR/Makefile" ]; then
			return 0
		fi
	fi
	abiname=$(resolve_abiname "$series")
	dir=$CACHE/kernel-$abiname
	apt_install "linux-headers-$abiname"
	if [ ! -f "$dir/vmlinuz" ]; then
		log "fetching linux-image-$abiname-unsigned"
		local tmp
		tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
		(cd "$tmp" && apt-get download -qq "linux-image-$abiname-unsigned" >&2) || {
			apt_update
			(cd "$tmp" && apt-get download -qq "linux-image-$abiname-unsigned" >&2)
		}
		mkdir -p "$tmp/x"
		dpkg-deb -x "$tmp"/linux-image-*.deb "$tmp/x"
		mkdir -p "$dir"
		cp "$tmp/x/boot/vmlinuz-$abiname" "$dir/vmlinuz.tmp"
		cp "$tmp/x/boot/config-$abiname" "$dir/config"
		mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
		rm -rf "$tmp"
	fi
	cat >"$CACHE/$series.env.tmp" <<EOT
VM_KVER=$abiname
VM_KDIR=/usr/src/linux-headers-$abiname
VM_VMLINUZ=$dir/vmlinuz
EOT
	mv "$CACHE/$series.env.tmp" "$CACHE/$series.env"
	log "kernel $series: $abiname"
}

# kselftest framework files and checkpatch.pl from Debian's linux-source-6.12.
setup_source_files() {
	local want=(ksft/kselftest_harness.h ksft/kselftest.h ksft/runner.sh
		    ksft/ktap_helpers.sh scripts/checkpatch.pl
		    scripts/spelling.txt scripts/const_structs.checkpatch)
	local f ok=1
	for f in "${want[@]}"; do [ -f "$CACHE/$f" ] || ok=; done
	[ -n "$ok" ] && return 0
	apt_install linux-source-6.12
	local tarball
	tarball=$(ls -1 /usr/src/linux-source-6.12*.tar.* 2>/dev/null | sort -V | tail -n1)
	[ -n "$tarball" ] || { log "linux-source-6.12 tarball not found"; return 1; }
	local top
	top=$(basename "$tarball" | sed 's/\.tar\..*//')
	log "extracting kselftest and checkpatch from $tarball"
	local tmp
	tmp=$(mktemp -d "$CACHE/src.XXXXXX")
	tar -xf "$tarball" -C "$tmp" \
		"$top/tools/testing/selftests/kselftest_harness.h" \
		"$top/tools/testing/selftests/kselftest.h" \
		"$top/tools/testing/selftests/lib.mk" \
		"$top/tools/testing/selftests/run_kselftest.sh" \
		"$top/tools/testing/selftests/kselftest" \
		"$top/scripts/checkpatch.pl" \
		"$top/scripts/spelling.txt" \
		"$top/scripts/const_structs.checkpatch"
	mkdir -p "$CACHE/ksft" "$CACHE/scripts"
	cp "$tmp/$top"/tools/testing/selftests/{kselftest_harness.h,kselftest.h,lib.mk,run_kselftest.sh} "$CACHE/ksft/"
	cp "$tmp/$top"/tools/testing/selftests/kselftest/* "$CACHE/ksft/"
	cp "$tmp/$top"/scripts/{checkpatch.pl,spelling.txt,const_structs.checkpatch} "$CACHE/scripts/"
	rm -rf "$tmp"
}

# The modules vm/run.sh --host-fs loads to mount the host's root over 9p
# (virtio), with what they depend on, from the same Debian image as the
# guest kernel: kernel-<abiname>/hostfs/*.ko, in load order in
# hostfs/modules.order.
setup_hostfs_modules() {
	local series=$1 dir tmp mods m order=()
	# shellcheck disable=SC1090
	. "$CACHE/$series.env"
	dir=$(dirname "$VM_VMLINUZ")
	[ -f "$dir/hostfs/modules.order" ] && return 0
	log "fetching the 9p modules of linux-image-$VM_KVER-unsigned"
	tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
	(cd "$tmp" && apt-get download -qq "linux-image-$VM_KVER-unsigned" >&2) || {
		apt_update
		(cd "$tmp" && apt-get download -qq "linux-image-$VM_KVER-unsigned" >&2)
	}
	dpkg-deb -x "$tmp"/linux-image-*.deb "$tmp/x"
	mods=$tmp/x/lib/modules/$VM_KVER
	mkdir -p "$dir/hostfs.tmp"
	# Depth-first over modinfo's "depends": dependencies load first.
	add_mod() {
		local name=$1 f d
		case " ${order[*]-} " in *" $name "*) return 0 ;; esac
		f=$(find "$mods" -name "$name.ko" -o -name "$name.ko.xz" | head -n1)
		[ -n "$f" ] || return 0	# built in
		for d in $(modinfo -F depends "$f" | tr ',' ' '); do
			add_mod "$d"
		done
		case $f in
		*.xz) xz -dc "$f" >"$dir/hostfs.tmp/$name.ko" ;;
		*) cp "$f" "$dir/hostfs.tmp/$name.ko" ;;
		esac
		order+=("$name")
	}
	for m in virtio_pci 9pnet_virtio 9p; do
		add_mod "$m"
	done
	printf '%s\n' "${order[@]}" >"$dir/hostfs.tmp/modules.order"
	rm -rf "$dir/hostfs" "$tmp"
	mv "$dir/hostfs.tmp" "$dir/hostfs"
	log "hostfs modules for $VM_KVER: ${order[*]}"
}

apt_install "${HOST_PKGS[@]}"
for s in "${SERIES[@]}"; do
	setup_kernel "$s"
	setup_hostfs_modules "$s"
done
setup_source_files
log "ready (cache: $CACHE)"
