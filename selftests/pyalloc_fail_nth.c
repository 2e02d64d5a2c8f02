// SPDX-License-Identifier: GPL-2.0
/*
 * Every failure point of every pyalloc entry point, one at a time, in the
 * manner of the kernel's iommufd_fail_nth selftest.
 *
 * For each scenario (a fresh heap brought into some state, then one call:
 * open, an ioctl, or the first touch of a mapped page) the call is made
 * first without injection, as the reference, then again on a fresh heap in
 * the same state with its n-th failure point failing, for n = 1, 2, ...
 * until a call runs without reaching the n-th point.  The per-task
 * /proc/thread-self/fail-nth counter picks the point; the stack trace filter
 * of the fault-injection framework (require-start/require-end) limits the
 * points counted to those whose stack passes through pyalloc.ko, and the
 * fixture's variant to one kind of fault:
 *
 *   alloc     failslab and fail_page_alloc (every sleeping allocation too)
 *   usercopy  fail_usercopy (copy_{to,from}_user and the _inatomic forms)
 *
 * After an injected failure the call either
 *   - failed with ENOMEM or EFAULT, and the heap is exactly as before: the
 *     whole struct pya_kstats is unchanged, and so is the module's
 *     pages_held; or
 *   - succeeded because the module recovered (ALLOC redoes an allocation
 *     whose result could not be delivered; a fault is retried), and then
 *     the statistics and pages_held are exactly those of the reference run.
 * Either way the heap then allocates, maps and frees a block, and closing it
 * gives every page back.
 *
 * The fork copy of a private heap has a sweep of its own (fork_copy): with
 * the n-th point inside the copy failing, fork either fails with ENOMEM or
 * the child's heap is broken (EIO, EPERM without one, SIGBUS on access) and
 * the parent's heap is byte-for-byte and stat-for-stat as before.  ALLOC's
 * give-back, which only three failed copies in a row reach, has a test of
 * its own too (copy_fault).  Leaks of kernel memory are kmemleak's business:
 * make check-debug scans after the run.
 *
 * PYALLOC_NTH_VERBOSE=1 in the environment prints every point's outcome.
 *
 * Without fault injection (CONFIG_FAULT_INJECTION_DEBUG_FS and the fail_*
 * directories in debugfs, /proc/thread-self/fail-nth) every test skips.
 * Without the stack trace filter the "alloc" variant counts every failure
 * point of the task (all kinds, in and out of pyalloc) and "usercopy" skips.
 */
#include "pyalloc_util.h"

#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>

#define DBGFS		"/sys/kernel/debug/"
#define NTH_FILE	"/proc/thread-self/fail-nth"
/* More failure points than this in one call means a runaway sweep. */
#define MAX_NTH		400

static const char *const fail_dirs[] = {
	"failslab", "fail_page_alloc", "fail_usercopy",
};
#define NDIRS	(sizeof(fail_dirs) / sizeof(fail_dirs[0]))

enum { MODE_ALLOC, MODE_USERCOPY };

/* Fault injection as found at start-up. */
static bool have_fi;		/* fail_* dirs and fail-nth */
static bool have_filter;	/* require-start/-end and pyalloc's text */
static unsigned long mod_lo, mod_hi;	/* pyalloc.ko's text, [lo, hi) */

/* The debugfs values this program changes, restored at exit. */
static struct {
	char path[128];
	char val[64];
} saved[32];
static unsigned int nsaved;

static int read_str(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int write_str(const char *path, const char *val)
{
	ssize_t len = strlen(val), n;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	close(fd);
	return n == len ? 0 : -EIO;
}

/* Set DBGFS/dir/attr, remembering its first value. */
static int set_attr(const char *dir, const char *attr, const char *val)
{
	char path[128];
	unsigned int i;

	snprintf(path, sizeof(path), DBGFS "%s/%s", dir, attr);
	for (i = 0; i < nsaved; i++)
		if (!strcmp(saved[i].path, path))
			break;
	if (i == nsaved && nsaved < sizeof(saved) / sizeof(saved[0])) {
		if (read_str(path, saved[i].val, sizeof(saved[i].val)))
			return -ENOENT;
		strcpy(saved[i].path, path);
		nsaved++;
	}
	return write_str(path, val);
}

/* Put DBGFS/dir/attr back to the value set_attr() first found. */
static void restore_attr(const char *dir, const char *attr)
{
	char path[128];
	unsigned int i;

	snprintf(path, sizeof(path), DBGFS "%s/%s", dir, attr);
	for (i = 0; i < nsaved; i++)
		if (!strcmp(saved[i].path, path))
			write_str(path, saved[i].val);
}

static void restore_attrs(void)
{
	unsigned int i;

	for (i = 0; i < nsaved; i++)
		write_str(saved[i].path, saved[i].val);
}

/* The span of pyalloc.ko's functions, from /proc/kallsyms. */
static bool find_module_text(void)
{
	unsigned long lo = ULONG_MAX, hi = 0, addr;
	char line[512], type;
	FILE *f;

	f = fopen("/proc/kallsyms", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "\t[pyalloc]"))
			continue;
		if (sscanf(line, "%lx %c", &addr, &type) != 2 || !addr)
			continue;
		if (type != 't' && type != 'T')
			continue;
		if (addr < lo)
			lo = addr;
		if (addr > hi)
			hi = addr;
	}
	fclose(f);
	if (!hi)
		return false;
	mod_lo = lo;
	mod_hi = hi + 4096;	/* the last function's size is not listed */
	return true;
}

/*
 * In the parent, before any test: find out what the kernel offers, quiet
 * the injection messages (the log must stay clean) and let sleeping
 * allocations be failed too.
 */
static void __attribute__((constructor)) setup_fault_injection(void)
{
	unsigned int i;
	char buf[64];

	if (access(NTH_FILE, R_OK | W_OK))
		return;
	for (i = 0; i < NDIRS; i++) {
		char path[128];

		snprintf(path, sizeof(path), DBGFS "%s/verbose", fail_dirs[i]);
		if (read_str(path, buf, sizeof(buf)))
			return;
	}
	atexit(restore_attrs);
	for (i = 0; i < NDIRS; i++) {
		if (set_attr(fail_dirs[i], "verbose", "0") ||
		    set_attr(fail_dirs[i], "probability", "0"))
			return;
	}
	if (set_attr("failslab", "ignore-gfp-wait", "N") ||
	    set_attr("fail_page_alloc", "ignore-gfp-wait", "N") ||
	    set_attr("fail_page_alloc", "ignore-gfp-highmem", "N") ||
	    set_attr("fail_page_alloc", "min-order", "0"))
		return;
	have_fi = true;

	snprintf(buf, sizeof(buf), DBGFS "%s/require-start", fail_dirs[0]);
	have_filter = !access(buf, W_OK) && find_module_text();
}

/* Count failure points of one kind, those in pyalloc's stack, or none. */
static int filter(const char *dir, bool on)
{
	char lo[32], hi[32];

	if (on) {
		snprintf(lo, sizeof(lo), "%lu", mod_lo);
		snprintf(hi, sizeof(hi), "%lu", mod_hi);
	} else {
		/* A range no return address lies in: nothing counts. */
		strcpy(lo, "1");
		strcpy(hi, "2");
	}
	/* Widen first, so that start <= end holds at every step. */
	if (set_attr(dir, "require-start", "0") ||
	    set_attr(dir, "require-end", hi) ||
	    set_attr(dir, "require-start", lo) ||
	    set_attr(dir, "stacktrace-depth", "32"))
		return -1;
	return 0;
}

FIXTURE(nth) {
	int nth_fd;
	int mode;
	const char *mode_name;
};

FIXTURE_VARIANT(nth) {
	int mode;
};

FIXTURE_VARIANT_ADD(nth, alloc) {
	.mode = MODE_ALLOC,
};

FIXTURE_VARIANT_ADD(nth, usercopy) {
	.mode = MODE_USERCOPY,
};

FIXTURE_SETUP(nth)
{
	bool alloc = variant->mode == MODE_ALLOC;

	self->nth_fd = -1;
	self->mode = variant->mode;
	if (!have_fi)
		SKIP(return, "no fault injection (fail_* in debugfs, %s)",
		     NTH_FILE);
	if (have_filter) {
		ASSERT_EQ(0, filter("failslab", alloc));
		ASSERT_EQ(0, filter("fail_page_alloc", alloc));
		ASSERT_EQ(0, filter("fail_usercopy", !alloc));
		self->mode_name = alloc ? "allocation" : "user copy";
	} else if (alloc) {
		self->mode_name = "any (no stack filter)";
	} else {
		SKIP(return, "no stack trace filter: user copies not separable");
	}
	self->nth_fd = open(NTH_FILE, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->nth_fd);
}

FIXTURE_TEARDOWN(nth)
{
	if (self->nth_fd >= 0) {
		(void)!pwrite(self->nth_fd, "0", 1, 0);
		close(self->nth_fd);
	}
}

/* One heap in the state a scenario needs. */
struct ctx {
	int fd;
	struct pyalloc_info info;
	char *map;
	__u64 *held;		/* blocks allocated by the setup */
	__u64 nheld;
	__u64 *arg;		/* blocks the call frees */
	__u32 narg;
	__u64 out[PYALLOC_MAX_BATCH];
	__u64 touch;		/* offset the fault scenario touches */
};

struct scenario {
	const char *name;
	/* The call is open() itself: no heap exists before it. */
	bool is_open;
	/* Bring a fresh heap into the scenario's state; 0 or -errno. */
	int (*setup)(struct ctx *c);
	/* The call under test; 0 or -errno. */
	int (*call)(struct ctx *c);
};

static int hold(struct ctx *c, __u32 size, __u64 n)
{
	__u64 *p = realloc(c->held, (c->nheld + n) * sizeof(*p));
	int ret;

	if (!p)
		return -ENOMEM;
	c->held = p;
	ret = pya_alloc_n(c->fd, size, n, c->held + c->nheld);
	if (!ret)
		c->nheld += n;
	return ret;
}

static __u64 blocks_per_arena(const struct ctx *c, __u32 bs)
{
	return (__u64)c->info.pools_per_arena * (c->info.pool_size / bs);
}

/* open() alone: the call of the "open" scenario. */
static int ctx_open_fd(struct ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->map = MAP_FAILED;
	c->fd = pya_open();
	return c->fd < 0 ? -errno : 0;
}

static int ctx_map(struct ctx *c)
{
	if (pya_info(c->fd, &c->info))
		return -errno;
	c->map = pya_map(c->fd, &c->info);
	return c->map == MAP_FAILED ? -errno : 0;
}

static int ctx_open(struct ctx *c)
{
	int ret = ctx_open_fd(c);

	return ret ? ret : ctx_map(c);
}

static void ctx_close(struct ctx *c)
{
	if (c->map != MAP_FAILED)
		munmap(c->map, c->info.window_size);
	if (c->fd >= 0)
		close(c->fd);
	free(c->held);
	c->held = NULL;
	c->fd = -1;
	c->map = MAP_FAILED;
}

/* ---- scenarios ---- */

static int setup_none(struct ctx *c)
{
	(void)c;
	return 0;
}

static int call_open(struct ctx *c)
{
	return ctx_open_fd(c);
}

static int call_info(struct ctx *c)
{
	struct pyalloc_info info;

	return pya_info(c->fd, &info);
}

static int call_stats(struct ctx *c)
{
	struct pya_kstats st;

	return pya_stats(c->fd, &st);
}

static int call_config_granularity(struct ctx *c)
{
	return pya_config(c->fd, PYALLOC_CONFIG_GRANULARITY, 16, 0);
}

static int call_config_limit(struct ctx *c)
{
	return pya_config(c->fd, PYALLOC_CONFIG_MEM_LIMIT, 0,
			  c->info.mem_limit / 2);
}

/* A newer, larger struct whose extra bytes are zero (checked by reading). */
static int call_config_larger(struct ctx *c)
{
	struct {
		struct pyalloc_config cfg;
		__u64 future[3];
	} big = {
		.cfg = { .flags = PYALLOC_CONFIG_MEM_LIMIT,
			 .mem_limit = c->info.mem_limit / 4 },
	};

	return pya_ioctl(c->fd, PYA_IOC_W(1, sizeof(big)), &big);
}

static int call_trim(struct ctx *c)
{
	struct pyalloc_trim tr = { 0 };

	return pya_ioctl(c->fd, PYALLOC_IOC_TRIM, &tr);
}

static int call_alloc_one(struct ctx *c)
{
	return pya_alloc(c->fd, 64, 1, c->out, NULL);
}

static int call_alloc_batch(struct ctx *c)
{
	return pya_alloc(c->fd, 512, PYALLOC_MAX_BATCH, c->out, NULL);
}

static int call_alloc_new_class(struct ctx *c)
{
	return pya_alloc(c->fd, 16, 8, c->out, NULL);
}

/* Part of an arena in use: the batch carves there and creates another. */
static int setup_partial_arena(struct ctx *c)
{
	return hold(c, 512, 100);
}

/*
 * One arena, emptied and kept, with one carved pool: the batch reuses that
 * pool, carves the other pools of the kept arena, which must be kept again
 * (with its one carved pool) when the batch is undone.
 */
static int setup_kept_empty(struct ctx *c)
{
	struct pya_kstats st;
	int ret = hold(c, 512, c->info.pool_size / 512);

	if (ret)
		return ret;
	ret = pya_free_n(c->fd, c->held, c->nheld);
	if (ret)
		return ret;
	c->nheld = 0;
	ret = pya_stats(c->fd, &st);
	if (ret)
		return ret;
	return st.arenas_current == 1 && st.pools_empty == 1 ? 0 : -EPROTO;
}

/*
 * Two pools of 512-byte blocks in use, the second emptied and purged by a
 * TRIM (its page given back): the batch revives it (a fresh page) and
 * carves more, and undone it is purged again.
 */
static int setup_purged_pool(struct ctx *c)
{
	__u64 per_pool = c->info.pool_size / 512;
	struct pyalloc_trim tr = { 0 };
	int ret = hold(c, 512, 2 * per_pool);

	if (ret)
		return ret;
	ret = pya_free_n(c->fd, c->held + per_pool, per_pool);
	if (ret)
		return ret;
	c->nheld = per_pool;
	ret = pya_ioctl(c->fd, PYALLOC_IOC_TRIM, &tr);
	if (ret)
		return ret;
	return tr.pages == 1 ? 0 : -EPROTO;
}

/*
 * At the memory limit: arena A full, C with one pool in use (the most used
 * arena with a free pool, but none carved), B emptied and kept with all its
 * pools carved, and the limit at the pages held.  A new class can only take
 * an emptied pool from B (pool_get's fallback at the limit).
 */
static int setup_at_limit(struct ctx *c)
{
	__u64 per_arena = blocks_per_arena(c, 512), *b;
	struct pya_kstats st;
	int ret;

	ret = hold(c, 512, per_arena);				/* A */
	if (!ret)
		ret = hold(c, 512, per_arena);			/* B */
	if (!ret)
		ret = hold(c, 512, c->info.pool_size / 512);	/* C */
	if (ret)
		return ret;
	b = c->held + per_arena;
	ret = pya_free_n(c->fd, b, per_arena);
	if (ret)
		return ret;
	ret = pya_stats(c->fd, &st);
	if (ret)
		return ret;
	ret = pya_config(c->fd, PYALLOC_CONFIG_MEM_LIMIT, 0,
			 st.pages * c->info.pool_size);
	if (ret)
		return ret;
	return st.arenas_current == 3 &&
	       st.pools_empty == c->info.pools_per_arena ? 0 : -EPROTO;
}

/* Three blocks; the call frees two. */
static int setup_free_small(struct ctx *c)
{
	int ret = hold(c, 32, 3);

	c->arg = c->held + 1;
	c->narg = 2;
	return ret;
}

/*
 * Arenas A and B full and touched, C emptied and kept: freeing all of B
 * releases it (unmapped from the window, pages freed).
 */
static int setup_free_release(struct ctx *c)
{
	__u64 per_arena = blocks_per_arena(c, 512), i;
	int ret;

	if (per_arena > PYALLOC_MAX_BATCH)
		return -EPROTO;
	ret = hold(c, 512, 2 * per_arena);
	if (!ret)
		ret = hold(c, 512, c->info.pool_size / 512);
	if (ret)
		return ret;
	ret = pya_free_n(c->fd, c->held + 2 * per_arena,
			 c->info.pool_size / 512);
	if (ret)
		return ret;
	c->nheld = 2 * per_arena;
	for (i = 0; i < c->nheld; i++)
		pya_fill(c->map, c->held[i], 512, 1);
	c->arg = c->held + per_arena;
	c->narg = per_arena;
	return 0;
}

static int call_free(struct ctx *c)
{
	return pya_free(c->fd, c->arg, c->narg, NULL);
}

/* A block whose page was never touched. */
static int setup_untouched(struct ctx *c)
{
	int ret = hold(c, 64, 1);

	c->touch = c->nheld ? c->held[0] : 0;
	return ret;
}

static int call_touch_read(struct ctx *c)
{
	volatile __u64 *p = (volatile __u64 *)(c->map + c->touch);

	return *p == 0 ? 0 : -EPROTO;
}

static int call_touch_write(struct ctx *c)
{
	volatile __u64 *p = (volatile __u64 *)(c->map + c->touch);

	*p = 0x5a5a;
	return *p == 0x5a5a ? 0 : -EPROTO;
}

static const struct scenario sc_open = {
	"open", true, setup_none, call_open };
static const struct scenario sc_info = {
	"INFO", false, setup_none, call_info };
static const struct scenario sc_stats = {
	"STATS", false, setup_none, call_stats };
static const struct scenario sc_config_gran = {
	"CONFIG granularity", false, setup_none, call_config_granularity };
static const struct scenario sc_config_limit = {
	"CONFIG mem_limit", false, setup_none, call_config_limit };
static const struct scenario sc_config_larger = {
	"CONFIG larger struct", false, setup_none, call_config_larger };
static const struct scenario sc_alloc_fresh = {
	"ALLOC on a fresh heap", false, setup_none, call_alloc_one };
static const struct scenario sc_alloc_fresh_batch = {
	"ALLOC batch on a fresh heap", false, setup_none, call_alloc_batch };
static const struct scenario sc_alloc_partial = {
	"ALLOC batch into a new arena", false, setup_partial_arena,
	call_alloc_batch };
static const struct scenario sc_alloc_kept = {
	"ALLOC batch with a kept empty arena", false, setup_kept_empty,
	call_alloc_batch };
static const struct scenario sc_alloc_limit = {
	"ALLOC at the memory limit", false, setup_at_limit,
	call_alloc_new_class };
static const struct scenario sc_alloc_purged = {
	"ALLOC batch reviving a purged pool", false, setup_purged_pool,
	call_alloc_batch };
static const struct scenario sc_trim = {
	"TRIM of a kept empty arena", false, setup_kept_empty, call_trim };
static const struct scenario sc_free_small = {
	"FREE", false, setup_free_small, call_free };
static const struct scenario sc_free_release = {
	"FREE releasing an arena", false, setup_free_release, call_free };
static const struct scenario sc_fault_read = {
	"first touch (read)", false, setup_untouched, call_touch_read };
static const struct scenario sc_fault_write = {
	"first touch (write)", false, setup_untouched, call_touch_write };

/* ---- the sweep ---- */

static long long held_pages(void)
{
	return pya_param("pages_held");
}

/* Arm the n-th failure point of this task (0 disarms). */
static void __nth_set(struct __test_metadata *_metadata, int nth_fd,
		      unsigned int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%u", n);

	ASSERT_EQ(len, pwrite(nth_fd, buf, len, 0));
}

/*
 * Disarm; true if the armed failure was injected.  Without the stack
 * filter the read itself may be failed (EFAULT): the call then got
 * through without reaching the n-th point.
 */
static bool __nth_fired(struct __test_metadata *_metadata, int nth_fd)
{
	char buf[16] = "";
	ssize_t n = pread(nth_fd, buf, sizeof(buf) - 1, 0);
	bool fired = n == 2 && buf[0] == '0' && buf[1] == '\n';

	if (n < 0 && errno == EFAULT)
		fired = false;
	else
		EXPECT_LT(1, n);
	if (pwrite(nth_fd, "0", 1, 0) != 1)
		ASSERT_EQ(1, pwrite(nth_fd, "0", 1, 0));
	return fired;
}

#define nth_set(n)	__nth_set(_metadata, self->nth_fd, n)
#define nth_fired()	__nth_fired(_metadata, self->nth_fd)

/* The heap still works: allocate, write, read back and free a block. */
static void __expect_heap_works(struct __test_metadata *_metadata,
				struct ctx *c)
{
	__u64 off;

	ASSERT_EQ(0, pya_alloc(c->fd, 24, 1, &off, NULL));
	pya_fill(c->map, off, 24, 7);
	EXPECT_TRUE(pya_check(c->map, off, 24, 7));
	ASSERT_EQ(0, pya_free(c->fd, &off, 1, NULL));
}

#define expect_heap_works(c)	__expect_heap_works(_metadata, c)

static void __sweep(struct __test_metadata *_metadata,
		    FIXTURE_DATA(nth) *self, const struct scenario *sc)
{
	struct pya_kstats before, after, ref;
	long long base_held, held_before, ref_held, heaps;
	unsigned int n, errors = 0, absorbed = 0;
	const char *env = getenv("PYALLOC_NTH_VERBOSE");
	bool verbose = env && *env && strcmp(env, "0");
	struct ctx c;
	int ret;

	base_held = held_pages();
	ASSERT_LE(0, base_held);
	heaps = pya_param("heaps");

	/* The reference: the call without injection. */
	if (sc->is_open) {
		ASSERT_EQ(0, sc->call(&c));
		ASSERT_EQ(0, ctx_map(&c));
	} else {
		ASSERT_EQ(0, ctx_open(&c));
		ASSERT_EQ(0, sc->setup(&c));
		ASSERT_EQ(0, sc->call(&c)) TH_LOG("%s failed", sc->name);
	}
	ASSERT_EQ(0, pya_stats(c.fd, &ref));
	ref_held = held_pages();
	expect_heap_works(&c);
	ctx_close(&c);
	ASSERT_EQ(base_held, held_pages());

	for (n = 1; ; n++) {
		bool fired;

		ASSERT_GT(MAX_NTH, n) TH_LOG("%s: no end to the failure points",
					     sc->name);
		if (!sc->is_open) {
			ASSERT_EQ(0, ctx_open(&c));
			ASSERT_EQ(0, sc->setup(&c));
			ASSERT_EQ(0, pya_stats(c.fd, &before));
		}
		held_before = held_pages();

		nth_set(n);
		ret = sc->call(&c);
		fired = nth_fired();
		if (verbose)
			ksft_print_msg("%s, point %u: %s, %s\n", sc->name, n,
				       fired ? "injected" : "not reached",
				       ret ? strerror(-ret) : "success");

		if (sc->is_open && !ret)
			ASSERT_EQ(0, ctx_map(&c));
		if (!fired) {
			/* Past the last failure point: the call must work. */
			ASSERT_EQ(0, ret) TH_LOG("%s: %s without injection",
						 sc->name, strerror(-ret));
			ASSERT_EQ(0, pya_stats(c.fd, &after));
			after.heap_id = ref.heap_id;	/* a new heap each run */
			EXPECT_EQ(0, memcmp(&ref, &after, sizeof(ref)));
			EXPECT_EQ(ref_held, held_pages());
			expect_heap_works(&c);
			ctx_close(&c);
			break;
		}

		if (ret) {
			errors++;
			EXPECT_TRUE(ret == -ENOMEM || ret == -EFAULT)
				TH_LOG("%s, point %u: %s", sc->name, n,
				       strerror(-ret));
			EXPECT_EQ(held_before, held_pages())
				TH_LOG("%s, point %u: pages_held changed",
				       sc->name, n);
			if (sc->is_open) {
				EXPECT_EQ(heaps, pya_param("heaps"));
				ctx_close(&c);
				continue;
			}
			ASSERT_EQ(0, pya_stats(c.fd, &after));
			EXPECT_EQ(0, memcmp(&before, &after, sizeof(before)))
				TH_LOG("%s, point %u (%s): the heap changed: "
				       "pages %llu->%llu arenas %llu->%llu "
				       "allocated %llu->%llu highwater %llu->%llu "
				       "empty pools %llu->%llu",
				       sc->name, n, strerror(-ret),
				       (unsigned long long)before.pages,
				       (unsigned long long)after.pages,
				       (unsigned long long)before.arenas_current,
				       (unsigned long long)after.arenas_current,
				       (unsigned long long)before.arenas_allocated,
				       (unsigned long long)after.arenas_allocated,
				       (unsigned long long)before.arenas_highwater,
				       (unsigned long long)after.arenas_highwater,
				       (unsigned long long)before.pools_empty,
				       (unsigned long long)after.pools_empty);
		} else {
			/* Recovered inside the module: as if nothing failed. */
			absorbed++;
			ASSERT_EQ(0, pya_stats(c.fd, &after));
			after.heap_id = ref.heap_id;
			EXPECT_EQ(0, memcmp(&ref, &after, sizeof(ref)))
				TH_LOG("%s, point %u: recovered, but the heap "
				       "differs from the reference", sc->name, n);
			EXPECT_EQ(ref_held, held_pages());
		}
		expect_heap_works(&c);
		ctx_close(&c);
		EXPECT_EQ(base_held, held_pages());
	}
	ksft_print_msg("%s, %s faults: %u points, %u failed the call, %u recovered\n",
		       sc->name, self->mode_name, n - 1, errors, absorbed);
}

#define sweep(sc)	__sweep(_metadata, self, sc)

/* ---- the fork copy of a private heap ---- */

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

/*
 * In the forked child: 0 when the copy is complete and right, 10 when the
 * heap is cleanly broken (EIO or EPERM, SIGBUS on access), else a failure.
 */
static int child_check(struct ctx *c)
{
	struct pyalloc_info info;
	volatile char v;
	__u64 i;
	int ret = pya_info(c->fd, &info);

	if (ret == -EIO || ret == -EPERM) {
		signal(SIGBUS, on_sigbus);
		if (sigsetjmp(bus_jmp, 1))
			return 10;
		v = c->map[c->held[0]];
		(void)v;
		return 1;
	}
	if (ret)
		return 2;
	for (i = 0; i < c->nheld; i++)
		if (!pya_check(c->map, c->held[i], 512, i))
			return 3;
	if (pya_free_n(c->fd, c->held, c->nheld))
		return 4;
	return 0;
}

static int ctx_open_private(struct ctx *c)
{
	struct pyalloc_config cfg = { .flags = PYALLOC_CONFIG_MODE,
				      .mode = PYALLOC_MODE_PRIVATE };
	int ret = ctx_open_fd(c);
	__u64 i;

	if (!ret)
		ret = pya_ioctl(c->fd, PYALLOC_IOC_CONFIG, &cfg);
	if (!ret)
		ret = ctx_map(c);
	/* Two arenas' worth of pages, every block marked. */
	if (!ret)
		ret = hold(c, 512, blocks_per_arena(c, 512) + 24);
	for (i = 0; !ret && i < c->nheld; i++)
		pya_fill(c->map, c->held[i], 512, i);
	return ret;
}

TEST_F_TIMEOUT(nth, fork_copy, 300)
{
	long long base_held = held_pages(), heaps = pya_param("heaps");
	unsigned int n, broken = 0, refused = 0;
	struct pya_kstats before, after;
	struct ctx c;
	int status;
	pid_t pid;
	__u64 i;

	for (n = 1; ; n++) {
		bool fired;

		ASSERT_GT(MAX_NTH, n);
		ASSERT_EQ(0, ctx_open_private(&c));
		ASSERT_EQ(0, pya_stats(c.fd, &before));
		nth_set(n);
		pid = fork();
		if (pid == 0)
			_exit(child_check(&c));
		fired = nth_fired();
		if (pid < 0) {
			/* Refusing the fork is allowed: ENOMEM. */
			EXPECT_TRUE(fired);
			EXPECT_EQ(ENOMEM, errno);
			refused++;
		} else {
			ASSERT_EQ(pid, waitpid(pid, &status, 0));
			ASSERT_TRUE(WIFEXITED(status));
			if (!fired) {
				EXPECT_EQ(0, WEXITSTATUS(status));
			} else {
				EXPECT_TRUE(WEXITSTATUS(status) == 10 ||
					    WEXITSTATUS(status) == 0)
					TH_LOG("point %u: child status %d", n,
					       WEXITSTATUS(status));
				broken += WEXITSTATUS(status) == 10;
			}
		}
		/* The parent's heap: untouched, whatever happened. */
		ASSERT_EQ(0, pya_stats(c.fd, &after));
		after.forks = before.forks;
		EXPECT_EQ(0, memcmp(&before, &after, sizeof(before)))
			TH_LOG("point %u: the parent's heap changed", n);
		for (i = 0; i < c.nheld; i++) {
			ASSERT_TRUE(pya_check(c.map, c.held[i], 512, i))
				TH_LOG("point %u: block %llu changed", n,
				       (unsigned long long)i);
		}
		EXPECT_EQ(heaps + 1, pya_param("heaps"));
		expect_heap_works(&c);
		ctx_close(&c);
		EXPECT_EQ(base_held, held_pages());
		if (!fired)
			break;
	}
	ksft_print_msg("fork copy, %s faults: %u points, %u broken children, %u forks refused\n",
		       self->mode_name, n - 1, broken, refused);
}

/*
 * ALLOC's last resort (ioctl.c's alloc_then_deliver()) gives its batch back
 * when even the copy it makes with page faults allowed fails.  No single
 * failure point reaches it: both copies made with faults disabled must
 * fail first, so fail-nth cannot, and a sibling thread dropping the buffer
 * in a loop gets there about once in a thousand calls on the debug kernel.
 * So this test fails pyalloc's user copies of one thread with the
 * attributes of fail_usercopy instead: space 2 lets the first point (the
 * request's copy-in) pass, times 3 fails the next three (the two copies
 * with faults disabled and copy_to_user()), task-filter limits it all to
 * this thread.  The call fails with EFAULT; the call and a free of its 64
 * blocks show in the statistics, no block is left in use, and the heap
 * works on.
 */
FIXTURE(copy_fault) {
	int make_it_fail;
};

FIXTURE_SETUP(copy_fault)
{
	self->make_it_fail = -1;
	if (!have_fi)
		SKIP(return, "no fault injection (fail_* in debugfs, %s)",
		     NTH_FILE);
	if (!have_filter)
		SKIP(return, "no stack trace filter: user copies not separable");
	ASSERT_EQ(0, filter("failslab", false));
	ASSERT_EQ(0, filter("fail_page_alloc", false));
	ASSERT_EQ(0, filter("fail_usercopy", true));
	self->make_it_fail = open("/proc/thread-self/make-it-fail",
				  O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, self->make_it_fail);
}

FIXTURE_TEARDOWN(copy_fault)
{
	static const char *const attrs[] = {
		"task-filter", "interval", "space", "times",
	};
	unsigned int i;

	set_attr("fail_usercopy", "probability", "0");
	for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		restore_attr("fail_usercopy", attrs[i]);
	if (self->make_it_fail >= 0) {
		(void)!pwrite(self->make_it_fail, "0", 1, 0);
		close(self->make_it_fail);
	}
}

TEST_F_TIMEOUT(copy_fault, alloc_give_back, 120)
{
	long long base_held = held_pages();
	struct pya_kstats before, after;
	char times[16] = "";
	__u64 out[64];
	struct ctx c;
	int ret;

	ASSERT_EQ(0, ctx_open(&c));
	ASSERT_EQ(0, hold(&c, 64, 10));
	ASSERT_EQ(0, pya_stats(c.fd, &before));
	ASSERT_EQ(0, set_attr("fail_usercopy", "task-filter", "Y"));
	ASSERT_EQ(0, set_attr("fail_usercopy", "interval", "1"));
	ASSERT_EQ(0, set_attr("fail_usercopy", "space", "2"));
	ASSERT_EQ(0, set_attr("fail_usercopy", "times", "3"));
	ASSERT_EQ(1, pwrite(self->make_it_fail, "1", 1, 0));
	ASSERT_EQ(0, set_attr("fail_usercopy", "probability", "100"));
	ret = pya_alloc(c.fd, 64, 64, out, NULL);
	ASSERT_EQ(0, set_attr("fail_usercopy", "probability", "0"));
	ASSERT_EQ(1, pwrite(self->make_it_fail, "0", 1, 0));
	ASSERT_EQ(0, read_str(DBGFS "fail_usercopy/times", times,
			      sizeof(times)));
	EXPECT_EQ(0, atoi(times)) TH_LOG("failures left: %s", times);
	EXPECT_EQ(-EFAULT, ret);
	ASSERT_EQ(0, pya_stats(c.fd, &after));
	EXPECT_EQ(before.alloc_calls + 1, after.alloc_calls);
	EXPECT_EQ(before.free_calls + 1, after.free_calls);
	EXPECT_EQ(before.blocks_allocated + 64, after.blocks_allocated);
	EXPECT_EQ(before.blocks_freed + 64, after.blocks_freed);
	EXPECT_EQ(10, pya_check_stats(&after, &c.info));
	expect_heap_works(&c);
	ASSERT_EQ(0, pya_free_n(c.fd, c.held, c.nheld));
	c.nheld = 0;
	ctx_close(&c);
	EXPECT_EQ(base_held, held_pages());
}

TEST_F_TIMEOUT(nth, open, 300)
{
	sweep(&sc_open);
}

TEST_F_TIMEOUT(nth, info, 300)
{
	sweep(&sc_info);
}

TEST_F_TIMEOUT(nth, stats, 300)
{
	sweep(&sc_stats);
}

TEST_F_TIMEOUT(nth, config, 300)
{
	sweep(&sc_config_gran);
	sweep(&sc_config_limit);
	sweep(&sc_config_larger);
}

TEST_F_TIMEOUT(nth, alloc_fresh, 300)
{
	sweep(&sc_alloc_fresh);
	sweep(&sc_alloc_fresh_batch);
}

TEST_F_TIMEOUT(nth, alloc_new_arena, 300)
{
	sweep(&sc_alloc_partial);
}

TEST_F_TIMEOUT(nth, alloc_kept_empty_arena, 300)
{
	sweep(&sc_alloc_kept);
}

TEST_F_TIMEOUT(nth, alloc_purged_pool, 300)
{
	sweep(&sc_alloc_purged);
}

TEST_F_TIMEOUT(nth, alloc_at_limit, 300)
{
	sweep(&sc_alloc_limit);
}

TEST_F_TIMEOUT(nth, free, 300)
{
	sweep(&sc_free_small);
	sweep(&sc_free_release);
}

TEST_F_TIMEOUT(nth, trim, 300)
{
	sweep(&sc_trim);
}

TEST_F_TIMEOUT(nth, first_touch, 300)
{
	sweep(&sc_fault_read);
	sweep(&sc_fault_write);
}

PYALLOC_TEST_MAIN
