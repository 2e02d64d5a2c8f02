#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The real-program benchmark (issue 11), run in the VM under --host-fs by
bench/run.sh: object-heavy Python programs under stock python3
(CPython's own pymalloc) and with PYTHONMALLOC=malloc under glibc,
jemalloc, mimalloc, tcmalloc and pyalloc's drop-in malloc
(libpyalloc-malloc.so), each run its own process, repetitions outermost and
the allocators' order rotated every repetition.

    driver.py OUT.csv REPS LIBDIR PRELOAD [MINREPS BUDGET]

REPS is the most repetitions; DRIVER_ALLOCS=glibc,mimalloc (say) runs
only those beside pymalloc and pyalloc.  With MINREPS and BUDGET
(seconds), a repetition after the MINREPS-th starts only if the mean repetition so far
still ends within BUDGET: the programs do fixed work, so their time follows
the host (under TCG one host's CPU ran them twice as long as another's), and
the budget keeps `make bench` within its 20 minutes on a slow host while a
fast one runs all REPS.

LIBDIR holds the Debian allocators' shared objects; PRELOAD is
libpyalloc-malloc.so.  Each line: program,alloc,rep,seconds,maxrss_kb,cpu_s
-- wall time around the child (fork to wait), its peak resident set and
the processor time it used, user and system (getrusage through wait4; the
resident set counts pyalloc's device pages like any mapped page).  In a
VM booted with -icount (bench/pyinsn.sh) the guest's clock follows the
instructions it retires, and cpu_s counts the child's own instructions,
user and kernel, without the waits for the host's 9p files.  Before the
runs every configuration is checked: the preloaded library must be mapped
in the child, and for pyalloc the child
must hold a /dev/pyalloc descriptor (the drop-in falls back to glibc,
silently, without one).  "startup" (python3 -c pass) is the fixed cost of a
process under each allocator.  One more, untimed run of each program under
pyalloc reads the kernel's counts for its heap at exit (fdinfo: ioctls,
pool pages) into python-guest.txt.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = [
    ("startup", ["-c", "pass"]),
    ("churn", ["churn.py", "20000"]),
    ("json", ["jsonrt.py", "3"]),
    ("gcgraph", ["gcgraph.py", "3"]),
]


def configs(libdir, preload):
    base = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONMALLOC", "LD_PRELOAD", "DRIVER_ALLOCS")}
    out = [("pymalloc", dict(base), None)]
    for name, lib in (("glibc", None),
                      ("jemalloc", os.path.join(libdir, "libjemalloc.so.2")),
                      ("mimalloc", os.path.join(libdir, "libmimalloc.so.2")),
                      ("tcmalloc", os.path.join(libdir, "libtcmalloc_minimal.so.4")),
                      ("pyalloc", preload)):
        env = dict(base, PYTHONMALLOC="malloc")
        if lib:
            env["LD_PRELOAD"] = lib
        out.append((name, env, lib))
    # DRIVER_ALLOCS=a,b,...: only these (pymalloc and pyalloc always).
    only = os.environ.get("DRIVER_ALLOCS")
    if only:
        keep = set(only.split(",")) | {"pymalloc", "pyalloc"}
        out = [c for c in out if c[0] in keep]
    return out


CHECK = r"""
import os, sys
maps = open("/proc/self/maps").read()
fds = [os.readlink("/proc/self/fd/" + f) for f in os.listdir("/proc/self/fd")
       if os.path.exists("/proc/self/fd/" + f)]
lib = sys.argv[1]
ok = lib == "-" or lib in maps
if "pyalloc-malloc" in lib:
    ok = ok and "/dev/pyalloc" in fds
print("ok" if ok else "MISSING")
"""


# Runs a program as __main__, then prints what the kernel counted for the
# drop-in's heap (fdinfo): ioctls and pool pages at exit.
COUNT = r"""
import os, runpy, sys
prog, args = sys.argv[1], sys.argv[2:]
if prog == "-c":
    exec(args[0])
else:
    sys.argv = [prog] + args
    runpy.run_path(prog, run_name="__main__")
for f in os.listdir("/proc/self/fd"):
    try:
        if os.readlink("/proc/self/fd/" + f) == "/dev/pyalloc":
            info = dict(l.split(":", 1) for l in open("/proc/self/fdinfo/" + f)
                        if ":" in l)
            sys.stderr.write("COUNTS alloc_ioctls=%s free_ioctls=%s pages=%s\n" % tuple(
                info.get(k, "?").strip() for k in
                ("pyalloc-alloc-ioctls", "pyalloc-free-ioctls", "pyalloc-pages")))
    except OSError:
        pass
"""


def run(env, argv):
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable] + argv, env=env, cwd=HERE,
                         stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    t = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, t, ru.ru_maxrss, ru.ru_utime + ru.ru_stime


def main():
    out, reps, libdir, preload = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    minreps = int(sys.argv[5]) if len(sys.argv) > 5 else reps
    budget = float(sys.argv[6]) if len(sys.argv) > 6 else float("inf")
    cfg = configs(libdir, preload)
    for name, env, lib in cfg:
        r = subprocess.run([sys.executable, "-c", CHECK, lib or "-"], env=env,
                           capture_output=True, text=True)
        if r.stdout.strip() != "ok":
            print(f"driver.py: {name}: the allocator did not take "
                  f"({r.stdout.strip()} {r.stderr.strip()})", file=sys.stderr)
            return 1
    counts = {}
    for prog, argv in PROGRAMS:
        env = next(e for n, e, _ in cfg if n == "pyalloc")
        r = subprocess.run([sys.executable, "-c", COUNT] + argv, env=env,
                           cwd=HERE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        line = [x for x in r.stderr.splitlines() if x.startswith("COUNTS ")]
        counts[prog] = line[-1][len("COUNTS "):] if line else "?"
    with open(os.path.join(os.path.dirname(out), "python-guest.txt"), "w") as g:
        g.write(f"kernel: {os.uname().release}\n")
        g.write(f"python: {sys.version.split()[0]} ({sys.executable})\n")
        g.write(f"cmdline: {open('/proc/cmdline').read().strip()}\n")
        g.write(f"reps: at most {reps}, at least {minreps}, "
                f"within {budget:.0f} s\n")
        g.write("programs: " + "; ".join(" ".join(a) for _, a in PROGRAMS) + "\n")
        for prog, c in counts.items():
            g.write(f"pyalloc-kernel-counts {prog}: {c}\n")
    failed = 0
    t00 = time.perf_counter()
    with open(out, "w") as f:
        f.write("program,alloc,rep,seconds,maxrss_kb,cpu_s\n")
        for rep in range(1, reps + 1):
            k = (rep - 1) % len(cfg)
            order = cfg[k:] + cfg[:k]
            for prog, argv in PROGRAMS:
                for name, env, _ in order:
                    rc, t, rss, cpu = run(env, argv)
                    if rc:
                        print(f"driver.py: FAILED {prog} under {name}: status {rc}",
                              file=sys.stderr)
                        failed += 1
                        continue
                    f.write(f"{prog},{name},{rep},{t:.4f},{rss},{cpu:.6f}\n")
                    f.flush()
            spent = time.perf_counter() - t00
            print(f"driver.py: repetition {rep} done after {spent:.0f}s",
                  file=sys.stderr)
            if rep >= minreps and spent + spent / rep > budget:
                print(f"driver.py: {rep} repetitions: another would end "
                      f"after the budget of {budget:.0f}s", file=sys.stderr)
                break
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
