// SPDX-License-Identifier: GPL-2.0
/*
 * What an administrator and a kernel engineer see: /proc/<pid>/fdinfo of a
 * heap (its keys, both heaps of a private file after fork, ptrace rules),
 * the debugfs table, the sysfs totals and the tracepoints.
 */
#include "pyalloc_util.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* A whole small file; NUL-terminated, NULL on error. */
static char *slurp(const char *path)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while ((n = read(fd, buf + len, cap - len)) > 0) {
		len += n;
		if (len == cap) {
			char *nb = realloc(buf, 2 * cap + 1);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/*
 * The value of @key in the fdinfo group of heap @id (or of the file-level
 * keys when @id is 0); -1 when absent.
 */
static long long fdinfo_value(const char *text, unsigned long long id,
			      const char *key)
{
	char want[64];
	const char *p = text, *group = text;
	size_t klen = strlen(key);

	if (id) {
		snprintf(want, sizeof(want), "pyalloc-heap-id:\t%llu\n", id);
		group = strstr(text, want);
		if (!group)
			return -1;
		group += strlen(want);
	}
	for (p = group; *p; p = strchr(p, '\n') + 1) {
		if (id && !strncmp(p, "pyalloc-heap-id:", 16))
			break;
		if (!strncmp(p, key, klen) && p[klen] == ':')
			return strtoll(p + klen + 1, NULL, 10);
		if (!strchr(p, '\n'))
			break;
	}
	return -1;
}

static char *fdinfo_of(pid_t pid, int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	return slurp(path);
}

FIXTURE(obs) {
	int fd;
	struct pyalloc_info info;
	char *map;
	__u64 off[256];
};

FIXTURE_SETUP(obs)
{
	struct pyalloc_config c = { .flags = PYALLOC_CONFIG_MODE,
				    .mode = PYALLOC_MODE_PRIVATE };

	self->fd = pya_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, pya_ioctl(self->fd, PYALLOC_IOC_CONFIG, &c));
	ASSERT_EQ(0, pya_info(self->fd, &self->info));
	self->map = pya_map(self->fd, &self->info);
	ASSERT_NE(MAP_FAILED, self->map);
	ASSERT_EQ(0, pya_alloc(self->fd, 100, 256, self->off, NULL));
	memset(self->map + self->off[0], 1, 100);
}

FIXTURE_TEARDOWN(obs)
{
	munmap(self->map, self->info.window_size);
	close(self->fd);
}

TEST_F(obs, fdinfo_keys)
{
	struct pya_kstats st;
	unsigned long long id = self->info.heap_id;
	char *t = fdinfo_of(getpid(), self->fd);

	ASSERT_NE(NULL, t);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_NE(NULL, strstr(t, "pyalloc-mode:\tprivate\n")) TH_LOG("%s", t);
	EXPECT_EQ(8, fdinfo_value(t, 0, "pyalloc-granularity"));
	EXPECT_EQ((long long)self->info.window_size,
		  fdinfo_value(t, 0, "pyalloc-window-bytes"));
	EXPECT_EQ(1, fdinfo_value(t, 0, "pyalloc-heaps"));
	EXPECT_EQ(getpid(), fdinfo_value(t, id, "pyalloc-owner-pid"));
	EXPECT_EQ((long long)st.pages, fdinfo_value(t, id, "pyalloc-pages"));
	EXPECT_EQ((long long)st.arenas_current,
		  fdinfo_value(t, id, "pyalloc-arenas"));
	EXPECT_EQ(256 * 104, fdinfo_value(t, id, "pyalloc-bytes-in-use"));
	EXPECT_EQ((long long)st.bytes_free,
		  fdinfo_value(t, id, "pyalloc-bytes-free"));
	EXPECT_EQ(256, fdinfo_value(t, id, "pyalloc-blocks-in-use"));
	EXPECT_EQ((long long)st.mem_limit,
		  fdinfo_value(t, id, "pyalloc-limit-bytes"));
	EXPECT_EQ(1, fdinfo_value(t, id, "pyalloc-alloc-ioctls"));
	EXPECT_EQ(0, fdinfo_value(t, id, "pyalloc-free-ioctls"));
	EXPECT_EQ(0, fdinfo_value(t, id, "pyalloc-forks"));
	EXPECT_NE(NULL, strstr(t, "pyalloc-state:\tok\n"));
	free(t);
}

/* After fork both processes' fdinfo list both heaps, each with its owner. */
TEST_F(obs, fdinfo_after_fork)
{
	int go[2], ready[2];
	char c = 0, *t;
	pid_t pid;

	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(ready));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct pyalloc_info info;

		if (pya_info(self->fd, &info))
			_exit(1);
		if (pya_free(self->fd, self->off, 6, NULL))
			_exit(2);
		if (write(ready[1], &info.heap_id, sizeof(info.heap_id)) != 8)
			_exit(3);
		if (read(go[0], &c, 1) != 1)
			_exit(4);
		_exit(0);
	}
	{
		unsigned long long cid;

		ASSERT_EQ(8, read(ready[0], &cid, sizeof(cid)));
		t = fdinfo_of(pid, self->fd);
		ASSERT_NE(NULL, t);
		EXPECT_EQ(2, fdinfo_value(t, 0, "pyalloc-heaps"));
		EXPECT_EQ(pid, fdinfo_value(t, cid, "pyalloc-owner-pid"));
		EXPECT_EQ(250, fdinfo_value(t, cid, "pyalloc-blocks-in-use"));
		EXPECT_EQ(getpid(), fdinfo_value(t, self->info.heap_id,
						 "pyalloc-owner-pid"));
		EXPECT_EQ(256, fdinfo_value(t, self->info.heap_id,
					    "pyalloc-blocks-in-use"));
		EXPECT_EQ(1, fdinfo_value(t, self->info.heap_id,
					  "pyalloc-forks"));
		free(t);
	}
	ASSERT_EQ(1, write(go[1], &c, 1));
	EXPECT_EQ(0, pya_wait_child(pid));
	t = fdinfo_of(getpid(), self->fd);
	EXPECT_EQ(1, fdinfo_value(t, 0, "pyalloc-heaps"));
	free(t);
}

/* fdinfo follows ptrace rules: another unprivileged user cannot read it. */
TEST_F(obs, fdinfo_needs_ptrace_access)
{
	pid_t parent = getpid(), pid;

	if (getuid() != 0)
		SKIP(return, "needs root to switch users");
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char path[64];

		if (setgid(65534) || setuid(65534))
			_exit(1);
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", parent,
			 self->fd);
		_exit(open(path, O_RDONLY) < 0 ? 0 : 2);
	}
	EXPECT_EQ(0, pya_wait_child(pid));
}

static bool ensure_mounted(const char *dir, const char *fstype,
			   const char *probe)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, probe);
	if (!access(path, F_OK))
		return true;
	mount(fstype, dir, fstype, 0, NULL);
	return !access(path, F_OK);
}

TEST_F(obs, debugfs_table)
{
	char want[128], *t, *row;
	struct pya_kstats st;

	if (!ensure_mounted("/sys/kernel/debug", "debugfs", "pyalloc"))
		SKIP(return, "no debugfs");
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	t = slurp("/sys/kernel/debug/pyalloc/heaps");
	ASSERT_NE(NULL, t);
	EXPECT_EQ(0, strncmp(t, "# pyalloc heaps, version 1\n", 27));
	EXPECT_NE(NULL, strstr(t, "# heap_id pid command mode state pages arenas blocks_in_use blocks_free bytes_in_use bytes_free limit_bytes\n"));
	snprintf(want, sizeof(want), "\n%llu %d ",
		 (unsigned long long)self->info.heap_id, getpid());
	row = strstr(t, want);
	ASSERT_NE(NULL, row) TH_LOG("%s", t);
	{
		char comm[32], mode[16], state[16];
		unsigned long long id, pages, arenas, in_use, nfree, bin, bfree,
			limit;
		int pid;

		ASSERT_EQ(12, sscanf(row + 1, "%llu %d %31s %15s %15s %llu %llu %llu %llu %llu %llu %llu",
				     &id, &pid, comm, mode, state, &pages,
				     &arenas, &in_use, &nfree, &bin, &bfree,
				     &limit));
		EXPECT_STREQ("private", mode);
		EXPECT_STREQ("ok", state);
		EXPECT_EQ(st.pages, pages);
		EXPECT_EQ(st.arenas_current, arenas);
		EXPECT_EQ(256, in_use);
		EXPECT_EQ(st.bytes_in_use, bin);
		EXPECT_EQ(st.mem_limit, limit);
	}
	EXPECT_NE(NULL, strstr(t, "\n# pyalloc classes, version 1\n"));
	snprintf(want, sizeof(want), "\n%llu 12 104 %u 256 %llu\n",
		 (unsigned long long)self->info.heap_id, st.cls[12].pools,
		 (unsigned long long)st.cls[12].blocks_free);
	EXPECT_NE(NULL, strstr(t, want)) TH_LOG("want '%s' in %s", want, t);
	free(t);
}

static long long sysfs_total(const char *name)
{
	char path[128], *t;
	long long v;

	snprintf(path, sizeof(path), "/sys/class/misc/pyalloc/%s", name);
	t = slurp(path);
	if (!t)
		return -1;
	v = strtoll(t, NULL, 10);
	free(t);
	return v;
}

TEST_F(obs, sysfs_totals)
{
	long long forks = sysfs_total("forks");
	pid_t pid;

	EXPECT_EQ(pya_param("heaps"), sysfs_total("heaps"));
	EXPECT_EQ(pya_param("pages_held"), sysfs_total("pages_held"));
	EXPECT_EQ(pya_param("total_limit_mb") << 8, sysfs_total("pages_limit"));
	ASSERT_LE(0, forks);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(0);
	EXPECT_EQ(0, pya_wait_child(pid));
	EXPECT_EQ(forks + 1, sysfs_total("forks"));
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -EIO;
}

TEST(tracepoints)
{
	static const char * const events[] = {
		"pyalloc_alloc: heap=", "bytes_req=42 bytes_alloc=48 count=3",
		"pyalloc_free: heap=", "pyalloc_arena_create: heap=",
		"pyalloc_arena_release: heap=", "pyalloc_fault: heap=",
		"pyalloc_fork: parent=", "pyalloc_purge: heap=", "pgoff=1 pages=1",
	};
	const char *tr = "/sys/kernel/tracing";
	struct pyalloc_config c = { .flags = PYALLOC_CONFIG_MODE,
				    .mode = PYALLOC_MODE_PRIVATE };
	struct pyalloc_trim trim = { 0 };
	struct pyalloc_info info;
	char path[128], *t;
	__u64 off[3], pool[8];
	unsigned int i;
	char *map;
	pid_t pid;
	int fd;

	if (!ensure_mounted(tr, "tracefs", "events")) {
		tr = "/sys/kernel/debug/tracing";
		if (!ensure_mounted("/sys/kernel/debug", "debugfs", "tracing"))
			SKIP(return, "no tracefs");
	}
	snprintf(path, sizeof(path), "%s/events/pyalloc/enable", tr);
	ASSERT_EQ(0, write_str(path, "1")) TH_LOG("%s", path);
	snprintf(path, sizeof(path), "%s/trace", tr);
	ASSERT_EQ(0, write_str(path, ""));

	fd = pya_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c));
	ASSERT_EQ(0, pya_info(fd, &info));
	map = pya_map(fd, &info);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, pya_alloc(fd, 42, 3, off, NULL));
	map[off[0]] = 1;
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(0);
	EXPECT_EQ(0, pya_wait_child(pid));
	/* A pool emptied in a live arena: the trim purges it. */
	ASSERT_EQ(0, pya_alloc(fd, 512, 8, pool, NULL));
	ASSERT_EQ(0, pya_free(fd, pool, 8, NULL));
	ASSERT_EQ(0, pya_ioctl(fd, PYALLOC_IOC_TRIM, &trim));
	EXPECT_EQ(1, trim.pages);
	ASSERT_EQ(0, pya_free(fd, off, 3, NULL));
	ASSERT_EQ(0, pya_ioctl(fd, PYALLOC_IOC_TRIM, &trim));
	munmap(map, info.window_size);
	close(fd);

	snprintf(path, sizeof(path), "%s/events/pyalloc/enable", tr);
	EXPECT_EQ(0, write_str(path, "0"));
	snprintf(path, sizeof(path), "%s/trace", tr);
	t = slurp(path);
	ASSERT_NE(NULL, t);
	for (i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		EXPECT_NE(NULL, strstr(t, events[i])) TH_LOG("no '%s' in:\n%s",
							     events[i], t);
	}
	free(t);
}

PYALLOC_TEST_MAIN
