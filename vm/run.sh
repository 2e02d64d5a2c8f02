#!/usr/bin/env bash
# Boot a Debian kernel in QEMU with pyalloc.ko loaded and run something.
#
#   vm/run.sh [options] --selftests DIR        run the kselftest collection
#   vm/run.sh [options] [--add FILE]... -- CMD  run CMD in /pyalloc
#   vm/run.sh [options] --selftests DIR [--add FILE]... -- CMD
#                                              both, in one boot: the
#                                              selftests, then CMD
#
# Options:
#   --kernel SERIES    6.12 (default) or 6.1: the cached Debian kernel
#   --vmlinuz FILE     boot this kernel instead (e.g. the debug kernel)
#   --module FILE      pyalloc.ko to load (default: build/kmod-<kver>/pyalloc.ko)
#   --modparams "..."  parameters for insmod
#   --add FILE         copy FILE (with the shared libraries it needs) to
#                      /pyalloc in the guest; repeatable
#   --out DIR          copy the guest's /out directory back into DIR
#   --log FILE         full console log (default build/vm/console.log)
#   --timeout SECS     hard limit for the whole VM run (default 900)
#   --mem MB           guest memory (default 2048)
#   --cpu MODEL        QEMU's -cpu (default max; the benchmarks pass
#                      $BENCH_CPU, e.g. max,-erms,-fsrm: see bench/README.md)
#   --icount SHIFT     run with QEMU's -icount shift=SHIFT,sleep=off: the
#                      guest's clock follows the instructions it retires
#                      (one every 2^SHIFT ns), not the host's, so the time
#                      a guest program measures repeats whatever else the
#                      host runs (single-threaded TCG: the vCPUs take
#                      turns); bench/pyinsn.sh boots with --icount 0
#   --append "..."     extra kernel command line
#   --slab-debug FLAGS slab_debug= flags (default FZPU; "-" for none, as on
#                      the KASAN kernel of the debug lane, where they only
#                      repeat KASAN's checks and cost time)
#   --host-fs          run CMD in the host's root filesystem, shared
#                      read-only over 9p (virtio): chroot with /proc, /sys,
#                      /dev (pyalloc included), /dev/shm and /tmp of the
#                      guest's own; the working directory /tmp/pyalloc holds
#                      the --add files; PATH also has this tree's tools/
#
# The guest's verdict is the exit status: the command's status, or for
# --selftests 0 only if no test reported "not ok" (with both, the first
# failure).  Whatever happens the
# run ends: a failure status is pre-seeded (a guest that dies or hangs never
# reports success), the kernel panics on any warning or oops (panic=-1 with
# -no-reboot ends QEMU), and an outer timeout kills QEMU.  Afterwards the
# kernel log is scanned and any BUG, WARNING, Oops, KFENCE or slab report,
# list corruption, lockup or leak of pool pages fails the run, quoted.
#
# Only one VM runs at a time (flock on the cache): the machine has 2 cores.
set -euo pipefail

# One compound command: bash reads all of it before running any, so editing
# this file while a run waits for the VM lock cannot break that run.
{

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
CACHE=${PYALLOC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyalloc}

series=6.12
vmlinuz=
module=
modparams=
adds=()
selftests=
outdir=
log=$top/build/vm/console.log
timeout_s=900
mem=2048
cpu=max
icount=
append=
slabflags=FZPU
hostfs=
cmd=()

die() { echo "vm/run.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
	case $1 in
	--kernel) series=$2; shift 2 ;;
	--vmlinuz) vmlinuz=$2; shift 2 ;;
	--module) module=$2; shift 2 ;;
	--modparams) modparams=$2; shift 2 ;;
	--add) adds+=("$2"); shift 2 ;;
	--selftests) selftests=$2; shift 2 ;;
	--out) outdir=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--cpu) cpu=$2; shift 2 ;;
	--icount) icount=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--slab-debug) slabflags=$2; shift 2 ;;
	--host-fs) hostfs=1; shift ;;
	--) shift; cmd=("$@"); break ;;
	-h|--help) sed -n '2,46p' "$0"; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done
[ -n "$selftests" ] || [ ${#cmd[@]} -gt 0 ] || die "nothing to run: --selftests DIR or -- COMMAND"
[[ -z $icount || $icount =~ ^[0-9]$ ]] || die "--icount $icount: a shift of 0 to 9"
tcgthread=multi
[ -z "$icount" ] || tcgthread=single	# -icount needs one TCG thread

envfile=$CACHE/$series.env
[ -f "$envfile" ] || die "no $envfile: run scripts/deps.sh $series"
# shellcheck disable=SC1090
. "$envfile"
[ -n "$vmlinuz" ] || vmlinuz=$VM_VMLINUZ
[ -n "$module" ] || module=$top/build/kmod-$VM_KVER/pyalloc.ko
[ -f "$vmlinuz" ] || die "no kernel $vmlinuz"
[ -f "$module" ] || die "no module $module (make vm-module)"

# slab debugging: 6.12 spells it slab_debug, 6.1 slub_debug.
case $series in
6.1) slabdbg=slub_debug=$slabflags ;;
*) slabdbg=slab_debug=$slabflags ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/pyalloc-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,out,pyalloc,etc}
mkdir -p "$(dirname "$log")"

cp /bin/busybox "$root/bin/busybox"

# Copy an ELF file's shared libraries (and the loader) to the same paths.
copy_libs() {
	local f=$1 lib
	file -L "$f" 2>/dev/null | grep -q 'dynamically linked' || return 0
	for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

cp "$module" "$root/pyalloc/pyalloc.ko"

# --host-fs: the 9p and virtio modules of this kernel (scripts/deps.sh puts
# them next to its image), loaded in order by the guest, which mounts the
# host's / at /host and runs the command chrooted there.
if [ -n "$hostfs" ]; then
	hostmods=$(dirname "$VM_VMLINUZ")/hostfs
	[ -f "$hostmods/modules.order" ] || die "--host-fs: no 9p modules in $hostmods (scripts/deps.sh $series)"
	mkdir -p "$root/pyalloc/hostfs"
	cp "$hostmods"/*.ko "$hostmods/modules.order" "$root/pyalloc/hostfs/"
	printf 'PYALLOC_TOP=%q\n' "$top" >"$root/pyalloc/.hostfs"
	cat >>"$root/pyalloc/.hostfs" <<'HOSTFS'
# Sourced by /init before the command: the host's / at /host, read-only.
hostfs_fail() { echo "PYALLOC-GUEST: --host-fs: $*"; echo "PYALLOC-EXIT: 98"; reboot -f; }
for m in $(cat /pyalloc/hostfs/modules.order); do
	grep -q "^$m " /proc/modules || insmod "/pyalloc/hostfs/$m.ko" || hostfs_fail "insmod $m"
done
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host ||
	hostfs_fail "mount of the host's root over 9p"
# The guest gets a /tmp of its own; a tree that lives under the host's
# /tmp (a clone in /tmp/x) stays visible at its path through a bind mount
# of the host's directory taken before the tmpfs covers it.
mkdir -p /hosttmp && mount --bind /host/tmp /hosttmp ||
	hostfs_fail "bind mount of the host's /tmp"
mount -t proc proc /host/proc && mount -t sysfs sysfs /host/sys &&
	mount -t devtmpfs devtmpfs /host/dev && mount -t tmpfs tmpfs /host/tmp ||
	hostfs_fail "mounts inside /host"
case $PYALLOC_TOP in
/tmp/*)
	mkdir -p "/host$PYALLOC_TOP" &&
		mount --bind "/hosttmp${PYALLOC_TOP#/tmp}" "/host$PYALLOC_TOP" ||
		hostfs_fail "bind mount of $PYALLOC_TOP"
	;;
esac
mkdir -p /host/dev/shm /host/dev/pts /host/tmp/pyalloc /host/tmp/out
mount -t tmpfs tmpfs /host/dev/shm
mount -t devpts devpts /host/dev/pts 2>/dev/null
mount -t tmpfs tmpfs /host/run 2>/dev/null
[ -e /host/dev/fd ] || ln -s /proc/self/fd /host/dev/fd
mount --bind /pyalloc /host/tmp/pyalloc && mount --bind /out /host/tmp/out ||
	hostfs_fail "bind mounts"
# Loopback only (tests talk to 127.0.0.1); the guest has no other network.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
HOSTFS
fi
for f in ${adds[@]+"${adds[@]}"}; do
	[ -e "$f" ] || die "--add $f: no such file"
	cp -rL "$f" "$root/pyalloc/"
	if [ -f "$f" ]; then copy_libs "$f"; fi
done

if [ -n "$selftests" ]; then
	[ -d "$selftests" ] || die "--selftests $selftests: not a directory"
	st=$root/pyalloc/selftests
	mkdir -p "$st/kselftest" "$st/pyalloc"
	cp "$CACHE/ksft/run_kselftest.sh" "$st/"
	cp "$CACHE/ksft/runner.sh" "$CACHE/ksft/ktap_helpers.sh" "$st/kselftest/"
	: >"$st/kselftest-list.txt"
	# Every executable in DIR, in name order (pyalloc_zz_* run last).
	for t in $(cd "$selftests" && ls); do
		[ -f "$selftests/$t" ] && [ -x "$selftests/$t" ] || continue
		case $t in *.sh|*.o|*.c|*.h) continue ;; esac
		cp "$selftests/$t" "$st/pyalloc/"
		copy_libs "$selftests/$t"
		echo "pyalloc:$t" >>"$st/kselftest-list.txt"
	done
	[ -f "$selftests/settings" ] && cp "$selftests/settings" "$st/pyalloc/"
	# Through a pipe: the runner reopens /dev/stdout in append mode,
	# which would overwrite a plain file redirection.
	stcmd='cd /pyalloc/selftests && ./run_kselftest.sh 2>&1 | tee /tmp/tap; if grep -q "^not ok" /tmp/tap; then exit 1; fi; grep -q "^ok " /tmp/tap'
fi

# The kselftest runner calls /usr/bin/timeout --foreground; busybox's
# timeout has no --foreground, so drop it.
cat >"$root/usr/bin/timeout" <<'EOF'
#!/bin/sh
[ "$1" = --foreground ] && shift
exec /bin/busybox timeout "$@"
EOF
chmod +x "$root/usr/bin/timeout"

# The command, quoted for the guest shell.
{
	printf 'cd /pyalloc\n'
	printf 'export PATH=/pyalloc:/usr/bin:/bin:/usr/sbin:/sbin\n'
	printf 'export PYALLOC_KO=/pyalloc/pyalloc.ko\n'
	if [ -n "$selftests" ]; then
		printf 'sh -c %q\n' "$stcmd"
		printf 'strc=$?\n'
		[ ${#cmd[@]} -gt 0 ] || printf 'exit $strc\n'
		printf 'cd /pyalloc\n'
	fi
	if [ ${#cmd[@]} -gt 0 ]; then
		if [ -n "$hostfs" ]; then
			# shellcheck disable=SC2016
			printf 'chroot /host /bin/sh -c %q sh ' \
				"cd /tmp/pyalloc && export PATH=/tmp/pyalloc:$top/tools:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 && exec \"\$@\""
		fi
		printf '%q ' "${cmd[@]}"
		printf '\n'
		# shellcheck disable=SC2016
		[ -z "$selftests" ] || printf 'rc=$?; [ $strc = 0 ] || rc=$strc; exit $rc\n'
	fi
} >"$root/pyalloc/.cmd"

cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# devtmpfs lacks these; the kselftest runner writes to /dev/stdout.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
# /tmp is left on the initramfs, which is in memory already: a tmpfs
# over it would hide the libraries copied there for a tree under /tmp.
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd
exec >/dev/console 2>&1 </dev/null
echo "PYALLOC-GUEST: kernel \$(uname -r)"
if ! insmod /pyalloc/pyalloc.ko $modparams; then
	echo "PYALLOC-GUEST: insmod failed"
	echo "PYALLOC-EXIT: 97"
	reboot -f
fi
[ -f /pyalloc/.hostfs ] && . /pyalloc/.hostfs
sh /pyalloc/.cmd
rc=\$?
# Every heap is closed now: the module must hold no page and unload.
held=\$(cat /sys/module/pyalloc/parameters/pages_held 2>/dev/null || echo 0)
if [ "\$held" != 0 ]; then
	echo "PYALLOC-LEAK: pages_held=\$held after the run"
	[ \$rc = 0 ] && rc=96
fi
if [ -d /sys/module/pyalloc ] && ! rmmod pyalloc; then
	echo "PYALLOC-GUEST: rmmod failed"
	[ \$rc = 0 ] && rc=95
fi
if [ -n "\$(ls /out)" ]; then
	echo "PYALLOC-OUT-BEGIN"
	tar -C /out -cf - . | base64 >/dev/ttyS1
	echo "PYALLOC-OUT-END"
fi
echo "PYALLOC-EXIT: \$rc"
reboot -f
EOF
chmod +x "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"

cmdline="console=ttyS0,115200 rdinit=/init panic=-1 oops=panic panic_on_warn=1"
cmdline+=" softlockup_panic=1 hung_task_panic=1 $slabdbg kfence.sample_interval=10"
cmdline+=" mitigations=off loglevel=7 $append"

lockfile=$CACHE/vm.lock
exec 9>"$lockfile"
if ! flock -n 9; then
	echo "vm/run.sh: waiting for another VM run to finish" >&2
	flock 9
fi

# One boot.  A kernel that dies before /init has run has not run any of
# pyalloc (insmod is /init's first act): under multi-threaded TCG,
# boot-time code patching (a static key flipped when sched_clock is marked
# stable, or by the clocksource watchdog) can end in "Oops: int3" on every
# vCPU at once, the patched byte's old translation still live.  Here that
# is about once in a few hundred boots (none in 65, 25 of them with both
# host cores busy); a CI host with more free cores, where the two vCPU
# threads truly run at once, died twice in a row in one run.  Such a boot
# is tried again, saying so, up to $boot_tries boots in all (the logs of
# the dead ones kept); anything after /init started counts as is.
boot_tries=4
boot() {
	echo "vm/run.sh: booting $(basename "$(dirname "$vmlinuz")")/$(basename "$vmlinuz") (log: $log)" >&2
	set +e
	timeout -k 10 "$timeout_s" qemu-system-x86_64 \
		-nodefaults -display none -no-reboot \
		-accel tcg,thread="$tcgthread" \
		${icount:+-icount "shift=$icount,sleep=off"} \
		-cpu "$cpu" -smp 2 -m "$mem" \
		-kernel "$vmlinuz" -initrd "$work/initramfs.cpio" -append "$cmdline" \
		${hostfs:+-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap} \
		-serial stdio -serial "file:$work/ttyS1" </dev/null 2>&1 |
		tee "$log" |
		# Progress: the guest's own lines and any kernel line that matters.
		grep --line-buffered -Ev '^\[ *[0-9]+\.[0-9]+\] ' |
		grep --line-buffered -v '^PYALLOC-OUT' | tr -d '\r'
	qstatus=${PIPESTATUS[0]}
	set -e
	tr -d '\r' <"$log" >"$log.tmp" && mv "$log.tmp" "$log"
}

# The same race after boot: a static key flipped at run time (enabling a
# tracepoint) has ended a run in "Oops: int3" in scheduler code on the
# other vCPU.  A run whose kernel died of an int3 trap whose report names
# no pyalloc code ("[pyalloc]" frames) is run once more, saying so; the
# first log is kept, and a second such death fails the run.
int3_outside_pyalloc() {
	awk '/Oops: int3/ { oops = 1 }
	     oops && /\[pyalloc\]/ { ours = 1 }
	     oops && /end trace/ { exit }
	     END { exit !(oops && !ours) }' "$1"
}

# Keep the dead run's log as $log.SUFFIX, say WHY and quote its kernel
# lines matching PATTERN, say AGAIN, and boot once more.
boot_again() {	# SUFFIX WHY PATTERN AGAIN
	mv "$log" "$log.$1"
	echo "vm/run.sh: $2 (log: $log.$1):" >&2
	# A kernel can die with no such line (a triple fault ends QEMU
	# silently): that is no reason to stop here (set -e, pipefail).
	grep -E "^\[ *[0-9]+\.[0-9]+\] .*($3)" "$log.$1" |
		grep -v 'ommand line:' | head -n 5 | sed 's/^/  | /' >&2 || true
	echo "vm/run.sh: $4" >&2
	: >"$work/ttyS1"
	boot
}

died_before_init() {
	! grep -q '^PYALLOC-GUEST: kernel' "$log" &&
		[ "$qstatus" != 124 ] && [ "$qstatus" != 137 ]
}

start=$(date +%s)
boot
boots=1
while died_before_init && [ $boots -lt $boot_tries ]; do
	boots=$((boots + 1))
	# $log.first-boot, then $log.boot2, $log.boot3: each dead boot's log
	suffix=first-boot
	[ $boots = 2 ] || suffix=boot$((boots - 1))
	boot_again $suffix \
		"the kernel died while booting, before /init ran" \
		'Oops|BUG|panic' "booting once more ($boots of $boot_tries)"
done
if ! died_before_init && ! grep -q '^PYALLOC-EXIT: ' "$log" &&
	int3_outside_pyalloc "$log"; then
	boot_again int3 "the kernel died of an int3 trap outside pyalloc" \
		'Oops|RIP:' \
		"QEMU TCG's race with live code patching; running once more"
fi
elapsed=$(($(date +%s) - start))

rc=1	# pre-seeded: only an explicit report from the guest can clear it
guest_rc=$(sed -n 's/^PYALLOC-EXIT: \([0-9]*\)$/\1/p' "$log" | tail -n1)
if [ "$qstatus" = 124 ] || [ "$qstatus" = 137 ]; then
	echo "vm/run.sh: TIMEOUT after ${timeout_s}s: the guest hung" >&2
elif [ -z "$guest_rc" ]; then
	echo "vm/run.sh: the guest died before reporting a result (qemu status $qstatus)" >&2
else
	rc=$guest_rc
fi

# Any of these in the kernel log fails the run.
bad='BUG[: ]|WARNING:|Oops|KFENCE|Kernel panic|general protection|'
bad+='corruption|Redzone|Poison overwritten|Object padding|Freepointer|'
bad+='soft lockup|hard LOCKUP|hung_task|blocked for more than|rcu_sched self-detected|'
bad+='UBSAN|KASAN|possible recursive locking|possible circular locking|'
bad+='inconsistent lock state|suspicious RCU usage|Call Trace|'
# kmemleak failing itself; its leak reports are read and judged by the
# debug lane's guest script, which knows which ones are pyalloc's.
bad+='kmemleak: .*(disabled|Cannot|error|pool empty)|'
# Lock debugging switching itself off hides every later lock bug.
bad+='turning off the locking correctness validator|DEBUG_LOCKS_WARN_ON|'
bad+='sleeping function called from invalid context|scheduling while atomic'
# Kernel lines only (a test may print those words), plus the guest's leak check.
if grep -E "^\[ *[0-9]+\.[0-9]+\] .*($bad)|^PYALLOC-LEAK" "$log" |
	grep -v 'ommand line:' >"$work/bad"; then
	echo "vm/run.sh: the kernel log reports problems:" >&2
	sed 's/^/  | /' "$work/bad" | head -n 60 >&2
	[ "$rc" = 0 ] && rc=1
fi

if [ -n "$outdir" ] && [ -s "$work/ttyS1" ]; then
	mkdir -p "$outdir"
	tr -d '\r' <"$work/ttyS1" | base64 -d | tar -C "$outdir" -xf - ||
		{ echo "vm/run.sh: could not unpack the guest's /out" >&2; [ "$rc" = 0 ] && rc=1; }
fi

echo "vm/run.sh: guest verdict $rc after ${elapsed}s" >&2
exit "$rc"
}
