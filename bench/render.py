#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the guest's raw CSVs into bench/results/: results.md, results.csv,
throughput.png, memory.png (and the raw CSVs beside them).

    render.py GUEST_OUT_DIR RESULTS_DIR --machine "..." --date "..." [--elapsed S]

Standard library only; the charts are drawn by gnuplot.
"""
import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys

ALLOCS = ["pyalloc", "pyalloc-debug", "glibc", "jemalloc", "mimalloc", "tcmalloc"]
WORKLOADS = [
    ("steady", "(a) steady state, 8..512 B"),
    ("growth", "(b) growth: N allocs, N frees"),
    ("prodcons", "(c) producer/consumer, 2 threads"),
    ("fixed16", "(d) fixed 16 B"),
    ("fixed48", "(d) fixed 48 B"),
    ("fixed512", "(d) fixed 512 B"),
    ("larson", "(e) larson-like, 4 threads"),
]
SHORT = {"steady": "a steady", "growth": "b growth", "prodcons": "c prodcons",
         "fixed16": "d 16B", "fixed48": "d 48B", "fixed512": "d 512B",
         "larson": "e larson"}
MEM_ALLOCS = ["pyalloc", "glibc", "jemalloc", "mimalloc", "tcmalloc"]


def read(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def quantile(values, q):
    """Linear interpolation between the closest ranks (values sorted)."""
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def stats(values):
    """median, min, max, n."""
    values = sorted(values)
    return statistics.median(values), values[0], values[-1], len(values)


def iqr(values):
    values = sorted(values)
    return quantile(values, 0.25), quantile(values, 0.75)


def mops(v):
    return f"{v / 1e6:.2f}" if v >= 1e5 else f"{v / 1e6:.3f}"


def pct(v):
    # RSS can grow by a page or two between two readings: no negative share.
    return f"{100 * max(v, 0.0):.2f}%"


COLORS = {"pyalloc": "#8e24aa", "pyalloc-debug": "#ce93d8", "glibc": "#607d8b",
          "jemalloc": "#f9a825", "mimalloc": "#43a047", "tcmalloc": "#1e88e5"}


def plot_cmd(dat, allocs):
    parts = []
    for i, a in enumerate(allocs):
        using = f"{i + 2}:xtic(1)" if i == 0 else f"{i + 2}"
        parts.append(f"'{dat}' using {using} title '{a}' lc rgb '{COLORS[a]}'")
    parts.append('1 with lines dt 2 lc rgb "black" notitle')
    return "plot " + ", \\\n     ".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("guest_out")
    ap.add_argument("results")
    ap.add_argument("--machine", required=True)
    ap.add_argument("--date", required=True)
    ap.add_argument("--elapsed", default="")
    ap.add_argument("--commit", default="")
    args = ap.parse_args()

    src, dst = args.guest_out, args.results
    os.makedirs(dst, exist_ok=True)
    thr = read(os.path.join(src, "throughput.csv"))
    mem = read(os.path.join(src, "memory.csv"))
    guest = {}
    gpath = os.path.join(src, "guest.txt")
    if os.path.exists(gpath):
        for line in open(gpath):
            k, _, v = line.partition(": ")
            guest[k.strip()] = v.strip()
    failures = []
    fpath = os.path.join(src, "failures.txt")
    if os.path.exists(fpath):
        failures = [line.strip() for line in open(fpath) if line.strip()]

    # ---- aggregate --------------------------------------------------------
    tp = {}     # (workload, alloc) -> (median, min, max, n) of ops/s
    io = {}     # (workload, alloc) -> median ioctls per 1000 ops
    byrep = {}  # (workload, alloc) -> [ops/s of each repetition]
    for w, _ in WORKLOADS:
        for a in ALLOCS:
            rows = [r for r in thr if r["workload"] == w and r["alloc"] == a]
            if rows:
                tp[w, a] = stats([float(r["ops_per_sec"]) for r in rows])
                io[w, a] = stats([float(r["ioctls_per_1000"]) for r in rows])
                byrep[w, a] = [float(r["ops_per_sec"]) for r in rows]

    def ratio(w, a):
        """Ratio of the medians."""
        if (w, a) in tp and (w, "glibc") in tp:
            return tp[w, a][0] / tp[w, "glibc"][0]
        return None

    sizes = sorted({int(r["size"]) for r in mem})
    mm = {}     # (size, alloc) -> dict of medians
    for z in sizes:
        for a in MEM_ALLOCS:
            rows = [r for r in mem if int(r["size"]) == z and r["alloc"] == a]
            if not rows:
                continue
            ideal = float(rows[0]["ideal"])
            peak = stats([float(r["peak"]) for r in rows])
            per = stats([float(r["peak"]) / ideal for r in rows])
            ret = stats([(float(r["peak"]) - float(r["after_free"])) / float(r["peak"])
                         for r in rows])
            ret_rel = stats([(float(r["peak"]) - float(r["after_release"])) / float(r["peak"])
                             for r in rows])
            rss = stats([float(r["rss_peak"]) / ideal for r in rows])
            mm[z, a] = dict(ideal=ideal, peak=peak, per=per, ret=ret,
                            ret_rel=ret_rel, rss=rss, release=rows[0]["release"],
                            left=stats([float(r["after_free"]) for r in rows]),
                            left_rel=stats([float(r["after_release"]) for r in rows]))

    # ---- results.csv --------------------------------------------------------
    with open(os.path.join(dst, "results.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["metric", "case", "alloc", "median", "min", "max", "n",
                      "p25", "p75", "ratio_to_glibc"])
        for w, _ in WORKLOADS:
            for a in ALLOCS:
                if (w, a) in tp:
                    m, lo, hi, n = tp[w, a]
                    q1, q3 = iqr(byrep[w, a])
                    r = ratio(w, a)
                    out.writerow(["ops_per_sec", w, a, f"{m:.0f}", f"{lo:.0f}",
                                  f"{hi:.0f}", n, f"{q1:.0f}", f"{q3:.0f}",
                                  f"{r:.3f}" if r else ""])
        for w, _ in WORKLOADS:
            for a in ("pyalloc", "pyalloc-debug"):
                if (w, a) in io:
                    m, lo, hi, n = io[w, a]
                    out.writerow(["ioctls_per_1000_ops", w, a, f"{m:.3f}",
                                  f"{lo:.3f}", f"{hi:.3f}", n])
        for (z, a), d in sorted(mm.items()):
            for key, metric in (("per", "resident_per_live_byte"),
                                ("rss", "rss_growth_per_live_byte"),
                                ("ret", "share_returned_after_free"),
                                ("ret_rel", "share_returned_after_release")):
                m, lo, hi, n = d[key]
                out.writerow([metric, f"{z}B", a, f"{m:.4f}", f"{lo:.4f}",
                              f"{hi:.4f}", n])
    for name in ("throughput.csv", "memory.csv", "guest.txt"):
        if os.path.exists(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(dst, "raw-" + name))

    # ---- results.md ---------------------------------------------------------
    reps = max((v[3] for v in tp.values()), default=0)
    mreps = max((d["per"][3] for d in mm.values()), default=0)
    L = []
    L.append("# pyalloc benchmark results")
    L.append("")
    L.append(f"{args.date} on {args.machine}; guest kernel "
             f"{guest.get('kernel', '?')}, {guest.get('memory', '?')}, "
             f"clocksource {guest.get('clocksource', '?')}"
             + (f"; tree {args.commit}" if args.commit else "")
             + (f"; `make bench` took {args.elapsed}" if args.elapsed else "") + ".")
    L.append("")
    L.append("QEMU TCG emulates the CPU, so absolute figures mean little: compare "
             "allocators within this table only. Every cell is one process per "
             "repetition, all in the same guest; repetitions are interleaved "
             "across allocators. Regenerate with `make bench`.")
    L.append("")
    L.append(f"### Throughput: million operations/s, median of {reps} "
             "[interquartile range], and the ratio of the median to glibc's")
    L.append("")
    L.append("Under TCG a process's speed varies from one process to the next "
             "by up to 2-3x: the per-slice rates within one process agree, those "
             "of two processes of the same allocator do not (not guest THP, not "
             "ASLR; cause not identified), and the host was shared with other "
             "work. The spread is wide, min and max are in `results.csv`, and "
             "a ratio within about 15% of 1.0 can flip between runs.")
    L.append("")
    L.append("| workload | " + " | ".join(ALLOCS) + " |")
    L.append("|---|" + "---|" * len(ALLOCS))
    for w, title in WORKLOADS:
        cells = []
        for a in ALLOCS:
            if (w, a) not in tp:
                cells.append("n/a")
                continue
            m = tp[w, a][0]
            q1, q3 = iqr(byrep[w, a])
            r = ratio(w, a)
            cells.append(f"{mops(m)} [{mops(q1)}-{mops(q3)}] **{r:.2f}x**"
                         if r is not None else mops(m))
        L.append(f"| {title} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("An operation is one malloc or one free. ioctls per 1000 "
             "operations (library counters `ioctl_alloc + ioctl_free` over the "
             "timed phase; median [min-max]):")
    L.append("")
    L.append("| workload | pyalloc | pyalloc-debug |")
    L.append("|---|---|---|")
    for w, title in WORKLOADS:
        cells = []
        for a in ("pyalloc", "pyalloc-debug"):
            if (w, a) in io:
                m, lo, hi, _ = io[w, a]
                cells.append(f"{m:.2f} [{lo:.2f}-{hi:.2f}]")
            else:
                cells.append("n/a")
        L.append(f"| {title} | " + " | ".join(cells) + " |")
    L.append("")
    count = int(mem[0]["count"]) if mem else 0
    L.append(f"### Memory: {count:,} live objects, resident bytes per ideal "
             f"byte (ideal = class size x N), median of {mreps}")
    L.append("")
    L.append("| size | " + " | ".join(MEM_ALLOCS) + " |")
    L.append("|---|" + "---|" * len(MEM_ALLOCS))
    for z in sizes:
        cells = []
        for a in MEM_ALLOCS:
            if (z, a) in mm:
                d = mm[z, a]
                cells.append(f"{d['per'][0]:.3f} ({d['peak'][0] / 2**20:.1f} MiB)")
            else:
                cells.append("n/a")
        L.append(f"| {z} B | " + " | ".join(cells) + " |")
    L.append("")
    L.append("Share of the peak given back to the kernel once every object is "
             "freed: as left by `free()`, and after the allocator's explicit "
             "release call (pyalloc `pya_heap_trim`, glibc `malloc_trim(0)`, "
             "jemalloc `arena.<all>.purge`, mimalloc `mi_collect(true)`, "
             "tcmalloc `MallocExtension_ReleaseFreeMemory`):")
    L.append("")
    L.append("| size | " + " | ".join(MEM_ALLOCS) + " |")
    L.append("|---|" + "---|" * len(MEM_ALLOCS))
    for z in sizes:
        cells = []
        for a in MEM_ALLOCS:
            if (z, a) in mm:
                d = mm[z, a]
                cells.append(f"{pct(d['ret'][0])} / {pct(d['ret_rel'][0])}")
            else:
                cells.append("n/a")
        L.append(f"| {z} B | " + " | ".join(cells) + " |")
    L.append("")
    L.append("Memory is measured as the heap's pool pages from the kernel "
             "(`PYALLOC_IOC_STATS` pages x 4096: everything the heap holds, "
             "from an empty heap) for pyalloc, and as resident set growth "
             "(`/proc/self/statm`, over a baseline after one warm-up "
             "malloc/free) for the others. pyalloc's own resident set growth, "
             "which adds the library's page-class table and magazines, was "
             + ", ".join(f"{mm[z, 'pyalloc']['rss'][0]:.3f}x at {z} B"
                         for z in sizes if (z, "pyalloc") in mm)
             + " of the ideal.")
    L.append("")

    # ---- targets -----------------------------------------------------------
    L.append("### Targets (issue 5)")
    L.append("")
    L.append("| target | measured | verdict |")
    L.append("|---|---|---|")

    def verdict(ok, short):
        return "met" if ok else f"**missed** by {short}"

    for w in ("steady", "fixed16", "fixed48", "fixed512"):
        r = ratio(w, "pyalloc")
        if r is None:
            L.append(f"| throughput >= 1.0x glibc, {SHORT[w]} | n/a | not measured |")
            continue
        q1, q3 = iqr(byrep[w, "pyalloc"])
        g1, g3 = iqr(byrep[w, "glibc"])
        v = verdict(r >= 1.0, f"{100 * (1 - r):.1f}%")
        if q1 <= g3 and g1 <= q3:
            v += " (within the spread: the interquartile ranges overlap)"
        L.append(f"| throughput >= 1.0x glibc, {SHORT[w]} | {r:.2f}x | {v} |")
    if ("steady", "pyalloc") in io:
        v = io["steady", "pyalloc"][0]
        L.append(f"| <= 4 ioctls per 1000 operations, (a) | {v:.2f} | "
                 f"{verdict(v <= 4, f'{v - 4:.2f} ioctls per 1000')} |")
    if (24, "pyalloc") in mm:
        v = mm[24, "pyalloc"]["per"][0]
        L.append(f"| resident <= 1.05x ideal, 1,000,000 x 24 B | {v:.3f}x | "
                 f"{verdict(v <= 1.05, f'{v - 1.05:.3f}x')} |")
    for z in sizes:
        if (z, "pyalloc") not in mm:
            continue
        d = mm[z, "pyalloc"]
        for key, how in (("ret", "after free"), ("ret_rel", "after free + pya_heap_trim")):
            v = d[key][0]
            left = d["left" if key == "ret" else "left_rel"][0]
            L.append(f"| >= 99% of pages returned, {z} B, {how} | {pct(v)} "
                     f"({left / 4096:.0f} pages kept) | "
                     f"{verdict(v >= 0.99, f'{100 * (0.99 - v):.2f} points')} |")
    L.append("")
    if failures:
        L.append("**Failed runs** (left out above):")
        L.append("")
        for line in failures:
            L.append(f"- `{line}`")
        L.append("")
    L.append("Charts: `throughput.png` (ratio to glibc per workload), "
             "`memory.png` (resident bytes per ideal byte). Raw per-run "
             "figures: `raw-throughput.csv`, `raw-memory.csv`; aggregates: "
             "`results.csv`. What limits the missed targets: see "
             "`bench/README.md`.")
    L.append("")
    with open(os.path.join(dst, "results.md"), "w") as f:
        f.write("\n".join(L))

    # ---- charts --------------------------------------------------------------
    with open(os.path.join(dst, "throughput.dat"), "w") as f:
        for w, _ in WORKLOADS:
            vals = [ratio(w, a) for a in ALLOCS]
            f.write(f'"{SHORT[w]}" ' + " ".join(f"{v:.4f}" if v else "NaN"
                                                for v in vals) + "\n")
    with open(os.path.join(dst, "memory.dat"), "w") as f:
        for z in sizes:
            vals = [mm[z, a]["per"][0] if (z, a) in mm else None for a in MEM_ALLOCS]
            f.write(f'"{z} B" ' + " ".join(f"{v:.4f}" if v else "NaN"
                                          for v in vals) + "\n")
    title = f"{args.date}, {args.machine}"
    gp = f"""
set terminal pngcairo size 1100,520 font ",10"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key outside right top
set grid ytics
set xtics nomirror
set output '{dst}/throughput.png'
set title "Throughput relative to glibc malloc (median, higher is better)\\n{title}" noenhanced
set ylabel "ops/s / glibc ops/s"
set yrange [0:*]
{plot_cmd(dst + "/throughput.dat", ALLOCS)}
set output '{dst}/memory.png'
set title "Resident bytes per ideal byte, {count:,} live objects (lower is better)\\n{title}" noenhanced
set ylabel "resident / (class size x N)"
set yrange [0:*]
{plot_cmd(dst + "/memory.dat", MEM_ALLOCS)}
"""
    try:
        subprocess.run(["gnuplot"], input=gp, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"render.py: gnuplot failed: {e}", file=sys.stderr)
        return 1
    finally:
        for name in ("throughput.dat", "memory.dat"):
            try:
                os.remove(os.path.join(dst, name))
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
