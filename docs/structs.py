#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Keep docs/userspace-api.rst in step with uapi/linux/pyalloc.h.

The page carries each structure of the header and the ioctl command
definitions as literal blocks, each after a marker comment
(".. pyalloc-struct: NAME", ".. pyalloc-ioctls").  --check (the default)
fails when a block differs from the header, when a structure of the header
has no block, or when a PYALLOC_IOC_* command has no section of its own;
--update rewrites the blocks from the header.

    docs/structs.py [--check | --update] [--header H] [--page P]
"""

import argparse
import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INDENT = "    "


def header_blocks(text):
    """{marker: [lines]}: every struct, and the command definitions."""
    lines = text.split("\n")
    blocks = {}
    i = 0
    while i < len(lines):
        m = re.match(r"^struct (\w+) \{$", lines[i])
        if m:
            j = i
            while lines[j] != "};":
                j += 1
            blocks["pyalloc-struct: " + m.group(1)] = lines[i:j + 1]
            i = j
        i += 1
    first = next(i for i, x in enumerate(lines)
                 if x.startswith("#define PYALLOC_IOC_MAGIC"))
    last = max(i for i, x in enumerate(lines)
               if re.match(r"#define PYALLOC_IOC_\w+\s+_IO", x))
    blocks["pyalloc-ioctls"] = lines[first:last + 1]
    return {k: [x.expandtabs(8).rstrip() for x in v]
            for k, v in blocks.items()}


def commands(text):
    return re.findall(r"^#define (PYALLOC_IOC_\w+)\s+_IO", text, re.M)


def page_blocks(lines):
    """{marker: (start, end)}: the literal block's line range after each
    marker (the indented lines following the '::' paragraph)."""
    out = {}
    for i, line in enumerate(lines):
        m = re.match(r"^\.\. (pyalloc-(?:struct: \w+|ioctls))\s*$", line)
        if not m:
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != "::":
            if lines[j].strip():
                raise SystemExit("docs: %s: no '::' after the marker"
                                 % m.group(1))
            j += 1
        j += 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        start = j
        while j < len(lines) and (lines[j].startswith(INDENT) or
                                  not lines[j].strip()):
            j += 1
        while j > start and not lines[j - 1].strip():
            j -= 1
        out[m.group(1)] = (start, j)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--update", action="store_true")
    p.add_argument("--check", action="store_true")
    p.add_argument("--header", default=os.path.join(TOP, "uapi/linux/pyalloc.h"))
    p.add_argument("--page", default=os.path.join(TOP, "docs/userspace-api.rst"))
    args = p.parse_args()
    htext = open(args.header).read()
    want = header_blocks(htext)
    lines = open(args.page).read().split("\n")
    have = page_blocks(lines)
    problems = []
    for name in want:
        if name not in have:
            problems.append("%s: in the header, not in the page (add a "
                            "'.. %s' marker and a '::' block)" % (name, name))
    for name in have:
        if name not in want:
            problems.append("%s: in the page, not in the header" % name)
    text = "\n".join(lines)
    for cmd in commands(htext):
        if not re.search(r"^%s\n=+$" % cmd, text, re.M):
            problems.append("%s: no section of its own in the page" % cmd)
    stale = []
    for name, (s, e) in have.items():
        if name not in want:
            continue
        cur = [x[len(INDENT):] if x.strip() else "" for x in lines[s:e]]
        if cur != want[name]:
            stale.append(name)
    if args.update:
        for name, (s, e) in sorted(have.items(), key=lambda kv: -kv[1][0]):
            if name in want:
                lines[s:e] = [INDENT + x if x else "" for x in want[name]]
        with open(args.page, "w") as f:
            f.write("\n".join(lines))
        stale = []
    for name in stale:
        problems.append("%s: the page's copy differs from the header (run "
                        "docs/structs.py --update)" % name)
    for msg in problems:
        print("docs/userspace-api.rst: " + msg, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
