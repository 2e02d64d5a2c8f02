#!/usr/bin/env bash
# `make check-debug`: pyalloc on a kernel built to catch kernel bugs.
#
#   1. the debug kernel (debug/build-kernel.sh: KASAN, KFENCE, lockdep,
#      DEBUG_ATOMIC_SLEEP, DEBUG_VM, UBSAN, kmemleak, fault injection),
#      built once and cached; the module built against it (W=1, -Werror),
#      libpyalloc and the selftests
#   2. one boot of that kernel (vm/run.sh), in which run
#      - the whole selftest suite, including pyalloc_fail_nth, the
#        fault-injection sweep, which skips on the ordinary kernels
#      - the fuzzer, FUZZ_OPS operations (default 1,000,000; FUZZ_SEED
#        replays a run)
#      - a kmemleak scan: a suspected leak from pyalloc fails
#      and whose kernel log must stay clean (any BUG, WARNING, KASAN, UBSAN,
#      lockdep or KFENCE report fails the run)
#
# Ends with one line "N passed, N failed, N skipped" like scripts/check.sh
# and exits non-zero if anything failed.  Logs: build/check-debug/.
#
#   FUZZ_OPS=N FUZZ_SEED=S DEBUG_TIMEOUT=SECS debug/check-debug.sh
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
out=build/check-debug
mkdir -p "$out"
rm -rf "$out/guest"
FUZZ_OPS=${FUZZ_OPS:-1000000}
FUZZ_SEED=${FUZZ_SEED:-}
DEBUG_TIMEOUT=${DEBUG_TIMEOUT:-7200}

passed=0 failed=0 skipped=0
start=$(date +%s)

step() { printf '\n=== %s (%ds)\n' "$*" $(($(date +%s) - start)); }

result() {
	if [ "$1" = 0 ]; then
		passed=$((passed + 1)); echo "ok: $2"
	else
		failed=$((failed + 1)); echo "FAILED: $2"
	fi
}

finish() {
	echo
	echo "check-debug: $(($(date +%s) - start))s"
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" = 0 ]
	exit
}

step "dependencies"
if ! scripts/deps.sh 6.12; then
	result 1 "dependencies"
	finish
fi

step "debug kernel"
if ! envfile=$(debug/build-kernel.sh); then
	result 1 "debug kernel build"
	finish
fi
# shellcheck disable=SC1090
. "$envfile"
echo "debug kernel $VM_KVER: $VM_VMLINUZ"

step "module, libpyalloc and selftests"
# build/kmod-debug-kernel/ (the Makefile names the tree after KDIR).
rc=0
make --no-print-directory KDIR="$VM_KDIR" KCFLAGS=-Werror build-module-kdir || rc=1
module=build/kmod-debug-kernel/pyalloc.ko
[ -f "$module" ] || rc=1
make --no-print-directory -C userspace || rc=1
make --no-print-directory -C selftests || rc=1
result $rc "build against $VM_KVER"
[ $rc = 0 ] || finish

step "VM: selftests, fuzzer ($FUZZ_OPS operations), kmemleak"
log=$out/vm.log
vm/run.sh --vmlinuz "$VM_VMLINUZ" --module "$module" --log "$log" \
	--timeout "$DEBUG_TIMEOUT" --mem 3072 --slab-debug - --out "$out/guest" \
	--add debug/guest.sh --add selftests/pyalloc_fuzz \
	--selftests selftests -- sh ./guest.sh "$FUZZ_OPS" $FUZZ_SEED \
	2> >(tee "$out/vm.err" >&2)
vmrc=$?
wait

# The selftests' cases, counted as scripts/check.sh does.
counts=$(scripts/ksft-count.sh "$log")
read -r p f s <<<"$counts"
echo "selftests: $p passed, $f failed, $s skipped"
passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))

# The sweep must have run, not skipped: this kernel has fault injection.
nth_skips=$(grep -cE '^# (ok|not ok) [0-9]+ (nth|copy_fault)\..*# SKIP' "$log")
nth_runs=$(grep -cE '^# ok [0-9]+ (nth|copy_fault)\.' "$log")
if [ "$nth_runs" = 0 ] || [ "$nth_skips" != 0 ]; then
	result 1 "fault-injection sweep ran ($nth_runs cases, $nth_skips skipped)"
fi
grep -E '^# # .* faults: [0-9]+ points' "$log" | sed 's/^# # /  /'

for what in fuzzer kmemleak; do
	line=$(grep -E "^PYALLOC-DEBUG: $what (ok|FAILED)" "$log" | tail -n1)
	[ -n "$line" ] || line="PYALLOC-DEBUG: $what FAILED: did not run"
	case $line in *" ok"*) r=0 ;; *) r=1 ;; esac
	result $r "${line#PYALLOC-DEBUG: }"
done
grep -E '^# [0-9]+ operations in' "$log" | sed 's/^/  /'
grep -E '^# pyalloc_fuzz: seed' "$log" | tail -n1 | sed 's/^/  /'

# The kernel log (scanned by vm/run.sh), the module's page count and its
# unloading, then anything else that failed the guest.
r=0
grep -qE 'kernel log reports problems|TIMEOUT|died before reporting' "$out/vm.err" && r=1
result $r "kernel log clean, no hang"
r=0
grep -qE '^PYALLOC-LEAK|^PYALLOC-GUEST: rmmod failed' "$log" && r=1
result $r "pool pages returned, module unloaded"
if [ "$vmrc" != 0 ] && [ "$failed" = 0 ]; then
	result 1 "the VM run (status $vmrc; see $log)"
fi
finish
