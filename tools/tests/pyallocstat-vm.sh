#!/bin/sh
# In the VM guest: run pyallocstat's VM test (pyallocstat_vm.py) with the
# Python that tools/tests/vm-prep.sh staged next to this script.
set -eu
# shellcheck disable=SC3040
set -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=
for p in /pyalloc/python3.*; do [ -x "$p" ] && py=$p; done
if [ -z "$py" ]; then
	echo "# not ok 1 pyallocstat: no python3 in the guest (vm/run.sh --add it)"
	exit 1
fi
# The tool's own "#!/usr/bin/python3" line, as on an installed system.
mkdir -p /usr/bin
ln -sf "$py" /usr/bin/python3
PYTHONHOME=$here/vm-python
PYTHONDONTWRITEBYTECODE=1
export PYTHONHOME PYTHONDONTWRITEBYTECODE
exec /usr/bin/python3 "$here/pyallocstat_vm.py"
