#!/usr/bin/env bash
# Prove that vm/run.sh fails a run for every reason it must, and passes a
# clean one (with and without --icount): a kernel warning (a module that
# warns at init, quoted in the output), a failing selftest, a failing
# command, a kernel panic, a hung guest (within the timeout), a bad
# --icount, a kernel that dies while booting, every time (with and without
# a word), and one that dies of an int3 trap outside pyalloc, twice; and
# that a kernel that dies while booting twice, then boots, passes.
# Part of `make check`.
#
#   vm/selftest.sh [SERIES]
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
series=${1:-6.12}
CACHE=${PYALLOC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyalloc}
# shellcheck disable=SC1090
. "$CACHE/$series.env"
work=$(mktemp -d "${TMPDIR:-/tmp}/pyalloc-vmtest.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0 failed=0

result() {
	if [ "$1" = 0 ]; then passed=$((passed + 1)); echo "ok: $2"
	else failed=$((failed + 1)); echo "FAILED: $2"; fi
}

# $1: expected verdict (0 or "fail"), $2: name, $3: grep pattern the
# output must contain (or ""), then the vm/run.sh arguments.
expect() {
	local want=$1 name=$2 pattern=$3 rc ok=0
	shift 3
	"$here/run.sh" --kernel "$series" --log "$work/$name.log" "$@" \
		>"$work/$name.out" 2>&1
	rc=$?
	if [ "$want" = 0 ]; then [ $rc = 0 ] || ok=1
	else [ $rc != 0 ] || ok=1; fi
	if [ -n "$pattern" ] && ! grep -qE "$pattern" "$work/$name.out"; then
		ok=1
	fi
	[ $ok = 0 ] || sed 's/^/  | /' "$work/$name.out" | tail -n 15
	result $ok "runner: $name (status $rc)"
}

cp -r "$here/tests" "$work/mod"
if ! make -s -C "$VM_KDIR" M="$work/mod" modules >"$work/build.log" 2>&1; then
	cat "$work/build.log"
	result 1 "runner: build the warning module"
else
	expect fail warning 'WARNING: .*warn_at_init' \
		--module "$work/mod/warn_at_init.ko" -- true
fi
mkdir -p "$work/st"
cp "$here/tests/fail_test.sh" "$work/st/fail_test"
expect fail failing-selftest 'not ok 1 selftests: pyalloc: fail_test' \
	--selftests "$work/st"
expect 0 clean-command '' -- true
expect fail failing-command 'guest verdict 1' -- false
expect fail panic 'Kernel panic' -- sh -c 'echo c >/proc/sysrq-trigger'
expect fail hang 'TIMEOUT after 20s' --timeout 20 -- sleep 600
# --icount (bench/pyinsn.sh): QEMU takes the clock that counts
# instructions and the guest boots with it; a shift that is not one digit
# is refused before any boot.
expect 0 icount '' --icount 0 -- true
expect fail icount-shift 'a shift of 0 to 9' --icount 10 -- true
# A kernel that dies before /init is booted again, up to 4 boots in all,
# each dead boot's log kept; a kernel that always dies there still fails
# the run (no /init here: the kernel panics looking for a root).
expect fail boot-death 'booting once more \(4 of 4\)' \
	--append rdinit=/no-such-init -- true
[ -f "$work/boot-death.log.first-boot" ] &&
	[ -f "$work/boot-death.log.boot2" ] && [ -f "$work/boot-death.log.boot3" ] &&
	! grep -q 'booting once more (5' "$work/boot-death.out"
result $? "runner: boot-death booted 4 times and kept the 3 earlier logs"
# A kernel that dies before /init without a line about it (a triple fault
# ends QEMU silently; here a stand-in QEMU that prints nothing) is booted
# again too, and still fails the run.
mkdir -p "$work/silent-qemu"
printf '#!/bin/sh\nexit 0\n' >"$work/silent-qemu/qemu-system-x86_64"
chmod +x "$work/silent-qemu/qemu-system-x86_64"
PATH="$work/silent-qemu:$PATH" expect fail silent-death \
	'booting once more \(4 of 4\)' -- true
# A boot that dies before /init twice and then boots is the run's verdict:
# a stand-in QEMU dies silently on its first two calls, then runs QEMU.
mkdir -p "$work/flaky-qemu"
real_qemu=$(command -v qemu-system-x86_64)
cat >"$work/flaky-qemu/qemu-system-x86_64" <<EOF
#!/bin/sh
n=\$(cat "$work/flaky-qemu/calls" 2>/dev/null || echo 0)
echo \$((n + 1)) >"$work/flaky-qemu/calls"
[ "\$n" -ge 2 ] || exit 0
exec "$real_qemu" "\$@"
EOF
chmod +x "$work/flaky-qemu/qemu-system-x86_64"
PATH="$work/flaky-qemu:$PATH" expect 0 flaky-boot \
	'booting once more \(3 of 4\)' -- true
# A kernel that dies of an int3 trap outside pyalloc after boot (as QEMU
# TCG's race with live code patching does) runs once more, and a second
# such death still fails the run.
if [ -f "$work/mod/int3_at_init.ko" ]; then
	expect fail int3-death 'int3 trap outside pyalloc.*|running once more' \
		--module "$work/mod/int3_at_init.ko" -- true
	grep -q 'running once more' "$work/int3-death.out" &&
		[ -f "$work/int3-death.log.int3" ]
	result $? "runner: int3-death ran once more and kept the first log"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
