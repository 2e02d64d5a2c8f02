#!/usr/bin/env bash
# A Python for the VM guest, whose busybox initramfs has none: Debian's
# python3 interpreter (vm/run.sh --add copies it with its shared libraries)
# and, in OUTDIR/lib/python3.X, the part of its standard library that
# pyallocstat and the VM test use (every top-level module plus a few
# packages, no test suites), byte-compiled with unchecked hashes so the
# guest never recompiles (vm/run.sh does not keep modification times).
# The guest sets PYTHONHOME to OUTDIR.
#
#   tools/tests/vm-python.sh OUTDIR     prints the interpreter's path
set -euo pipefail

out=$1
py=$(readlink -f /usr/bin/python3)
ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
src=/usr/lib/python$ver
dst=$out/lib/python$ver
stamp=$out/.stamp
want="$py $(stat -c %Y "$py") $(stat -c %Y "$src/os.py") $(cksum <"$0")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	echo "$py"
	exit 0
fi
rm -rf "$out"
mkdir -p "$dst/lib-dynload"
cp "$src"/*.py "$dst/"
for pkg in encodings collections importlib json re concurrent logging; do
	cp -r "$src/$pkg" "$dst/"
done
# The extension modules used (the rest of the interpreter is built in).
for mod in _json _contextvars _queue _typing mmap resource termios; do
	cp "$src"/lib-dynload/"$mod".cpython-*.so "$dst/lib-dynload/"
done
find "$dst" -name __pycache__ -prune -exec rm -rf {} +
"$py" -m compileall -q -j0 --invalidation-mode unchecked-hash "$dst" >/dev/null
echo "$want" >"$stamp"
echo "$py"
