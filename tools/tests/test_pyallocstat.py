#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Host tests of tools/pyallocstat against a fake machine.

fixtures/machine1 is a /proc and /sys tree in the formats the module
writes (debugfs table, fdinfo, sysfs totals; see pyalloc(4)): six heaps of
five processes, among them a private heap and its child copy (pids 200 and
201 share one file whose fdinfo lists both), a shared heap held by a parent
and its child (300, 301; 301 holds it twice) and two heaps of a process
that is not in /proc (500: only root's debugfs table shows them).  The
expected figures below were worked out by hand from that data.

    python3 tools/tests/test_pyallocstat.py    ends with "N passed, N failed"
"""

import contextlib
import importlib.machinery
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "pyallocstat")
FIX = os.path.join(HERE, "fixtures", "machine1")

loader = importlib.machinery.SourceFileLoader("pyallocstat", TOOL)
spec = importlib.util.spec_from_loader("pyallocstat", loader)
pst = importlib.util.module_from_spec(spec)
loader.exec_module(pst)


def run(*argv, root=FIX):
    """Run the tool's main(); (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = pst.main(["--root", root] + list(argv))
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def rows(text):
    """Heap ids of a table, in order."""
    ids, seen = [], False
    for line in text.splitlines():
        if line.split()[:1] == ["HEAP"]:
            seen = True
        elif seen and line.strip():
            ids.append(int(line.split()[0]))
    return ids


class Copy:
    """A scratch copy of the fixture machine."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="pyallocstat-test.")
        self.root = os.path.join(self.dir, "m")
        shutil.copytree(FIX, self.root, symlinks=True)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir)

    def write(self, rel, text):
        with open(os.path.join(self.root, rel), "w") as f:
            f.write(text)

    def remove(self, rel):
        os.remove(os.path.join(self.root, rel))


class Debugfs(unittest.TestCase):
    def test_table_parsed(self):
        heaps = pst.Machine(FIX).debugfs()
        self.assertEqual(sorted(heaps), [1, 7, 8, 9, 12, 13])
        h = heaps[1]
        self.assertEqual((h["pid"], h["command"], h["mode"], h["state"]),
                         (100, "python3", "shared", "ok"))
        self.assertEqual((h["pages"], h["arenas"], h["blocks_in_use"],
                          h["blocks_free"], h["bytes_in_use"],
                          h["bytes_free"], h["limit_bytes"]),
                         (8, 1, 270, 436, 18240, 6304, 1 << 30))
        self.assertEqual([(c["class"], c["block_size"], c["pools"],
                           c["blocks_in_use"], c["blocks_free"])
                          for c in h["classes"]],
                         [(0, 8, 1, 100, 412), (5, 48, 2, 150, 20),
                          (63, 512, 3, 20, 4)])
        self.assertEqual(heaps[7]["command"], "worker_one")
        self.assertEqual(heaps[13]["state"], "broken")
        self.assertEqual(heaps[13]["classes"], [])

    def test_other_version_is_refused(self):
        with Copy() as m:
            path = os.path.join(m.root, pst.DEBUGFS)
            text = open(path).read().replace("version 1", "version 2", 1)
            m.write(pst.DEBUGFS, text)
            rc, out, err = run(root=m.root)
        self.assertEqual(rc, 1)
        self.assertIn("format version 2", err)
        self.assertEqual(out, "")

    def test_not_a_table_is_refused(self):
        with Copy() as m:
            m.write(pst.DEBUGFS, "heap 1 is here\n")
            rc, _, err = run(root=m.root)
        self.assertEqual(rc, 1)
        self.assertIn("first line", err)

    def test_columns_follow_the_header(self):
        # A later kernel may add a column: rows are read by header name.
        with Copy() as m:
            m.write(pst.DEBUGFS,
                    "# pyalloc heaps, version 1\n"
                    "# heap_id pid command mode state pages arenas "
                    "blocks_in_use blocks_free bytes_in_use bytes_free "
                    "limit_bytes new_column\n"
                    "5 42 a shared ok 3 1 10 20 30 40 50 777\n")
            heaps = pst.Machine(m.root).debugfs()
        self.assertEqual(heaps[5]["pages"], 3)
        self.assertEqual(heaps[5]["limit_bytes"], 50)


    def test_empty_command_does_not_shift_columns(self):
        with Copy() as m:
            m.write(pst.DEBUGFS,
                    "# pyalloc heaps, version 1\n"
                    "# heap_id pid command mode state pages arenas "
                    "blocks_in_use blocks_free bytes_in_use bytes_free "
                    "limit_bytes\n"
                    "5 0  shared ok 3 1 10 20 30 40 50\n")
            heaps = pst.Machine(m.root).debugfs()
        self.assertEqual((heaps[5]["pid"], heaps[5]["command"],
                          heaps[5]["mode"], heaps[5]["limit_bytes"]),
                         (0, None, "shared", 50))


class Fdinfo(unittest.TestCase):
    def test_private_file_gives_the_owners_heap(self):
        text = open(os.path.join(FIX, "proc/200/fdinfo/4")).read()
        self.assertEqual([h["id"] for h in pst.parse_fdinfo(text, 200)], [7])
        self.assertEqual([h["id"] for h in pst.parse_fdinfo(text, 201)], [8])
        self.assertEqual(pst.parse_fdinfo(text, 999), [])
        h = pst.parse_fdinfo(text, 201)[0]
        self.assertEqual((h["mode"], h["granularity"], h["window_bytes"],
                          h["pages"], h["bytes_free"], h["alloc_ioctls"],
                          h["forks"], h["command"]),
                         ("private", 16, 1 << 32, 3, 5808, 2, 0,
                          "worker one"))

    def test_shared_file_gives_its_heap_to_every_holder(self):
        text = open(os.path.join(FIX, "proc/300/fdinfo/3")).read()
        self.assertEqual([h["id"] for h in pst.parse_fdinfo(text, 301)], [9])

    def test_fdinfo_without_pyalloc_keys_fails_loudly(self):
        with self.assertRaises(pst.FormatError):
            pst.parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\t2\n", 1)
        with Copy() as m:
            m.write("proc/100/fdinfo/3", "pos:\t0\nflags:\t02\n")
            m.remove(pst.DEBUGFS)
            rc, _, err = run(root=m.root)
        self.assertEqual(rc, 1)
        self.assertIn("no pyalloc-mode line", err)

    def test_busy_file_is_skipped_with_a_note(self):
        # The kernel only tries the file's lock; when it stays taken the
        # fdinfo has "pyalloc-busy:\t1" and no heap.
        with self.assertRaises(pst.Busy):
            pst.parse_fdinfo("pos:\t0\nflags:\t02\npyalloc-busy:\t1\n", 100)
        with Copy() as m:
            m.write("proc/100/fdinfo/3", "pos:\t0\nflags:\t02\nmnt_id:\t1\n"
                    "ino:\t2\npyalloc-busy:\t1\n")
            m.remove(pst.DEBUGFS)
            rc, out, _ = run(root=m.root)
        self.assertEqual(rc, 0)
        self.assertEqual(rows(out), [9, 8, 7])
        self.assertIn("1 descriptor(s) busy", out)

    def test_heaps_deduplicated_with_holders(self):
        heaps = pst.Machine(FIX).fdinfo_heaps()
        self.assertEqual(sorted(heaps), [1, 7, 8, 9])
        self.assertEqual(heaps[9]["holders"], [300, 301])
        self.assertEqual(heaps[7]["holders"], [200])
        self.assertEqual(heaps[8]["holders"], [201])


class Listing(unittest.TestCase):
    def test_debugfs_sorted_by_pages(self):
        rc, out, err = run()
        self.assertEqual((rc, err), (0, ""))
        self.assertIn("Source: debugfs", out)
        self.assertEqual(rows(out), [12, 9, 1, 8, 7, 13])
        self.assertIn(" Heaps listed: 6 (5 processes)", out)
        self.assertIn(" Module: 6 heaps, 153 pages held of 262144, 1 forks",
                      out)
        self.assertIn(" Pages: 153 (612.0K)   Blocks in use / total: "
                      "4072 / 5058 (80.5%)", out)
        line = [x for x in out.splitlines() if x.split()[:1] == ["9"]][0]
        self.assertEqual(line.split(),
                         ["9", "300", "server", "shared", "ok", "40",
                          "160.0K", "1", "150.0K", "10.0K", "94%", "64.0M"])

    def test_sort_keys(self):
        want = {"id": [1, 7, 8, 9, 12, 13], "i": [1, 7, 8, 9, 12, 13],
                "used": [12, 9, 1, 8, 7, 13], "u": [12, 9, 1, 8, 7, 13],
                "free": [12, 9, 1, 8, 7, 13],
                "blocks": [12, 9, 1, 8, 7, 13],
                "use": [9, 12, 7, 1, 8, 13], "%": [9, 12, 7, 1, 8, 13],
                "pid": [1, 7, 8, 9, 12, 13],
                "command": [12, 13, 1, 9, 7, 8],
                "limit": [1, 7, 8, 12, 13, 9],
                "arenas": [1, 7, 8, 9, 12, 13]}
        for key, ids in want.items():
            rc, out, _ = run("-s", key)
            self.assertEqual(rc, 0, key)
            self.assertEqual(rows(out), ids, key)

    def test_unknown_sort_key(self):
        rc, _, err = run("-s", "colour")
        self.assertEqual(rc, 2)
        self.assertIn("unknown sort key", err)

    def test_fdinfo_when_debugfs_cannot_be_read(self):
        # What a user who is not root gets: debugfs is root only.
        orig = pst.Machine.read

        def read(self, rel):
            if rel == pst.DEBUGFS:
                raise PermissionError(13, "Permission denied")
            return orig(self, rel)
        pst.Machine.read = read
        try:
            rc, out, _ = run()
        finally:
            pst.Machine.read = orig
        self.assertEqual(rc, 0)
        self.assertIn("Source: fdinfo", out)
        self.assertIn("no debugfs table", out)
        self.assertEqual(rows(out), [9, 1, 8, 7])

    def test_only_processes_we_may_read(self):
        orig = pst.Machine.pyalloc_fds

        def fds(self, pid):
            if pid in (300, 301):
                raise PermissionError(13, "Permission denied")
            return orig(self, pid)
        pst.Machine.pyalloc_fds = fds
        try:
            rc, out, _ = run("--source", "fdinfo")
            rc2, _, err = run("--source", "fdinfo", "-p", "300")
        finally:
            pst.Machine.pyalloc_fds = orig
        self.assertEqual(rc, 0)
        self.assertEqual(rows(out), [1, 8, 7])
        self.assertEqual(rc2, 1)
        self.assertIn("Permission denied", err)

    def test_debugfs_source_required_but_missing(self):
        with Copy() as m:
            m.remove(pst.DEBUGFS)
            rc, _, err = run("--source", "debugfs", root=m.root)
        self.assertEqual(rc, 1)
        self.assertIn("root only", err)

    def test_module_not_loaded(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "proc"))
            rc, out, _ = run(root=d)
        self.assertEqual(rc, 0)
        self.assertIn("module is not loaded", out)
        self.assertEqual(rows(out), [])

    def test_refresh_count(self):
        rc, out, _ = run("-d", "0.01", "-n", "3")
        self.assertEqual(rc, 0)
        self.assertEqual(out.count(" Heaps listed:"), 3)
        rc, out, _ = run("-d", "0.01", "-n", "2", "--json")
        docs = [json.loads(x) for x in out.splitlines()]
        self.assertEqual(len(docs), 2)
        self.assertLessEqual(docs[0]["time"], docs[1]["time"])
        rc, out, _ = run("-o")
        self.assertEqual(out.count(" Heaps listed:"), 1)
        self.assertEqual(run("-n", "0")[0], 2)
        self.assertEqual(run("-d", "0")[0], 2)


class Json(unittest.TestCase):
    def test_all_heaps(self):
        rc, out, _ = run("--json")
        doc = json.loads(out)
        self.assertEqual(rc, 0)
        self.assertEqual(doc["source"], "debugfs")
        self.assertEqual(doc["version"], 1)
        self.assertEqual(doc["module"]["pages_held"], 153)
        self.assertEqual(doc["module"]["arena_kb"], 256)
        self.assertEqual([h["id"] for h in doc["heaps"]],
                         [12, 9, 1, 8, 7, 13])
        h9 = [h for h in doc["heaps"] if h["id"] == 9][0]
        # debugfs row, completed from fdinfo (root reads both).
        self.assertEqual(h9["holders"], [300, 301])
        self.assertEqual(h9["alloc_ioctls"], 40)
        self.assertEqual(h9["classes"][0]["block_size"], 256)
        h12 = [h for h in doc["heaps"] if h["id"] == 12][0]
        self.assertEqual(h12["holders"], [])
        self.assertIsNone(h12["alloc_ioctls"])

    def test_sources_agree(self):
        a = {h["id"]: h for h in json.loads(run("--json")[1])["heaps"]}
        b = {h["id"]: h for h in
             json.loads(run("--json", "--source", "fdinfo")[1])["heaps"]}
        self.assertEqual(sorted(b), [1, 7, 8, 9])
        for hid, h in b.items():
            for k in pst.NUM_FIELDS + ("pid", "mode", "state"):
                self.assertEqual(h[k], a[hid][k], (hid, k))
            self.assertIsNone(h["classes"])

    def test_one_process(self):
        doc = json.loads(run("--json", "-p", "301")[1])
        self.assertEqual(doc["pid"], 301)
        self.assertEqual([h["id"] for h in doc["heaps"]], [9])


class MallocStats(unittest.TestCase):
    def test_layout_of_debugmallocstats(self):
        rc, out, _ = run("-p", "100")
        self.assertEqual(rc, 0)
        lines = out.splitlines()
        self.assertEqual(lines[0], "pyalloc heap 1: pid 100 (python3), "
                         "shared, ok")
        self.assertEqual(lines[1], "Small block threshold = 512, in 64 size "
                         "classes.")
        i = lines.index("class   size   num pools   blocks in use  "
                        "avail blocks")
        self.assertEqual(lines[i + 2:i + 5], [
            "    0      8           1             100           412",
            "    5     48           2             150            20",
            "   63    512           3              20             4"])
        for want in (
                "# arenas allocated current         =                    1",
                "1 arenas * 262144 bytes/arena      =              262,144",
                "# bytes in allocated blocks        =               18,240",
                "# bytes in available blocks        =                6,304",
                "2 unused pools * 4096 bytes        =                8,192",
                "# bytes lost to quantization       =                   32",
                "Total                              =               32,768",
                "# alloc ioctls                     =                   12",
                "held by pid 100"):
            self.assertIn(want, lines)

    def test_total_is_the_pages(self):
        # Every byte of every pool page is in exactly one line.
        for pid in (100, 200, 201, 300, 500):
            rc, out, _ = run("-p", str(pid))
            self.assertEqual(rc, 0)
            heaps = json.loads(run("--json", "-p", str(pid))[1])["heaps"]
            totals = [int(x.split("=")[1].replace(",", ""))
                      for x in out.splitlines() if x.startswith("Total ")]
            self.assertEqual(totals, [h["pages"] * 4096 for h in
                                      sorted(heaps, key=lambda h: h["id"])])

    def test_private_child(self):
        rc, out, _ = run("-p", "201")
        self.assertEqual(rc, 0)
        self.assertIn("pyalloc heap 8: pid 201 (worker_one), private, ok",
                      out)
        self.assertIn("in 32 size classes", out)
        self.assertNotIn("heap 7", out)

    def test_without_classes(self):
        rc, out, _ = run("-p", "201", "--source", "fdinfo")
        self.assertEqual(rc, 0)
        self.assertIn("(per-class figures come from the debugfs table", out)
        self.assertIn("Total                              =               "
                      "12,288", out)

    def test_process_without_heaps(self):
        rc, out, _ = run("-p", "400")
        self.assertEqual((rc, out), (0, "pid 400 holds no pyalloc heap\n"))

    def test_shared_heap_of_a_child(self):
        rc, out, _ = run("-p", "301")
        self.assertEqual(rc, 0)
        self.assertIn("pyalloc heap 9: pid 300 (server)", out)
        self.assertIn("held by pid 300, 301", out)


class Result(unittest.TextTestResult):
    pass


if __name__ == "__main__":
    if os.getuid() == 0:
        os.environ.pop("PYALLOCSTAT_ROOT", None)
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(res.failures) + len(res.errors)
    print("%d passed, %d failed" % (res.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
