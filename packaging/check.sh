#!/usr/bin/env bash
# Packaging checks (part of `make check`, on the host; nothing is installed
# into the host's kernel or package database):
#   1. make modules_install for each cached kernel into a staging root:
#      INSTALL_MOD_PATH and INSTALL_MOD_DIR honoured, vermagic right, depmod
#      run when the root holds the kernel's modules and skipped otherwise
#   2. make deb: the four packages, lintian clean (errors, warnings, info and
#      pedantic tags fail; overrides carry their reasons in debian/)
#   3. the packages installed with dpkg into a throw-away root (--root, its
#      own package database, no maintainer script run): every file where it
#      belongs, dpkg --verify clean, a program built and linked against the
#      installed development files and run, the installed tools run
#   4. DKMS builds the packaged module source for each cached kernel, in a
#      throw-away DKMS tree (--dkmstree, --sourcetree, --installtree)
# Ends with "N passed, N failed, N skipped".
#
#   packaging/check.sh [SERIES...]      default: 6.12 6.1
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
CACHE=${PYALLOC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyalloc}
SERIES=("$@")
[ ${#SERIES[@]} -gt 0 ] || SERIES=(6.12 6.1)
work=$top/build/packaging-check
rm -rf "$work"
mkdir -p "$work"
passed=0 failed=0 skipped=0
export PATH="$PATH:/usr/sbin:/sbin"

ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAILED: $*"; }
# expect NAME COMMAND...: pass when the command succeeds; else show its output.
expect() {
	local name=$1
	shift
	if "$@" >"$work/out" 2>&1; then
		ok "$name"
	else
		bad "$name"
		sed 's/^/  | /' "$work/out" | tail -n 25
	fi
}

# What must stay untouched on the host.
host_state() {
	find /lib/modules -name 'pyalloc.ko*' 2>/dev/null | sort
	ls -d /var/lib/dkms/pyalloc /usr/src/pyalloc-* 2>/dev/null || true
	dpkg-query -W -f='${Package}\n' 'pyalloc*' 'libpyalloc*' 2>/dev/null || true
}
host_state >"$work/host.before"

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
dkms_version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' dkms.conf)
lib_version=$(sed -n 's/^VERSION *:= *//p' userspace/Makefile)
expect "one version: debian/changelog $version, dkms.conf $dkms_version, libpyalloc $lib_version" \
	test "$version" = "$dkms_version" -a "$version" = "$lib_version"

# --- 1. make modules_install --------------------------------------------------
modinst() {
	local kdir=$1 krel=$2 root=$work/modroot-$2
	rm -rf "$root"
	# Staging root without the kernel's modules: installed, depmod skipped.
	make --no-print-directory modules_install KDIR="$kdir" \
		INSTALL_MOD_PATH="$root" >"$work/mi1.log" 2>&1 || { cat "$work/mi1.log"; return 1; }
	local ko
	ko=$(ls "$root/lib/modules/$krel/extra/"pyalloc.ko* 2>/dev/null) ||
		{ echo "no pyalloc.ko in $root/lib/modules/$krel/extra"; find "$root"; return 1; }
	modinfo -F vermagic "$ko" | grep -q "^$krel " ||
		{ echo "vermagic of $ko: $(modinfo -F vermagic "$ko")"; return 1; }
	[ ! -e "$root/lib/modules/$krel/modules.dep" ] ||
		{ echo "depmod ran in a root without the kernel's modules"; return 1; }
	grep -q 'DEPMOD  skipped' "$work/mi1.log" || { echo "no note that depmod was skipped"; return 1; }
	# INSTALL_MOD_DIR, and a root that holds the kernel's modules: depmod.
	rm -rf "$root"
	mkdir -p "$root/lib/modules/$krel"
	: >"$root/lib/modules/$krel/modules.order"
	: >"$root/lib/modules/$krel/modules.builtin"
	make --no-print-directory modules_install KDIR="$kdir" INSTALL_MOD_PATH="$root" \
		INSTALL_MOD_DIR=updates/pyalloc-test >"$work/mi2.log" 2>&1 || { cat "$work/mi2.log"; return 1; }
	ls "$root/lib/modules/$krel/updates/pyalloc-test/"pyalloc.ko* >/dev/null ||
		{ echo "INSTALL_MOD_DIR not honoured"; find "$root"; return 1; }
	grep -q '^updates/pyalloc-test/pyalloc.ko[.a-z]*:' "$root/lib/modules/$krel/modules.dep" ||
		{ echo "depmod did not index the module:"; cat "$root/lib/modules/$krel/modules.dep"; return 1; }
}

for s in "${SERIES[@]}"; do
	# shellcheck disable=SC1090
	. "$CACHE/$s.env"
	expect "make modules_install for $VM_KVER (INSTALL_MOD_PATH, INSTALL_MOD_DIR, depmod)" \
		modinst "$VM_KDIR" "$VM_KVER"
done

# --- 2. make deb and lintian ----------------------------------------------------
deb=$work/deb
expect "make deb (dpkg-buildpackage, debhelper 13, dh-dkms)" packaging/make-deb.sh "$deb"
soname=$(objdump -p userspace/libpyalloc.so 2>/dev/null | awk '$1 == "SONAME" {print $2}')
libpkg=$(echo "$soname" | sed -E 's/\.so\.([0-9]+)$/\1/')
pkgs=(pyalloc-dkms "$libpkg" libpyalloc-dev pyalloc-tools)
have_debs() {
	local p
	[ -n "$soname" ] || { echo "no SONAME in userspace/libpyalloc.so"; return 1; }
	for p in "${pkgs[@]}"; do
		ls "$deb/${p}_${version}_"*.deb >/dev/null || return 1
	done
}
expect "packages ${pkgs[*]} (library package named after $soname)" have_debs
expect "lintian --pedantic: no error, warning, info or pedantic tag" \
	lintian --pedantic --fail-on error,warning,info,pedantic \
	"$deb/pyalloc_${version}_"*.changes

# --- 3. install into a throw-away root ----------------------------------------
root=$work/root
install_root() {
	rm -rf "$root"
	mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
	: >"$root/var/lib/dpkg/status"
	local p files=()
	for p in "${pkgs[@]}"; do files+=("$deb/${p}_${version}_"*.deb); done
	# --unpack: files and database, no maintainer script (which would
	# run DKMS); dependencies (dkms, python3, libc6) live on the host.
	dpkg --root="$root" --force-depends --force-not-root --unpack "${files[@]}"
	for p in "${pkgs[@]}"; do
		dpkg --root="$root" -s "$p" | grep -q '^Status: install ok unpacked' ||
			{ echo "$p not unpacked"; return 1; }
	done
	dpkg --root="$root" --verify "${pkgs[@]}"
}
expect "dpkg --root: the packages unpack into a throw-away root, --verify clean" install_root

ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
owns() { # PACKAGE PATH...: each path is in the root and belongs to PACKAGE
	local p=$1 f
	shift
	for f in "$@"; do
		[ -e "$root$f" ] || [ -L "$root$f" ] || { echo "missing $f"; return 1; }
		dpkg --root="$root" -S "$f" | grep -Eq "^$p(:[a-z0-9]+)?: " ||
			{ echo "$f: $(dpkg --root="$root" -S "$f" 2>&1)"; return 1; }
	done
}
udev=$(dpkg --root="$root" -L pyalloc-dkms 2>/dev/null | grep 'rules.d/.*pyalloc.rules$' || true)
files_dkms() {
	owns pyalloc-dkms "/usr/src/pyalloc-$version/dkms.conf" "/usr/src/pyalloc-$version/Kbuild" \
		"/usr/src/pyalloc-$version/kmod/main.c" "/usr/src/pyalloc-$version/uapi/linux/pyalloc.h" \
		/usr/lib/modules-load.d/pyalloc.conf /usr/share/man/man4/pyalloc.4.gz || return 1
	cmp "$root/usr/src/pyalloc-$version/dkms.conf" dkms.conf || return 1
	for f in kmod/*.c kmod/*.h uapi/linux/pyalloc.h Kbuild; do
		cmp "$f" "$root/usr/src/pyalloc-$version/$f" || return 1
	done
	grep -qx pyalloc "$root/usr/lib/modules-load.d/pyalloc.conf" || return 1
	[ -n "$udev" ] || { echo "no udev rule"; return 1; }
	grep -q '^KERNEL=="pyalloc".*MODE="0666"' "$root$udev" || { cat "$root$udev"; return 1; }
	dpkg-deb -I "$deb/pyalloc-dkms_${version}_all.deb" postinst | grep -q dkms ||
		{ echo "no DKMS postinst"; return 1; }
}
expect "pyalloc-dkms: module source, dkms.conf, $udev, modules-load.d, pyalloc(4)" files_dkms
files_lib() {
	owns "$libpkg" "/usr/lib/$ma/$soname" || return 1
	objdump -p "$root/usr/lib/$ma/$soname" | grep -q "SONAME *$soname"
}
expect "$libpkg: /usr/lib/$ma/$soname" files_lib
files_dev() {
	owns libpyalloc-dev /usr/include/pyalloc.h /usr/include/linux/pyalloc.h \
		"/usr/lib/$ma/libpyalloc.a" "/usr/lib/$ma/libpyalloc.so" \
		"/usr/lib/$ma/pkgconfig/pyalloc.pc" /usr/share/man/man3/pyalloc.3.gz || return 1
	cmp uapi/linux/pyalloc.h "$root/usr/include/linux/pyalloc.h" || return 1
	grep -qx "libdir=/usr/lib/$ma" "$root/usr/lib/$ma/pkgconfig/pyalloc.pc" || return 1
	# Build against the root's files only, with pkg-config, and run: a
	# large block needs no device; a small one reports the missing module
	# (the host never loads it) with ENODEV.
	cat >"$work/prog.c" <<'EOF'
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/pyalloc.h>
#include <pyalloc.h>

int main(void)
{
	char *big = pya_malloc(100000), *small;

	if (!big || PYALLOC_MAX_REQUEST != PYA_SMALL_MAX)
		return 1;
	memset(big, 1, 100000);
	pya_free(big);
	small = pya_malloc(24);
	printf("small=%p errno=%d\n", (void *)small, small ? 0 : errno);
	if (small)
		pya_free(small);
	return 0;
}
EOF
	local flags
	flags=$(PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_LIBDIR="$root/usr/lib/$ma/pkgconfig" \
		pkg-config --cflags --libs pyalloc) || return 1
	# shellcheck disable=SC2086
	cc -std=c11 -Wall -Wextra -Werror -o "$work/prog" "$work/prog.c" $flags -pthread || return 1
	[ "$(readelf -d "$work/prog" | grep -c "NEEDED.*$soname")" = 1 ] || return 1
	LD_LIBRARY_PATH="$root/usr/lib/$ma" "$work/prog" >"$work/prog.out" || return 1
	if [ -e /dev/pyalloc ]; then
		grep -q 'small=0x' "$work/prog.out"
	else
		grep -q "small=(nil) errno=$(printf '#include <errno.h>\nENODEV\n' | cpp -P | tail -n1)" "$work/prog.out"
	fi || { cat "$work/prog.out"; return 1; }
}
expect "libpyalloc-dev: headers, static library, pkg-config, pyalloc(3); a program built with them runs" files_dev
files_tools() {
	owns pyalloc-tools /usr/bin/pyallocstat /usr/share/man/man1/pyallocstat.1.gz \
		/usr/share/man/man1/pyalloc-run.1.gz || return 1
	head -n1 "$root/usr/bin/pyallocstat" | grep -qx '#!/usr/bin/python3' || return 1
	PYALLOCSTAT_ROOT=tools/tests/fixtures/machine1 "$root/usr/bin/pyallocstat" -s id |
		grep -q 'Heaps listed: 6' || return 1
	if [ -e tools/pyalloc-run ]; then
		owns pyalloc-tools /usr/bin/pyalloc-run || return 1
	fi
	# The drop-in malloc, when the library builds one; pyalloc-run finds
	# it where the package puts it.
	if grep -q 'libpyalloc-malloc' userspace/Makefile; then
		owns pyalloc-tools "/usr/lib/$ma/libpyalloc-malloc.so" || return 1
		# shellcheck disable=SC2016  # expanded by the inner shell
		"$root/usr/bin/pyalloc-run" sh -c 'echo "$LD_PRELOAD"' >"$work/run.out" || return 1
		[ "$(cat "$work/run.out")" = "$(realpath "$root/usr/lib/$ma/libpyalloc-malloc.so")" ] ||
			{ cat "$work/run.out"; return 1; }
	fi
	MANWIDTH=80 man -l "$root/usr/share/man/man1/pyallocstat.1.gz" | grep -q 'slabtop'
}
expect "pyalloc-tools: pyallocstat, pyalloc-run, the drop-in malloc, man pages; the installed tools run" files_tools

# --- 4. DKMS builds the packaged source -----------------------------------------
dkms_build() {
	local kver=$1 kdir=$2 d=$work/dkms-$1
	rm -rf "$d"
	mkdir -p "$d/tree" "$d/src" "$d/install"
	cp -a "$root/usr/src/pyalloc-$version" "$d/src/"
	local opts=(--dkmstree "$d/tree" --sourcetree "$d/src" --installtree "$d/install")
	dkms add -m pyalloc -v "$version" "${opts[@]}" || return 1
	# Signing would write a key to /var/lib/dkms: none here (sign_file).
	sign_file=/nonexistent dkms build -m pyalloc -v "$version" -k "$kver" \
		--kernelsourcedir "$kdir" "${opts[@]}" || return 1
	local ko
	ko=$(ls "$d/tree/pyalloc/$version/$kver/"*/module/pyalloc.ko*) || return 1
	modinfo -F vermagic "$ko" | grep -q "^$kver " || return 1
	dkms status -m pyalloc "${opts[@]}" | grep -q "pyalloc/$version, $kver, .*: built" || return 1
	[ -z "$(ls -A "$d/install")" ] || { echo "dkms build installed something"; return 1; }
}
for s in "${SERIES[@]}"; do
	# shellcheck disable=SC1090
	. "$CACHE/$s.env"
	expect "dkms build of the packaged source for $VM_KVER (throw-away DKMS tree)" \
		dkms_build "$VM_KVER" "$VM_KDIR"
done

host_state >"$work/host.after"
expect "the host's kernel modules, DKMS tree and package database are untouched" \
	diff "$work/host.before" "$work/host.after"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
