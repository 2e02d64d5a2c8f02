// SPDX-License-Identifier: GPL-2.0
/*
 * Module lifetime (runs last: "zz"): the module cannot be unloaded while a
 * heap is open or still mapped, holds no page once every heap is closed,
 * and then unloads; it is loaded again (from $PYALLOC_KO, default
 * /pyalloc/pyalloc.ko, with the parameters it had) so that whatever runs
 * afterwards still finds /dev/pyalloc.
 *
 * Uses delete_module(O_NONBLOCK) and finit_module() directly to see the
 * exact errors.  Needs root and a loadable (not built-in) module.
 */
#include "pyalloc_util.h"

#include <sys/stat.h>
#include <sys/syscall.h>

#define MODDIR		"/sys/module/pyalloc"

static const char *ko_path(void)
{
	const char *p = getenv("PYALLOC_KO");

	return p && *p ? p : "/pyalloc/pyalloc.ko";
}

static bool module_loaded(void)
{
	return access(MODDIR, F_OK) == 0;
}

static long long module_refcnt(void)
{
	char buf[32];
	long long v = -1;
	ssize_t n;
	int fd;

	fd = open(MODDIR "/refcnt", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		sscanf(buf, "%lld", &v);
	}
	return v;
}

static int rmmod(void)
{
	return syscall(__NR_delete_module, "pyalloc", O_NONBLOCK) ? -errno : 0;
}

/* Load the module with @params; 0 once /dev/pyalloc exists, else -errno. */
static int insmod(const char *params)
{
	int fd, ret, i;

	fd = open(ko_path(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(__NR_finit_module, fd, params, 0) ? -errno : 0;
	close(fd);
	if (ret)
		return ret;
	/* devtmpfs adds the node during registration; allow for a lag. */
	for (i = 0; i < 100 && access(PYALLOC_DEV, F_OK); i++)
		usleep(20000);
	return access(PYALLOC_DEV, F_OK) ? -ENOENT : 0;
}

/* The load-time and tunable parameters, to load the module as it was. */
static void saved_params(char *buf, size_t len)
{
	long long arena = pya_param("arena_kb");
	long long limit = pya_param("heap_limit_mb");
	long long window = pya_param("window_mb");
	size_t n = 0;

	buf[0] = '\0';
	if (arena >= 0)
		n += snprintf(buf + n, len - n, "arena_kb=%lld ", arena);
	if (limit >= 0 && n < len)
		n += snprintf(buf + n, len - n, "heap_limit_mb=%lld ", limit);
	if (window >= 0 && n < len)
		snprintf(buf + n, len - n, "window_mb=%lld", window);
}

FIXTURE(mod) {
	char params[256];
};

FIXTURE_SETUP(mod)
{
	if (geteuid() != 0)
		SKIP(return, "needs root");
	if (!module_loaded() || module_refcnt() < 0)
		SKIP(return, "pyalloc is not a loaded module");
	if (access(ko_path(), R_OK))
		SKIP(return, "no module file %s (set PYALLOC_KO)", ko_path());
	saved_params(self->params, sizeof(self->params));
}

/* Whatever happened, leave the module loaded for what runs next. */
FIXTURE_TEARDOWN(mod)
{
	if (geteuid() == 0 && !module_loaded())
		EXPECT_EQ(0, insmod(self->params));
}

TEST_F(mod, unload_refused_while_heap_open)
{
	__u64 off;
	int fd;

	fd = pya_open();
	ASSERT_LE(0, fd);
	EXPECT_LT(0, module_refcnt());
	EXPECT_EQ(-EWOULDBLOCK, rmmod());
	ASSERT_TRUE(module_loaded());
	/* The heap is unharmed. */
	EXPECT_EQ(0, pya_alloc(fd, 8, 1, &off, NULL));
	close(fd);
}

TEST_F(mod, unload_refused_while_mapped)
{
	struct pyalloc_info info;
	__u64 off;
	char *map;
	int fd;

	fd = pya_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pya_info(fd, &info));
	map = pya_map(fd, &info);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, pya_alloc(fd, 64, 1, &off, NULL));
	pya_fill(map, off, 64, 1);
	close(fd);
	/* Only the mapping holds the heap now. */
	EXPECT_EQ(-EWOULDBLOCK, rmmod());
	ASSERT_TRUE(module_loaded());
	EXPECT_TRUE(pya_check(map, off, 64, 1));
	munmap(map, info.window_size);
}

/* A forked child holding the inherited fd keeps the module too. */
TEST_F(mod, unload_refused_while_child_holds_heap)
{
	int p2c[2], c2p[2], fd, status;
	char c = 0;
	pid_t pid;

	fd = pya_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pipe(p2c));
	ASSERT_EQ(0, pipe(c2p));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(p2c[1]);
		if (write(c2p[1], &c, 1) != 1)
			_exit(1);
		/* Hold the fd until the parent closes its end of the pipe. */
		if (read(p2c[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(p2c[0]);
	ASSERT_EQ(1, read(c2p[0], &c, 1));
	close(fd);
	EXPECT_EQ(-EWOULDBLOCK, rmmod());
	ASSERT_TRUE(module_loaded());
	close(p2c[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
}

/*
 * Every heap closed: no heap counted, no page held, the unload succeeds
 * and the device goes away; loading again brings it back with the same
 * parameters, and it works.
 */
TEST_F(mod, unload_when_idle_then_reload)
{
	struct pyalloc_info info;
	long long window = pya_param("window_mb");
	long long limit = pya_param("heap_limit_mb");
	__u64 off;
	int fd;

	EXPECT_EQ(0, pya_param("heaps"));
	EXPECT_EQ(0, pya_param("pages_held"));
	EXPECT_EQ(0, module_refcnt());
	ASSERT_EQ(0, rmmod());
	EXPECT_FALSE(module_loaded());
	EXPECT_NE(0, access(PYALLOC_DEV, F_OK));
	/* Unloading twice: the module is gone. */
	EXPECT_EQ(-ENOENT, rmmod());

	ASSERT_EQ(0, insmod(self->params)) TH_LOG("params '%s'", self->params);
	ASSERT_TRUE(module_loaded());
	EXPECT_EQ(window, pya_param("window_mb"));
	EXPECT_EQ(limit, pya_param("heap_limit_mb"));
	EXPECT_EQ(0, pya_param("heaps"));
	EXPECT_EQ(0, pya_param("pages_held"));
	fd = pya_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pya_info(fd, &info));
	EXPECT_EQ(PYALLOC_ABI_VERSION, info.abi_version);
	EXPECT_EQ(0, pya_alloc(fd, 8, 1, &off, NULL));
	EXPECT_EQ(1, pya_param("pages_held"));
	close(fd);
	EXPECT_EQ(0, pya_param("pages_held"));
}

/*
 * arena_kb accepts powers of two from 4 to 4096 and nothing else; the
 * geometry follows it: 9 blocks of 512 bytes need 2 pools, which is one
 * arena of 1 MiB but two arenas of one pool each at 4 KiB.
 */
TEST_F(mod, arena_size_parameter)
{
	static const struct { const char *params; __u32 arena, arenas; } ok[] = {
		{ "arena_kb=1024", 1 << 20, 1 },
		{ "arena_kb=4", 4096, 2 },
	};
	struct pya_kstats st;
	struct pyalloc_info info;
	__u64 offs[9];
	unsigned int i;
	int fd;

	ASSERT_EQ(0, rmmod());
	EXPECT_EQ(-EINVAL, insmod("arena_kb=3"));
	EXPECT_EQ(-EINVAL, insmod("arena_kb=2"));
	EXPECT_EQ(-EINVAL, insmod("arena_kb=8192"));
	EXPECT_FALSE(module_loaded());
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ASSERT_EQ(0, insmod(ok[i].params)) TH_LOG("%s", ok[i].params);
		fd = pya_open();
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, pya_info(fd, &info));
		EXPECT_EQ(ok[i].arena, info.arena_size);
		EXPECT_EQ(ok[i].arena / 4096, info.pools_per_arena);
		ASSERT_EQ(0, pya_alloc(fd, 512, 9, offs, NULL));
		ASSERT_EQ(0, pya_stats(fd, &st));
		EXPECT_EQ(ok[i].arenas, st.arenas_current);
		EXPECT_EQ(2, st.pages);
		close(fd);
		EXPECT_EQ(0, pya_param("pages_held"));
		ASSERT_EQ(0, rmmod());
	}
	/* The teardown loads it again with the saved parameters. */
}

PYALLOC_TEST_MAIN
