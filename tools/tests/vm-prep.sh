#!/usr/bin/env bash
# Stage pyallocstat's VM test in OUTDIR (default build/pyallocstat-vm): the
# tool, the test, pyalloc-holder and a Python for the guest
# (vm-python.sh).  Prints the vm/run.sh arguments that run it, one per
# line, for scripts/check.sh:
#
#   mapfile -t args < <(tools/tests/vm-prep.sh)
#   vm/run.sh --selftests selftests "${args[@]}"
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$top/build/pyallocstat-vm}
mkdir -p "$out"
${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -Werror -I"$top/uapi" \
	-o "$out/pyalloc-holder" "$here/pyalloc-holder.c" >&2
install -m 0755 "$top/tools/pyallocstat" "$here/pyallocstat-vm.sh" "$out/"
install -m 0644 "$here/pyallocstat_vm.py" "$out/"
py=$("$here/vm-python.sh" "$out/vm-python")
printf '%s\n' --add "$out" --add "$py" -- sh "$(basename "$out")/pyallocstat-vm.sh"
