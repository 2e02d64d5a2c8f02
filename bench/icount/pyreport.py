#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The Python programs' instruction counts, for bench/icount/python.sh.

    pyreport.py WORKDIR OUTDIR --programs "churn.py 3000\n..." [--machine ...]

WORKDIR holds LABEL.PROGRAM.cg, callgrind's output of one whole run.  Each
count is the run's total; pyalloc's drop-in is shown without the host
stand-in of the device (its inclusive cost, what the kernel does with the
real device), which is shown apart.  Ratios are to stock python3
(pymalloc).  Writes OUTDIR/python-icount.md and python-icount.csv.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import GLIBC_ALLOC, Profile  # noqa: E402

LABELS = [
    ("pymalloc", "pymalloc (stock)"),
    ("glibc", "glibc"),
    ("jemalloc", "jemalloc"),
    ("mimalloc", "mimalloc"),
    ("tcmalloc", "tcmalloc"),
    ("pyalloc-malloc", "pyalloc drop-in"),
]
# The object each preload must show work in (its malloc really ran), by
# the start of its file name (callgrind names libmimalloc.so.2's target).
OBJECT = {"jemalloc": "libjemalloc.so", "mimalloc": "libmimalloc.so",
          "tcmalloc": "libtcmalloc_minimal.so",
          "pyalloc-malloc": "libpyalloc-malloc.so"}


def glibc_alloc(p):
    return sum(c for (ob, fn), c in p.self_cost.items()
               if ob.startswith("libc.so") and fn in GLIBC_ALLOC)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("out")
    ap.add_argument("--programs", required=True)
    ap.add_argument("--python", default="")
    ap.add_argument("--machine", default="")
    ap.add_argument("--date", default="")
    ap.add_argument("--commit", default="")
    ap.add_argument("--seconds", default="")
    a = ap.parse_args()
    # (name, argv): "gcgraph", ["gcgraph.py", "1"]
    progs = [(argv[0].removesuffix(".py"), argv)
             for argv in (line.split() for line in a.programs.splitlines())
             if argv]

    prof = {}
    for name, _ in progs:
        for label, _ in LABELS:
            path = os.path.join(a.work, f"{label}.{name}.cg")
            if not os.path.exists(path):
                sys.exit(f"pyreport.py: no {path}")
            prof[label, name] = Profile(path)

    # Every preload must have served the program: its object did work,
    # and pyalloc's drop-in took the small blocks (glibc's allocator, which
    # serves what is above 512 bytes under pymalloc too, did no more than
    # under pymalloc; at the stand-in's memory limit it would take them).
    for (label, name), p in prof.items():
        ob = OBJECT.get(label)
        if ob and not any(o.startswith(ob) and c
                          for (o, _), c in p.self_cost.items()):
            sys.exit(f"pyreport.py: {label} did not run in {name} (LD_PRELOAD?)")
    for name, _ in progs:
        pa, pm = prof["pyalloc-malloc", name], prof["pymalloc", name]
        if not pa.dev_incl:
            sys.exit(f"pyreport.py: pyalloc's drop-in had no heap in {name}")
        if glibc_alloc(pa) > 1.5 * glibc_alloc(pm) + 1e6:
            sys.exit(f"pyreport.py: pyalloc's drop-in sent {name}'s blocks to "
                     f"glibc ({glibc_alloc(pa)} instructions in its allocator, "
                     f"{glibc_alloc(pm)} under pymalloc)")

    def user(label, name):
        p = prof[label, name]
        return p.total - p.dev_incl

    def calls(label, name):
        """Function calls of the whole run, the stand-in's own left out
        (its callers' calls into it included)."""
        p = prof[label, name]
        return p.calls - p.dev_inner_calls

    csv = ["program,args,alloc,ir,standin_ir,standin_ioctls,ir_without_standin,"
           "ratio_to_pymalloc,calls,calls_ratio_to_pymalloc"]
    for name, argv in progs:
        base = user("pymalloc", name)
        for label, _ in LABELS:
            p = prof[label, name]
            csv.append(f"{name},{' '.join(argv[1:])},{label},{p.total},"
                       f"{p.dev_incl},{p.dev_calls.get('pyai_dev_ioctl', 0)},"
                       f"{user(label, name)},{user(label, name) / base:.3f},"
                       f"{calls(label, name)},"
                       f"{calls(label, name) / calls('pymalloc', name):.3f}")

    md = ["## Python, instructions (callgrind, host)\n"]
    meta = [x for x in (a.date, a.machine,
                        f"Python {a.python}" if a.python else "",
                        f"commit {a.commit}" if a.commit else "",
                        f"{a.seconds} s" if a.seconds else "") if x]
    md.append(", ".join(meta) + ".\n")
    md.append("The programs of `bench/py/` (smaller arguments than in the VM) "
              "run whole under callgrind: stock python3 (pymalloc), and "
              "`PYTHONMALLOC=malloc` under each allocator. Instructions of "
              "the whole run, as a ratio to pymalloc, millions in "
              "parentheses; user space only (no system call, page fault or "
              "cache miss is counted). pyalloc's drop-in runs over the host "
              "stand-in of `/dev/pyalloc`, whose instructions (what the "
              "kernel does with the real device) are left out of its column "
              "and shown in the last one.\n")
    md.append("| program | " + " | ".join(t for _, t in LABELS) +
              " | pyalloc's stand-in: M Ir, ioctls |")
    md.append("|---|" + "---:|" * (len(LABELS) + 1))
    for name, argv in progs:
        base = user("pymalloc", name)
        cells = [f"{user(label, name) / base:.3f}x ({user(label, name) / 1e6:.0f})"
                 for label, _ in LABELS]
        pa = prof["pyalloc-malloc", name]
        cells.append(f"{pa.dev_incl / 1e6:.0f}, "
                     f"{pa.dev_calls.get('pyai_dev_ioctl', 0)}")
        md.append(f"| `{' '.join(argv)}` | " + " | ".join(cells) + " |")
    md.append("")
    md.append("Function calls of the whole run (callgrind's call counts; the "
              "stand-in's internal calls left out), as a ratio to pymalloc, "
              "millions in parentheses. Natively a call and its return cost "
              "a few cycles; under QEMU TCG each return, and each call "
              "through a pointer or the PLT, is an indirect jump that the "
              "emulator looks up, so the VM's wall times weigh them more "
              "than the instruction counts do:\n")
    md.append("| program | " + " | ".join(t for _, t in LABELS) + " |")
    md.append("|---|" + "---:|" * len(LABELS))
    for name, argv in progs:
        base = calls("pymalloc", name)
        cells = [f"{calls(label, name) / base:.3f}x ({calls(label, name) / 1e6:.1f})"
                 for label, _ in LABELS]
        md.append(f"| `{' '.join(argv)}` | " + " | ".join(cells) + " |")
    md.append("")
    with open(os.path.join(a.out, "python-icount.csv"), "w") as f:
        f.write("\n".join(csv) + "\n")
    with open(os.path.join(a.out, "python-icount.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
