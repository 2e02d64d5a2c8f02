#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The drop-in malloc on programs nobody here wrote, compared with glibc.
# Runs in the guest, in the host's root filesystem (scripts/check.sh:
# vm/run.sh --host-fs -- tests/preload/run.sh TOP CXX):
#
#   1. CPython's own regression tests (python-tests.txt), each line once on
#      glibc and once on the preload, PYTHONMALLOC=malloc; every module's
#      "Ran N tests" and "OK (skipped=K)" must be the same, both green;
#   2. a dash script (shell.sh), output compared byte for byte;
#   3. a C++ program (cxx_churn.cc, built by check.sh as CXX), output
#      compared.
#
# Each preload run proves its small blocks came from /dev/pyalloc: prove.py
# and the C++ program check fresh objects' addresses against the device's
# mapping in /proc/self/maps; dash's exit figures (PYALLOC_VERBOSE=1) must
# show small allocations served by the heap.  Ends with "N passed, N failed".
set -u

top=$1
cxx=$2
pre=$top/userspace/libpyalloc-malloc.so
here=$top/tests/preload
py=/usr/bin/python3.11
out=${TMPDIR:-/tmp}/preload-run
mkdir -p "$out"
passed=0 failed=0

ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }
now() { date +%s; }

[ -f "$pre" ] || { bad "no $pre"; echo "$passed passed, $failed failed"; exit 1; }

# Every module's result lines of a `python3 -m test -v` log.
results() {
	sed -n -e 's/^Ran \([0-9]*\) tests\{0,1\} in .*/Ran \1/p' \
		-e '/^OK\( (.*)\)\{0,1\}$/p' -e '/^FAILED (/p' "$1"
}

n=0
while IFS= read -r line; do
	case $line in ''|'#'*) continue ;; esac
	n=$((n + 1))
	t0=$(now)
	# shellcheck disable=SC2086
	(cd "$out" && PYTHONMALLOC=malloc PYALLOC_EXPECT=0 \
		$py "$here/prove.py" -v $line) >"$out/py$n.base" 2>&1
	rcb=$?
	t1=$(now)
	# shellcheck disable=SC2086
	(cd "$out" && PYTHONMALLOC=malloc PYALLOC_EXPECT=1 LD_PRELOAD=$pre \
		$py "$here/prove.py" -v $line) >"$out/py$n.pre" 2>&1
	rcp=$?
	t2=$(now)
	name="python3 -m test $(echo "$line" | cut -c1-60)"
	results "$out/py$n.base" >"$out/py$n.base.res"
	results "$out/py$n.pre" >"$out/py$n.pre.res"
	echo "# $name: glibc $((t1 - t0)) s (status $rcb), pyalloc $((t2 - t1)) s (status $rcp)"
	grep '^PROOF' "$out/py$n.pre" | sed 's/^/# /'
	if [ $rcb = 0 ] && [ $rcp = 0 ] && grep -q '^PROOF: ' "$out/py$n.pre" &&
	   [ -s "$out/py$n.pre.res" ] && cmp -s "$out/py$n.base.res" "$out/py$n.pre.res"; then
		ok "$name: $(grep -c '^Ran' "$out/py$n.pre.res") modules, $(sed -n 's/^Ran //p' "$out/py$n.pre.res" | paste -sd+ | bc) tests, same results as glibc"
	else
		bad "$name"
		diff "$out/py$n.base.res" "$out/py$n.pre.res" | sed 's/^/#   /' | head -20
		grep -E '^(FAIL|ERROR|PROOF|Traceback|pyalloc)|Error|failed' "$out/py$n.pre" | head -30 | sed 's/^/#   /'
		tail -20 "$out/py$n.pre" | sed 's/^/#   | /'
	fi
done <"$here/python-tests.txt"

t0=$(now)
dash "$here/shell.sh" >"$out/sh.base" 2>&1
rcb=$?
LD_PRELOAD=$pre PYALLOC_VERBOSE=1 dash "$here/shell.sh" >"$out/sh.pre" 2>"$out/sh.err"
rcp=$?
t1=$(now)
# The figures every dash process (the script and its subshells) printed at
# exit; the heap must have served small allocations and lost none.
served=$(sed -n 's/.*exit: heap .* (private): \([0-9]*\) small allocations.*/\1/p' "$out/sh.err" |
	sort -n | tail -n1)
echo "# dash: $((t1 - t0)) s; $(grep -c 'exit: heap' "$out/sh.err") processes reported, at most ${served:-0} small allocations"
if [ $rcb = 0 ] && [ $rcp = 0 ] && cmp -s "$out/sh.base" "$out/sh.pre" &&
   [ "${served:-0}" -gt 0 ] && ! grep -q 'no heap\|unusable\|[1-9][0-9]* blocks lost' "$out/sh.err"; then
	ok "dash script: same output as on glibc, small blocks from /dev/pyalloc"
else
	bad "dash script (status $rcb/$rcp)"
	diff "$out/sh.base" "$out/sh.pre" | head -20 | sed 's/^/#   /'
	head -20 "$out/sh.err" | sed 's/^/#   /'
fi

t0=$(now)
PYALLOC_EXPECT=0 "$cxx" >"$out/cxx.base" 2>"$out/cxx.base.err"
rcb=$?
PYALLOC_EXPECT=1 LD_PRELOAD=$pre "$cxx" >"$out/cxx.pre" 2>"$out/cxx.err"
rcp=$?
t1=$(now)
echo "# C++: $((t1 - t0)) s"
sed 's/^/# /' "$out/cxx.err"
if [ $rcb = 0 ] && [ $rcp = 0 ] && cmp -s "$out/cxx.base" "$out/cxx.pre" &&
   grep -q '^PROOF: .* in /dev/pyalloc' "$out/cxx.err"; then
	ok "C++ map/string/shared_ptr churn with threads and fork: same output as on glibc"
else
	bad "C++ churn (status $rcb/$rcp)"
	diff "$out/cxx.base" "$out/cxx.pre" | head -20 | sed 's/^/#   /'
	sed 's/^/#   /' "$out/cxx.base.err" "$out/cxx.err"
fi

echo "$passed passed, $failed failed"
[ $failed = 0 ]
