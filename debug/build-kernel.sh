#!/usr/bin/env bash
# Build the debug kernel of pyalloc's debug lane, once, outside the repo.
#
#   debug/build-kernel.sh          build if needed; print the env file's path
#
# From Debian's linux-source-6.12 (/usr/src/linux-source-6.12.tar.xz, package
# linux-source-6.12): allnoconfig, then debug/base.config (what the guest of
# vm/run.sh needs), then debug/config.fragment (KASAN, lockdep, kmemleak,
# fault injection, ...).  Every option those files set must end up in the
# final .config exactly as written, or the build fails before compiling.
#
# Cache: ${PYALLOC_CACHE:-${XDG_CACHE_HOME:-~/.cache}/pyalloc}/debug-kernel/
#   linux-source-6.12/   the unpacked sources (kept clean: O= build)
#   build/               the build tree; modules build with M= against it
#   bzImage              the kernel vm/run.sh --vmlinuz boots
#   debug.env            VM_KVER= VM_KDIR= VM_VMLINUZ=
#   stamp                hash of the config files and this script
# A rebuild happens only when that hash changes (or the tree is incomplete).
# About 9 minutes of 2 cores the first time; a second when up to date.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${PYALLOC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyalloc}
dk=$CACHE/debug-kernel
tarball=${PYALLOC_LINUX_SOURCE:-/usr/src/linux-source-6.12.tar.xz}
src=$dk/linux-source-6.12
obj=$dk/build
JOBS=${JOBS:-$(nproc)}

log() { printf 'debug-kernel: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

want=$(cat "$here/base.config" "$here/config.fragment" "$here/build-kernel.sh" |
	sha256sum | cut -d' ' -f1)

if [ -f "$dk/stamp" ] && [ "$(cat "$dk/stamp")" = "$want" ] &&
   [ -f "$dk/bzImage" ] && [ -f "$dk/debug.env" ] && [ -f "$obj/Module.symvers" ]; then
	echo "$dk/debug.env"
	exit 0
fi

# Tools the kernel build needs beyond scripts/deps.sh's list.
missing=()
for t in flex:flex bison:bison bc:bc; do
	command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
[ -f /usr/include/libelf.h ] || missing+=(libelf-dev)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ -f "$tarball" ] || missing+=(linux-source-6.12)
if [ ${#missing[@]} -gt 0 ]; then
	SUDO=
	[ "$(id -u)" = 0 ] || SUDO=sudo
	log "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >&2 || {
		$SUDO apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
			--no-install-recommends "${missing[@]}" >&2
	}
fi
[ -f "$tarball" ] || die "no $tarball"

mkdir -p "$dk"
rm -f "$dk/stamp"
if [ ! -f "$src/.pyalloc-unpacked" ]; then
	log "unpacking $tarball"
	rm -rf "$src"
	tar -xf "$tarball" -C "$dk"
	[ -f "$src/Makefile" ] || die "$tarball did not unpack to $src"
	touch "$src/.pyalloc-unpacked"
fi

mk() { nice -n 10 make -C "$src" O="$obj" "$@"; }

log "configuring (allnoconfig + base.config + config.fragment)"
mkdir -p "$obj"
mk -s allnoconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" \
	"$here/base.config" "$here/config.fragment" >/dev/null
mk -s olddefconfig >&2

# Every option the two files set must be in .config as written.
bad=0
while IFS= read -r line; do
	case $line in CONFIG_*=*) ;; *) continue ;; esac
	opt=${line%%=*} val=${line#*=}
	if [ "$val" = n ]; then
		if grep -q "^$opt=" "$obj/.config"; then
			log "$opt should be off: $(grep "^$opt=" "$obj/.config")"
			bad=1
		fi
	elif ! grep -qxF "$line" "$obj/.config"; then
		log "$line did not stick: $(grep -E "^(# )?$opt[= ]" "$obj/.config" || echo absent)"
		bad=1
	fi
done < <(cat "$here/base.config" "$here/config.fragment")
[ "$bad" = 0 ] || die "the configuration is not what debug/*.config asks for"

log "building with $JOBS jobs (nice 10); log: $dk/build.log"
start=$(date +%s)
if ! mk -j"$JOBS" all >"$dk/build.log" 2>&1; then
	tail -n 40 "$dk/build.log" >&2
	die "kernel build failed (see $dk/build.log)"
fi
log "built in $(($(date +%s) - start))s"

kver=$(mk -s kernelrelease)
cp "$obj/arch/x86/boot/bzImage" "$dk/bzImage.tmp"
mv "$dk/bzImage.tmp" "$dk/bzImage"
cat >"$dk/debug.env.tmp" <<EOT
VM_KVER=$kver
VM_KDIR=$obj
VM_VMLINUZ=$dk/bzImage
EOT
mv "$dk/debug.env.tmp" "$dk/debug.env"
echo "$want" >"$dk/stamp"
log "kernel $kver ready"
echo "$dk/debug.env"
