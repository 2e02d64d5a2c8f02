#!/usr/bin/env bash
# Static checks of the kernel code: checkpatch.pl --strict on kmod/ and
# uapi/, and sparse (make C=2) on the module.  W=1 -Werror is part of the
# build in scripts/check.sh.  Any finding fails.
#
#   scripts/static-check.sh [SERIES]     kernel series for sparse (6.12)
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
series=${1:-6.12}
CACHE=${PYALLOC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pyalloc}
# shellcheck disable=SC1090
. "$CACHE/$series.env"
passed=0 failed=0

result() {
	if [ "$1" = 0 ]; then passed=$((passed + 1)); echo "ok: $2"
	else failed=$((failed + 1)); echo "FAILED: $2"; fi
}

# checkpatch: every file on its own, no error, warning or check.
cp_rc=0
for f in kmod/*.c kmod/*.h uapi/linux/pyalloc.h; do
	# TRACE_EVENT() bodies are macro arguments laid out the way every
	# header in include/trace/events/ lays them out, which --strict's
	# layout checks (and only those) do not understand.
	ignore=
	[ "$f" = kmod/trace.h ] && ignore=--ignore=OPEN_ENDED_LINE,PARENTHESIS_ALIGNMENT
	out=$(perl "$CACHE/scripts/checkpatch.pl" --strict --no-tree --quiet \
		--show-types $ignore -f "$f" 2>&1)
	if [ -n "$out" ]; then
		echo "$out"
		cp_rc=1
	fi
done
result $cp_rc "checkpatch.pl --strict kmod/ uapi/"

# sparse over a fresh copy of the module sources (C=2 checks every file).
dir=build/sparse-$VM_KVER
rm -rf "$dir"
mkdir -p "$dir/kmod" "$dir/uapi/linux"
cp Kbuild "$dir/" && cp kmod/*.c kmod/*.h "$dir/kmod/" &&
	cp uapi/linux/pyalloc.h "$dir/uapi/linux/"
make -s -C "$VM_KDIR" M="$top/$dir" C=2 modules >"$dir/sparse.log" 2>&1
sp_rc=$?
if grep -E "$dir/.*(warning|error):" "$dir/sparse.log"; then
	sp_rc=1
fi
[ $sp_rc = 0 ] || tail -n 20 "$dir/sparse.log"
result $sp_rc "sparse (C=2) kmod/"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
