#!/usr/bin/env bash
# `make check`: everything that must pass before a change lands.
#
#   1. dependencies (scripts/deps.sh), then the module for the VM kernel,
#      libpyalloc and the selftests, all warning-free
#   2. host unit tests under ASan/UBSan (module bookkeeping and library)
#   3. static checks of kmod/ and uapi/: checkpatch --strict, sparse, W=1
#   4. the VM runner's own test: warnings, panics, hangs and failing tests
#      must fail a run
#   5. the selftests in a QEMU guest per kernel series, whose kernel log
#      must stay clean
#
# Ends with one line "N passed, N failed, N skipped" summed over every test
# that ran, host and guest; exits non-zero if anything failed.
#
#   scripts/check.sh [SERIES...]   kernel series for the VM (default 6.12)
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
SERIES=("$@")
[ ${#SERIES[@]} -gt 0 ] || SERIES=(6.12)
CACHE=${PYALLOC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyalloc}
mkdir -p build/check

passed=0 failed=0 skipped=0
start=$(date +%s)

step() { printf '\n=== %s\n' "$*"; }

# Add "N passed, N failed[, N skipped]" from a log's last such line.
add_counts() {
	local line p f s
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n1)
	if [ -z "$line" ]; then
		echo "check: no result line in $1: counted as one failure"
		failed=$((failed + 1))
		return
	fi
	p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
	s=$(echo "$line" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p')
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${s:-0}))
}

# One pass/fail for a whole step.
add_step() {
	if [ "$1" = 0 ]; then
		passed=$((passed + 1)); echo "ok: $2"
	else
		failed=$((failed + 1)); echo "FAILED: $2"
	fi
}

step "dependencies"
scripts/deps.sh "${SERIES[@]}" || { echo "check: dependencies failed"; echo "0 passed, 1 failed"; exit 1; }

step "build (W=1, -Wall -Wextra -Werror)"
build_ok=0
for s in "${SERIES[@]}"; do
	make --no-print-directory KSERIES="$s" KCFLAGS=-Werror vm-module || build_ok=1
done
if [ -f userspace/Makefile ]; then
	make --no-print-directory -C userspace || build_ok=1
fi
make --no-print-directory -C selftests || build_ok=1
add_step $build_ok "build"

step "host unit tests (ASan, UBSan)"
make --no-print-directory -C tests/host run 2>&1 | tee build/check/host-kmod.log
add_counts build/check/host-kmod.log
if [ -f userspace/Makefile ] && grep -q '^host-test:' userspace/Makefile; then
	make --no-print-directory -C userspace host-test 2>&1 | tee build/check/host-lib.log
	add_counts build/check/host-lib.log
fi

step "static checks (checkpatch --strict, sparse)"
scripts/static-check.sh 2>&1 | tee build/check/static.log
add_counts build/check/static.log

step "pyallocstat on a fake machine, reference docs, packaging (host)"
/usr/bin/python3 tools/tests/test_pyallocstat.py 2>&1 | tee build/check/pyallocstat.log
add_counts build/check/pyallocstat.log
docs/check.sh 2>&1 | tee build/check/docs.log
add_counts build/check/docs.log
packaging/check.sh "${SERIES[@]}" 2>&1 | tee build/check/packaging.log
add_counts build/check/packaging.log
# pyallocstat's VM test runs after the selftests, in the same boot.
mapfile -t vmtool < <(tools/tests/vm-prep.sh) || vmtool=()
[ ${#vmtool[@]} -gt 0 ] || { echo "check: tools/tests/vm-prep.sh failed"; failed=$((failed + 1)); }

step "the VM runner fails what it must (vm/selftest.sh)"
vm/selftest.sh "${SERIES[0]}" 2>&1 | tee build/check/runner.log
add_counts build/check/runner.log

for ser in "${SERIES[@]}"; do
	# shellcheck disable=SC1090
	. "$CACHE/$ser.env"
	step "VM selftests on $ser ($VM_KVER)"
	log=build/check/vm-$ser.log
	vm/run.sh --kernel "$ser" --log "$log" --selftests selftests ${vmtool[@]+"${vmtool[@]}"}
	vmrc=$?
	counts=$(scripts/ksft-count.sh "$log")
	read -r p f s <<<"$counts"
	if [ "$vmrc" != 0 ] && [ "$f" = 0 ]; then
		echo "check: the VM run failed (status $vmrc) outside any test"
		f=1
	fi
	echo "VM $ser: $p passed, $f failed, $s skipped"
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
done

step "drop-in malloc on real programs (VM ${SERIES[0]}, --host-fs)"
# CPython's own regression tests, a dash script and a C++ program on
# libpyalloc-malloc.so, each compared with the same run on glibc in the same
# boot, with proof that small objects came from /dev/pyalloc
# (tests/preload/run.sh; the list and its time: tests/preload/python-tests.txt).
mkdir -p build/preload
if g++ -std=c++17 -O2 -Wall -Wextra -Werror -pthread \
	-o build/preload/cxx_churn tests/preload/cxx_churn.cc; then
	vm/run.sh --kernel "${SERIES[0]}" --host-fs --timeout 2400 \
		--log build/check/preload.log -- \
		"$top/tests/preload/run.sh" "$top" "$top/build/preload/cxx_churn"
	prc=$?
	add_counts build/check/preload.log
	if [ "$prc" != 0 ] && ! grep -Eq '^[0-9]+ passed, [1-9][0-9]* failed' build/check/preload.log; then
		echo "check: the preload run failed (status $prc) outside any test"
		failed=$((failed + 1))
	fi
else
	add_step 1 "build tests/preload/cxx_churn.cc"
fi

echo
echo "check: $(( $(date +%s) - start ))s"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
