#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Instructions per pair from callgrind's output files, for bench/icount/run.sh.

    report.py WORKDIR OUTDIR --pairs N --rows "steady ..." [--machine ...]

WORKDIR holds LABEL.ROW.cg, callgrind's raw output of one run, collected
only inside the measured loop.  Per pair = (Ir of the run - Ir of the no-op
allocator's run of the same binary and row) / pairs.  The per-function
table is each function's own (self) instructions per pair, the harness
binary's functions left out.  Writes OUTDIR/icount.md and icount.csv.
"""
import argparse
import os
import re
import sys

LABELS = [
    # label, column title, the no-op run it is measured against
    ("pyalloc", "pyalloc", "noop"),
    ("pyalloc-malloc", "pyalloc drop-in", "noop"),
    ("glibc", "glibc", "noop"),
    ("jemalloc", "jemalloc", "noop"),
    ("mimalloc", "mimalloc", "noop"),
    ("tcmalloc", "tcmalloc", "noop"),
    ("pyalloc-static", "pyalloc static", "noop-static"),
]
# Functions of the host stand-in of /dev/pyalloc (tests/host/lib_fakedev.c):
# what the kernel does with the real device, where callgrind cannot see.
DEV_PREFIX = "pyai_dev_"
DEV_FILE = "lib_fakedev.c"
BREAKDOWN = ["pyalloc", "pyalloc-malloc", "mimalloc"]

# glibc's allocator functions: work they did was not the drop-in's.
GLIBC_ALLOC = {"malloc", "free", "calloc", "realloc", "cfree",
               "_int_malloc", "_int_free", "_int_realloc",
               "__libc_malloc", "__libc_free", "__libc_calloc",
               "__libc_realloc", "malloc_consolidate", "tcache_init",
               "unlink_chunk.constprop.0"}

NAME = re.compile(r"^\((\d+)\)(?: (.*))?$")


class Profile:
    def __init__(self, path):
        self.total = 0
        self.self_cost = {}     # (object, function) -> Ir
        self.dev_incl = 0       # inclusive Ir of calls into the stand-in
        self.dev_calls = {}     # stand-in function -> calls
        self.calls = 0          # function calls made (callgrind's calls=)
        self.dev_inner_calls = 0  # of which made inside the stand-in
        self._parse(path)

    @staticmethod
    def _name(table, value):
        m = NAME.match(value)
        if not m:
            return value
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), "?")

    def _parse(self, path):
        names = {"ob": {}, "fn": {}, "fl": {}}
        ob = fn = cfn = fl = None
        after_call = False
        call_count = 0
        summary = None
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                c = line[0]
                if c.isdigit() or c in "+-*":
                    parts = line.split()
                    cost = int(parts[1]) if len(parts) > 1 else 0
                    if after_call:
                        # Inclusive cost of the call just named.
                        if (cfn.startswith(DEV_PREFIX) and
                                not fn.startswith(DEV_PREFIX)):
                            self.dev_incl += cost
                            self.dev_calls[cfn] = (
                                self.dev_calls.get(cfn, 0) + call_count)
                        after_call = False
                    else:
                        key = (ob, fn)
                        self.self_cost[key] = self.self_cost.get(key, 0) + cost
                        self.total += cost
                    continue
                key, _, value = line.partition("=")
                if key == "ob":
                    ob = os.path.basename(self._name(names["ob"], value))
                elif key == "fn":
                    fn = self._name(names["fn"], value)
                elif key == "cob":
                    self._name(names["ob"], value)
                elif key == "fl":
                    fl = self._name(names["fl"], value)
                elif key in ("fi", "fe", "cfi", "cfl"):
                    self._name(names["fl"], value)
                elif key == "cfn":
                    cfn = self._name(names["fn"], value)
                elif key == "calls":
                    call_count = int(value.split()[0])
                    self.calls += call_count
                    if fl and fl.endswith(DEV_FILE):
                        self.dev_inner_calls += call_count
                    after_call = True
                elif line.startswith("summary:") or line.startswith("totals:"):
                    summary = int(line.split(":")[1].split()[0])
        if summary is not None and summary != self.total:
            sys.exit(f"report.py: {path}: summary {summary} != sum {self.total}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("out")
    ap.add_argument("--pairs", type=int, required=True)
    ap.add_argument("--live", type=int, default=4096)
    ap.add_argument("--rows", required=True)
    ap.add_argument("--machine", default="")
    ap.add_argument("--date", default="")
    ap.add_argument("--commit", default="")
    ap.add_argument("--seconds", default="")
    a = ap.parse_args()
    rows = a.rows.split()
    n = a.pairs

    prof = {}
    for row in rows:
        for label in ["noop", "noop-static"] + [x[0] for x in LABELS]:
            p = os.path.join(a.work, f"{label}.{row}.cg")
            if os.path.exists(p):
                prof[label, row] = Profile(p)

    def per_pair(label, noop, row):
        if (label, row) not in prof or (noop, row) not in prof:
            return None
        return (prof[label, row].total - prof[noop, row].total) / n

    # The drop-in malloc must really have served the requests from the
    # library (it falls back to glibc silently when it has no heap): its
    # own malloc and free did the work, glibc's allocator none of it.
    for row in rows:
        p = prof.get(("pyalloc-malloc", row))
        if not p:
            continue
        ours = sum(cost for (ob, fn), cost in p.self_cost.items()
                   if ob == "libpyalloc-malloc.so" and fn in ("malloc", "free"))
        theirs = sum(cost for (ob, fn), cost in p.self_cost.items()
                     if ob.startswith("libc.so") and fn in GLIBC_ALLOC)
        if ours < n or theirs > n / 100:
            sys.exit(f"report.py: the drop-in malloc did not use the library on {row}"
                     f" (its malloc/free {ours} instructions, glibc's {theirs})")

    def calls_per_pair(label, noop, row):
        """Callgrind counts calls whether or not it collects costs, so its
        call counts cover the whole run: the fill (one allocation per
        object), the warm-up and the measured pairs, and the final frees
        (one per object): 2 * pairs + live pair-equivalents."""
        if (label, row) not in prof or (noop, row) not in prof:
            return None
        return ((prof[label, row].calls - prof[noop, row].calls)
                / (2 * n + a.live))

    csv = ["row,alloc,pairs,ir,ir_noop,per_pair,device_per_pair,"
           "device_ioctls_per_1000,calls_per_pair"]
    for row in rows:
        for label, _, noop in LABELS:
            v = per_pair(label, noop, row)
            if v is None:
                continue
            p = prof[label, row]
            ioctls = p.dev_calls.get("pyai_dev_ioctl", 0)
            csv.append(f"{row},{label},{n},{p.total},{prof[noop, row].total},"
                       f"{v:.1f},{p.dev_incl / n:.2f},{1000 * ioctls / n:.3f},"
                       f"{calls_per_pair(label, noop, row):.2f}")

    md = []
    md.append("## Instructions per pair (callgrind, host)\n")
    meta = [x for x in (a.date, a.machine,
                        f"commit {a.commit}" if a.commit else "",
                        f"{a.seconds} s" if a.seconds else "") if x]
    md.append(f"{', '.join(meta)}. {n:,} measured pairs per run after as "
              "many warm-up pairs, 4096 live objects; the no-op allocator's "
              "count (the harness: random numbers, the slot array, the "
              "indirect calls) subtracted.\n")
    cols = [t for l, t, _ in LABELS if any((l, r) in prof for r in rows)]
    md.append("| row | " + " | ".join(cols) + " |")
    md.append("|---|" + "---:|" * len(cols))
    for row in rows:
        cells = []
        for label, _, noop in LABELS:
            if not any((label, r) in prof for r in rows):
                continue
            v = per_pair(label, noop, row)
            cells.append("-" if v is None else f"{v:.1f}")
        md.append(f"| {row} | " + " | ".join(cells) + " |")
    md.append("")
    md.append("Function calls per pair beyond the no-op's two (callgrind's call "
              "counts, over the whole run; under QEMU TCG every return is an "
              "indirect jump, so calls weigh more in the VM than on "
              "hardware):\n")
    md.append("| row | " + " | ".join(cols) + " |")
    md.append("|---|" + "---:|" * len(cols))
    for row in rows:
        cells = []
        for label, _, noop in LABELS:
            if not any((label, r) in prof for r in rows):
                continue
            v = calls_per_pair(label, noop, row)
            cells.append("-" if v is None else f"{v:.2f}")
        md.append(f"| {row} | " + " | ".join(cells) + " |")
    md.append("")
    md.append("pyalloc and pyalloc static: libpyalloc's API (`pya_malloc`, "
              "`pya_free`, `pya_calloc`, `pya_realloc`), linked as "
              "`-lpyalloc` (the shared library) and as `libpyalloc.a`; "
              "pyalloc drop-in: `libpyalloc-malloc.so` in `LD_PRELOAD`; "
              "the others through `LD_PRELOAD` of the Debian library (glibc: "
              "none). Every pyalloc column runs over the host stand-in of "
              "`/dev/pyalloc` (`tests/host/lib_fakedev.c`) and includes its "
              "instructions; what the stand-in did per pair, in place of the "
              "kernel:\n")
    md.append("| row | " + " | ".join(
        f"{t}: stand-in Ir/pair, ioctls/1000 pairs"
        for l, t, _ in LABELS if l.startswith("pyalloc")) + " |")
    md.append("|---|" + "---:|" * sum(1 for l, _, _ in LABELS
                                       if l.startswith("pyalloc")))
    for row in rows:
        cells = []
        for label, _, _ in LABELS:
            if not label.startswith("pyalloc"):
                continue
            p = prof.get((label, row))
            if not p:
                cells.append("-")
                continue
            io = p.dev_calls.get("pyai_dev_ioctl", 0)
            cells.append(f"{p.dev_incl / n:.1f}, {1000 * io / n:.2f}")
        md.append(f"| {row} | " + " | ".join(cells) + " |")
    md.append("")

    harness = {"icount", "icount-static"}
    for label in BREAKDOWN:
        title = dict((l, t) for l, t, _ in LABELS)[label]
        funcs = {}
        for row in rows:
            p = prof.get((label, row))
            if not p:
                continue
            for (ob, fn), cost in p.self_cost.items():
                if ob in harness:
                    continue
                funcs.setdefault((ob, fn), {})[row] = cost / n
        if not funcs:
            continue
        order = sorted(funcs, key=lambda k: -sum(funcs[k].values()))
        md.append(f"{title}: each function's own instructions per pair "
                  "(callgrind's self cost; inlined code counts in the "
                  "function it is inlined into; under 0.5 in every row "
                  "left out):\n")
        md.append("| function | object | " + " | ".join(rows) + " |")
        md.append("|---|---|" + "---:|" * len(rows))
        for k in order:
            if max(funcs[k].values()) < 0.5:
                continue
            md.append(f"| `{k[1]}` | {k[0]} | " + " | ".join(
                f"{funcs[k].get(r, 0):.1f}" for r in rows) + " |")
        md.append("")

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "icount.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(a.out, "icount.csv"), "w") as f:
        f.write("\n".join(csv) + "\n")


if __name__ == "__main__":
    main()
