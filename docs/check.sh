#!/usr/bin/env bash
# The reference documentation's checks (part of `make check`, on the host):
#   - docs/userspace-api.rst carries the structs and commands of
#     uapi/linux/pyalloc.h as they are (docs/structs.py), and the checker
#     notices a header that changed; the page parses without a warning
#   - every man page lints clean: mandoc -T lint, groff -ww, man --warnings
#   - the pages name what the code has: pyalloc(3) every pya_* function and
#     PYA_HEAP_* flag of <pyalloc.h>, pyalloc(4) every module parameter and
#     every fdinfo key of kmod/, pyallocstat(1) and pyalloc-run(1) every
#     option of their --help
# Ends with "N passed, N failed, N skipped".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
cd "$top"
work=$(mktemp -d "${TMPDIR:-/tmp}/pyalloc-docs.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0 failed=0 skipped=0

ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAILED: $*"; }
skip() { skipped=$((skipped + 1)); echo "SKIP: $*"; }
# check NAME COMMAND...: the command must succeed and print nothing on stderr.
check() {
	local name=$1
	shift
	if "$@" >"$work/out" 2>"$work/err" && [ ! -s "$work/err" ]; then
		ok "$name"
	else
		bad "$name"
		sed 's/^/  | /' "$work/err" "$work/out" | head -n 20
	fi
}

check "userspace-api.rst matches uapi/linux/pyalloc.h" docs/structs.py --check

# The checker must notice a header that moved on: a new field, a new command.
sed 's/^\t__u64 heap_id;$/&\n\t__u64 new_field;/' uapi/linux/pyalloc.h >"$work/h1.h"
sed 's/^#define PYALLOC_IOC_TRIM\t.*$/&\n#define PYALLOC_IOC_NEW\t_IOR(PYALLOC_IOC_MAGIC, 0x7f, struct pyalloc_trim)/' \
	uapi/linux/pyalloc.h >"$work/h2.h"
if ! cmp -s "$work/h1.h" uapi/linux/pyalloc.h && ! cmp -s "$work/h2.h" uapi/linux/pyalloc.h &&
   ! docs/structs.py --check --header "$work/h1.h" 2>"$work/e1" &&
   grep -q 'pyalloc_info: the page' "$work/e1" &&
   ! docs/structs.py --check --header "$work/h2.h" 2>"$work/e2" &&
   grep -q 'PYALLOC_IOC_NEW: no section' "$work/e2"; then
	ok "docs/structs.py notices a changed header"
else
	bad "docs/structs.py notices a changed header"
fi

rst_check() {
	/usr/bin/python3 - "$1" <<'PY'
import sys
import docutils.core
docutils.core.publish_doctree(open(sys.argv[1]).read(), source_path=sys.argv[1],
                              settings_overrides={"report_level": 2, "halt_level": 2})
PY
}
check "userspace-api.rst parses without warnings (docutils)" rst_check docs/userspace-api.rst

for page in docs/man/*.[1-8]; do
	check "$page: mandoc -T lint" mandoc -T lint -W warning "$page"
	check "$page: groff -ww" groff -man -ww -z "$page"
	check "$page: man --warnings" env LC_ALL=C.UTF-8 MANWIDTH=80 \
		man --warnings -l "$page"
done

# A page names NAME: as \fB...\fR/.B text, with troff's \- for '-'.
names() { sed 's/\\-/-/g' "$1"; }
missing_in() {
	local page=$1 miss=() w
	shift
	names "$page" >"$work/names"
	for w in "$@"; do
		grep -qF -- "$w" "$work/names" || miss+=("$w")
	done
	if [ ${#miss[@]} -eq 0 ]; then return 0; fi
	echo "not in $page: ${miss[*]}" >&2
	return 1
}

funcs=$(grep -o 'pya_[a-z_]*(' userspace/include/pyalloc.h | tr -d '(' | sort -u)
flags=$(grep -o '^#define PYA_HEAP_[A-Z_]*' userspace/include/pyalloc.h | awk '{print $2}')
# shellcheck disable=SC2086
check "pyalloc(3) names every function and flag of <pyalloc.h>" \
	missing_in docs/man/pyalloc.3 $funcs $flags

params=$(grep -ho 'module_param[a-z_]*(\s*[a-z_]*' kmod/*.c | sed 's/.*(\s*//' | sort -u)
keys=$(grep -ho '"pyalloc-[a-z-]*' kmod/*.c | tr -d '"' | sort -u || true)
# shellcheck disable=SC2086
check "pyalloc(4) names every module parameter and fdinfo key" \
	missing_in docs/man/pyalloc.4 $params $keys

help_options() { "$@" --help 2>&1 | grep -oE '(^|[ [,])--?[a-zA-Z][-a-zA-Z]*' |
	sed 's/^[ [,]//' | sort -u; }
# shellcheck disable=SC2046
check "pyallocstat(1) documents every option of pyallocstat --help" \
	missing_in docs/man/pyallocstat.1 $(help_options /usr/bin/python3 tools/pyallocstat)
if [ -x tools/pyalloc-run ]; then
	# shellcheck disable=SC2046
	check "pyalloc-run(1) documents every option of pyalloc-run --help" \
		missing_in docs/man/pyalloc-run.1 $(help_options tools/pyalloc-run)
else
	skip "pyalloc-run(1) against pyalloc-run --help: tools/pyalloc-run is not in the tree"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
