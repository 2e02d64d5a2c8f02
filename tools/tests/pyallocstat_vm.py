# SPDX-License-Identifier: GPL-2.0
"""pyallocstat against the real module, in the VM guest, as root and as an
unprivileged user (run by pyallocstat-vm.sh, which sets up the guest).

Holders (pyalloc-holder) open heaps of both modes, fork, and report the
kernel's own figures for their heaps (PYALLOC_IOC_INFO/_STATS); pyallocstat
must show exactly those, from the debugfs table as root and from fdinfo as
user 65534, who must see its own heaps and no one else's.  Nothing is
skipped: a module without fdinfo, debugfs or sysfs totals fails here.

Prints one "# ok N name" or "# not ok N name" per check (counted by
scripts/ksft-count.sh) and exits 1 if any failed.
"""

import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "pyallocstat")
HOLDER = os.path.join(HERE, "pyalloc-holder")
NOBODY = 65534
OUT = "/tmp/pyallocstat-vm"
FIELDS = ("pages", "arenas", "bytes_in_use", "bytes_free", "blocks_in_use",
          "blocks_free", "limit_bytes", "mode")
FDINFO_ONLY = ("alloc_ioctls", "free_ioctls", "forks", "granularity",
               "window_bytes")

results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    n = len(results)
    print("# %s %d pyallocstat: %s" % ("ok" if cond else "not ok", n, name))
    if not cond and detail:
        for line in str(detail).splitlines()[:40]:
            print("#   | " + line)
    sys.stdout.flush()
    return cond


def as_user(uid):
    if uid == 0:
        return {}
    return {"user": uid, "group": uid, "extra_groups": []}


def tool(*args, uid=0):
    p = subprocess.run([TOOL] + list(args), capture_output=True, text=True,
                       timeout=120, **as_user(uid))
    return p.returncode, p.stdout, p.stderr


def tool_json(*args, uid=0):
    rc, out, err = tool("--json", *args, uid=uid)
    if rc != 0:
        raise RuntimeError("pyallocstat --json %s (uid %d): status %d: %s"
                           % (" ".join(args), uid, rc, err))
    return json.loads(out)


class Holder:
    def __init__(self, name, args, specs, uid=0, procs=1):
        self.name, self.uid, self.procs = name, uid, procs
        self.out = "%s/%s.jsonl" % (OUT, name)
        self.proc = subprocess.Popen([HOLDER] + args + [self.out] + specs,
                                     **as_user(uid))
        self.lines = []

    def wait_ready(self, deadline):
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("holder %s exited with %d"
                                   % (self.name, self.proc.returncode))
            try:
                with open(self.out) as f:
                    lines = [json.loads(x) for x in f if x.strip()]
            except OSError:
                lines = []
            if len(lines) >= self.procs:
                self.lines = lines
                return
            time.sleep(0.05)
        raise RuntimeError("holder %s not ready" % self.name)

    @property
    def pid(self):
        return self.proc.pid

    def line(self, pid):
        return [x for x in self.lines if x["pid"] == pid][0]

    def child_pid(self):
        return [x["pid"] for x in self.lines if x["pid"] != self.pid][0]

    def stop(self):
        for x in self.lines:
            if x["pid"] != self.pid:
                try:
                    os.kill(x["pid"], signal.SIGTERM)
                except ProcessLookupError:
                    pass
        self.proc.terminate()
        self.proc.wait(timeout=30)


def expected(holders):
    """{heap id: (owner pid, holder line, holder uid)} of every heap."""
    heaps = {}
    for h in holders:
        for x in h.lines:
            # A shared heap's owner is its opener, the holder's first process.
            owner = x["pid"] if x["mode"] == "private" else h.pid
            if x["id"] in heaps:
                continue
            heaps[x["id"]] = (owner, x, h.uid)
    return heaps


def compare(shown, want, fields):
    """Differences between pyallocstat's heaps and the holders' figures."""
    diffs = []
    for hid, (owner, line, _) in want.items():
        h = shown.get(hid)
        if h is None:
            diffs.append("heap %d (pid %d) missing" % (hid, owner))
            continue
        if h["pid"] != owner:
            diffs.append("heap %d: pid %s, want %d" % (hid, h["pid"], owner))
        if h["state"] != "ok":
            diffs.append("heap %d: state %s" % (hid, h["state"]))
        for f in fields:
            if h.get(f) != line[f]:
                diffs.append("heap %d: %s %r, want %r" % (hid, f, h.get(f),
                                                          line[f]))
    for hid in shown:
        if hid not in want:
            diffs.append("heap %d shown, not a holder's" % hid)
    return diffs


def main():
    os.makedirs(OUT, exist_ok=True)
    os.chmod(OUT, 0o1777)
    holders = [
        Holder("root-shared", [], ["8:100", "48:300", "512:20"]),
        Holder("root-private-fork", ["-P", "-f", "-g", "16", "-c", "16:700"],
               ["64:1000", "256:40"], procs=2),
        Holder("user-shared-fork", ["-f"], ["256:50", "24:2000"], uid=NOBODY,
               procs=2),
        Holder("user-private", ["-P"], ["128:10"], uid=NOBODY),
    ]
    try:
        deadline = time.time() + 60
        for h in holders:
            h.wait_ready(deadline)
        run_checks(holders)
    finally:
        for h in holders:
            if h.proc.poll() is None:
                h.stop()
    # Every heap closed: nothing left to show (the killed children may take
    # a moment to exit, and the kernel unlists a heap before it frees it and
    # uncharges its pages).
    def gone(doc):
        return (doc["heaps"] == [] and doc["module"]["heaps"] == 0
                and doc["module"]["pages_held"] == 0)

    deadline = time.time() + 30
    doc = tool_json()
    while not gone(doc) and time.time() < deadline:
        time.sleep(0.2)
        doc = tool_json()
    check("no heap listed once the holders are gone", gone(doc), doc)
    failed = results.count(False)
    print("# pyallocstat VM test: %d passed, %d failed"
          % (len(results) - failed, failed))
    return 1 if failed else 0


def run_checks(holders):
    want = expected(holders)
    by = {h.name: h for h in holders}
    pf = by["root-private-fork"]
    child = pf.child_pid()
    check("the private heap's child has a copy of its own",
          pf.line(child)["id"] != pf.line(pf.pid)["id"]
          and pf.line(pf.pid)["forks"] == 1, pf.lines)

    # Root: the debugfs table, every heap, the kernel's figures.
    doc = tool_json()
    shown = {h["id"]: h for h in doc["heaps"]}
    check("root reads the debugfs table", doc["source"] == "debugfs", doc)
    check("root sees every heap with the kernel's figures",
          not compare(shown, want, FIELDS), "\n".join(compare(shown, want,
                                                              FIELDS)))
    cdiff = []
    for hid, (_, line, _) in want.items():
        got = sorted([c["class"], c["block_size"], c["pools"],
                      c["blocks_in_use"], c["blocks_free"]]
                     for c in (shown.get(hid) or {}).get("classes") or [])
        if got != sorted(line["classes"]):
            cdiff.append("heap %d: classes %s, want %s"
                         % (hid, got, line["classes"]))
    check("root sees every heap's classes", not cdiff, "\n".join(cdiff))
    mod = doc["module"] or {}
    check("sysfs totals match the heaps",
          mod.get("heaps") == len(want)
          and mod.get("pages_held") == sum(x["pages"] for _, x, _ in
                                           want.values())
          and mod.get("forks") == 1 and (mod.get("pages_limit") or 0) > 0,
          mod)
    ushared = by["user-shared-fork"]
    h = shown.get(ushared.line(ushared.pid)["id"], {})
    check("a shared heap is held by parent and child",
          h.get("holders") == sorted([ushared.pid, ushared.child_pid()]), h)

    # Root through fdinfo: the same heaps, plus the ioctl counters.
    doc = tool_json("--source", "fdinfo")
    shown = {h["id"]: h for h in doc["heaps"]}
    diffs = compare(shown, want, FIELDS + FDINFO_ONLY)
    check("root's fdinfo view matches the kernel's figures", not diffs,
          "\n".join(diffs))

    # The table, sorted by pages.
    rc, out, err = tool()
    lines = out.splitlines()
    i = [n for n, x in enumerate(lines) if x.split()[:1] == ["HEAP"]]
    rows = [x.split() for x in lines[i[0] + 1:]] if i else []
    pages = [int(r[5]) for r in rows]
    check("the table lists every heap, most pages first",
          rc == 0 and len(rows) == len(want) and pages == sorted(
              pages, reverse=True) and pages[0] == max(
                  x["pages"] for _, x, _ in want.values()), out + err)

    # -p: the sys._debugmallocstats() layout, per process.
    rs = by["root-shared"].line(by["root-shared"].pid)
    rc, out, err = tool("-p", str(by["root-shared"].pid))
    total = [x for x in out.splitlines() if x.startswith("Total ")]
    check("-p prints the heap in the sys._debugmallocstats() layout",
          rc == 0 and "pyalloc heap %d:" % rs["id"] in out
          and "%5d %6d %11d %15d %13d" % tuple(rs["classes"][0]) in out
          and total == ["%-35s=%21s" % ("Total",
                                         "{:,}".format(rs["pages"] * 4096))],
          out + err)
    rc1, out1, _ = tool("-p", str(pf.pid))
    rc2, out2, _ = tool("-p", str(child))
    pid_ = pf.line(pf.pid)["id"]
    cid = pf.line(child)["id"]
    check("-p tells a private heap's parent from its child",
          rc1 == 0 and rc2 == 0 and "pyalloc heap %d:" % pid_ in out1
          and "pyalloc heap %d:" % cid not in out1
          and "pyalloc heap %d: pid %d" % (cid, child) in out2
          and "pyalloc heap %d:" % pid_ not in out2, out1 + out2)

    # The unprivileged user: fdinfo of its own processes only.
    mine = {k: v for k, v in want.items() if v[2] == NOBODY}
    try:
        doc = tool_json(uid=NOBODY)
    except RuntimeError as e:
        check("user 65534 runs pyallocstat", False, e)
        return
    shown = {h["id"]: h for h in doc["heaps"]}
    check("user 65534 reads fdinfo (debugfs is root only)",
          doc["source"] == "fdinfo", doc["source"])
    diffs = compare(shown, mine, FIELDS + FDINFO_ONLY)
    check("user 65534 sees its own heaps, with the kernel's figures, and "
          "no one else's", not diffs, "\n".join(diffs))
    check("user 65534 sees the module-wide totals",
          (doc["module"] or {}).get("heaps") == len(want), doc["module"])
    rc, out, err = tool(uid=NOBODY)
    check("user 65534's table notes where it comes from",
          rc == 0 and "no debugfs table" in out
          and len([x for x in out.splitlines() if x.split()[1:2]
                   and x.split()[1] in (str(p) for p in [
                       ushared.pid, by["user-private"].pid])]) == len(mine),
          out + err)
    rc, out, err = tool("-p", str(by["user-private"].pid), uid=NOBODY)
    check("user 65534's -p of its own process, without classes",
          rc == 0 and "per-class figures come from the debugfs table" in out,
          out + err)
    rc, out, err = tool("-p", str(by["root-shared"].pid), uid=NOBODY)
    check("user 65534's -p of root's process is refused",
          rc == 1 and "ermission denied" in err and out == "", out + err)

    # Refreshing.
    rc, out, err = tool("--json", "-d", "0.2", "-n", "3")
    docs = [json.loads(x) for x in out.splitlines() if x.strip()]
    check("-d 0.2 -n 3 prints three reports", rc == 0 and len(docs) == 3
          and all(len(d["heaps"]) == len(want) for d in docs), out + err)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a crash of the test is a failure, loudly
        check("the VM test ran to its end", False, repr(e))
        sys.exit(1)
