#!/usr/bin/env bash
# `make deb`: the Debian packages of this tree (debian/), built with
# dpkg-buildpackage in a copy of the tree under build/, so that neither the
# work tree nor its parent directory gets build products.
#
#   packaging/make-deb.sh [OUTDIR]      default build/deb
#
# OUTDIR receives the .deb files (pyalloc-dkms, libpyalloc1, libpyalloc-dev,
# pyalloc-tools and the -dbgsym packages), the .changes and .buildinfo, and
# build.log.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-build/deb}
case $out in /*) ;; *) out=$top/$out ;; esac
cd "$top"

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
stage=$top/build/deb-src
rm -rf "$stage" "$out"
mkdir -p "$stage/pyalloc-$version" "$out"

# The tree as git sees it: tracked files and new ones not ignored, so that
# build products of the work tree never leak into the packages.
git ls-files -z -c -o --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	cpio -0 -pdm --quiet "$stage/pyalloc-$version"

echo "make deb: dpkg-buildpackage in $stage/pyalloc-$version (log: $out/build.log)"
if ! (cd "$stage/pyalloc-$version" &&
      dpkg-buildpackage -b -us -uc -j"$(nproc)") >"$out/build.log" 2>&1; then
	tail -n 40 "$out/build.log"
	echo "make deb: dpkg-buildpackage failed (see $out/build.log)" >&2
	exit 1
fi
mv "$stage"/*.deb "$stage"/*.changes "$stage"/*.buildinfo "$out"/
for f in "$stage"/*.ddeb; do [ -e "$f" ] && mv "$f" "$out"/; done
rm -rf "$stage"
ls -1 "$out"
