# SPDX-License-Identifier: LGPL-2.1-or-later
"""Prove that this CPython's small objects come from /dev/pyalloc, then run
the rest of the command line as `python3 -m test ...` would.

Under PYTHONMALLOC=malloc every object is a malloc() block; id() of an
object is its address (plus the GC header in front for GC objects, in the
same block).  With the preload, a fresh small object must lie in the
mapping of /dev/pyalloc in /proc/self/maps; without it (the baseline run,
PYALLOC_EXPECT=0), it must not.  Either way one line says which, so a
silent fallback to glibc cannot pass.
"""
import os
import sys


def device_ranges():
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == "/dev/pyalloc":
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                ranges.append((lo, hi))
    return ranges


def main():
    expect = os.environ.get("PYALLOC_EXPECT", "1") == "1"
    objs = [object(), [1, 2], {"k": 1}, "s" * 40, 3.5]
    ranges = device_ranges()
    inside = [any(lo <= id(o) < hi for lo, hi in ranges) for o in objs]
    if expect and not all(inside):
        print("PROOF FAILED: small objects outside /dev/pyalloc:",
              [hex(id(o)) for o in objs], ranges, file=sys.stderr)
        sys.exit(3)
    if not expect and any(inside):
        print("PROOF FAILED: the baseline run uses /dev/pyalloc",
              file=sys.stderr)
        sys.exit(3)
    print("PROOF: %d of %d fresh objects in /dev/pyalloc mappings %s" %
          (sum(inside), len(objs),
           " ".join("%x-%x" % r for r in ranges) or "(none)"), flush=True)
    from test.libregrtest import main as regrtest_main
    regrtest_main()


if __name__ == "__main__":
    main()
