/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the pyalloc kernel selftests (selftests/pyalloc_*.c).
 *
 * Include this after nothing else: it pulls in kselftest_harness.h (which
 * defines _GNU_SOURCE) and the ABI header.  Helpers that report through the
 * harness take the test's _metadata as their first argument, so EXPECT_* and
 * ASSERT_* work inside them.
 *
 * Every program ends with PYALLOC_TEST_MAIN, which exits with KSFT_SKIP (4)
 * before running anything when /dev/pyalloc does not exist.
 *
 * Beware: the harness's ASSERT_* and EXPECT_* expand to two statements (the
 * check, then a for loop that logs and bails), so as the body of an if or a
 * loop they must be in braces.
 */
#ifndef PYALLOC_SELFTEST_UTIL_H
#define PYALLOC_SELFTEST_UTIL_H

/*
 * The 6.12 harness is written for the kernel's -Wall builds, not -Wextra:
 * its own code has unused parameters (__timeout_handler, TEST() wrappers),
 * a setjmp'd local that -Wclobbered flags in every TEST_F, and EXPECT_EQ(0,
 * u64_field) compares an int literal with an unsigned field.  These three
 * warnings are silenced for the whole test program; everything else in
 * -Wall -Wextra stays an error.
 */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic ignored "-Wsign-compare"

#include "kselftest_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/pyalloc.h>

#define PYALLOC_DEV		"/dev/pyalloc"
#define PYALLOC_SYSFS_PARAM	"/sys/module/pyalloc/parameters/"
#define PYA_PAGE		4096UL

/* Build an ioctl number of the driver's magic with an arbitrary size. */
#define PYA_IOC_RW(nr, size) \
	_IOC(_IOC_READ | _IOC_WRITE, PYALLOC_IOC_MAGIC, (nr), (size))
#define PYA_IOC_R(nr, size)	_IOC(_IOC_READ, PYALLOC_IOC_MAGIC, (nr), (size))
#define PYA_IOC_W(nr, size)	_IOC(_IOC_WRITE, PYALLOC_IOC_MAGIC, (nr), (size))

static inline int pya_open(void)
{
	return open(PYALLOC_DEV, O_RDWR | O_CLOEXEC);
}

/* A child's exit status; 1000 + the signal if it was killed; -1 on error. */
static inline int pya_wait_child(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status))
		return 1000 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* ioctl wrappers: 0 on success, -errno on failure. */
static inline int pya_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

static inline int pya_info(int fd, struct pyalloc_info *info)
{
	memset(info, 0, sizeof(*info));
	return pya_ioctl(fd, PYALLOC_IOC_INFO, info);
}

/*
 * A heap's statistics as the tests compare them: the kernel's totals
 * (struct pya_kstats, an anonymous member, -fms-extensions, so that its
 * fields read as this struct's own) followed by the class table, which the
 * kernel writes through the stats' classes pointer.  The pointer is cleared
 * after the call so that two snapshots compare equal with memcmp().
 */
struct pya_kstats {
	struct pyalloc_stats;
	struct pyalloc_class_stats cls[PYALLOC_MAX_CLASSES];
};

static inline int pya_stats(int fd, struct pya_kstats *st)
{
	int ret;

	memset(st, 0, sizeof(*st));
	st->classes = (__u64)(uintptr_t)st->cls;
	st->classes_count = PYALLOC_MAX_CLASSES;
	ret = pya_ioctl(fd, PYALLOC_IOC_STATS, st);
	st->classes = 0;
	return ret;
}

static inline int pya_config(int fd, __u32 flags, __u32 granularity,
			     __u64 mem_limit)
{
	struct pyalloc_config c = {
		.flags = flags,
		.granularity = granularity,
		.mem_limit = mem_limit,
	};

	return pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c);
}

static inline int pya_alloc(int fd, __u32 size, __u32 count, __u64 *offsets,
			    __u32 *block_size)
{
	struct pyalloc_alloc a = {
		.size = size,
		.count = count,
		.offsets = (__u64)(uintptr_t)offsets,
	};
	int ret = pya_ioctl(fd, PYALLOC_IOC_ALLOC, &a);

	if (block_size)
		*block_size = a.block_size;
	return ret;
}

static inline int pya_free(int fd, const __u64 *offsets, __u32 count,
			   __u32 *error_index)
{
	struct pyalloc_free f = {
		.count = count,
		.offsets = (__u64)(uintptr_t)offsets,
		.error_index = 0xdeadbeef,
	};
	int ret = pya_ioctl(fd, PYALLOC_IOC_FREE, &f);

	if (error_index)
		*error_index = f.error_index;
	return ret;
}

/* Size class arithmetic of the contract. */
static inline __u32 pya_round(__u32 n, __u32 gran)
{
	return ((n - 1) / gran + 1) * gran;
}

static inline unsigned int pya_class(__u32 n, __u32 gran)
{
	return (n - 1) / gran;
}

/* Largest power of two dividing @bs, at most a page. */
static inline __u64 pya_align_of(__u32 bs)
{
	__u64 a = bs & -bs;

	return a > PYA_PAGE ? PYA_PAGE : a;
}

/*
 * Patterns: every 8-byte word of a block gets a value derived from the
 * block's offset, the word's index and a seed, so overlapping blocks, stale
 * data and writes landing in the wrong block are all told apart.
 */
static inline __u64 pya_word(__u64 off, __u64 i, __u64 seed)
{
	__u64 x = (off + i * 8) ^ (seed * 0x9e3779b97f4a7c15ULL);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 29;
	return x | 1;	/* never zero, so it differs from fresh memory */
}

static inline void pya_fill(void *base, __u64 off, __u32 bs, __u64 seed)
{
	volatile __u64 *p = (volatile __u64 *)((char *)base + off);
	__u32 i;

	for (i = 0; i < bs / 8; i++)
		p[i] = pya_word(off, i, seed);
}

/* True when the block at @off holds the pattern of @seed. */
static inline bool pya_check(const void *base, __u64 off, __u32 bs, __u64 seed)
{
	const volatile __u64 *p =
		(const volatile __u64 *)((const char *)base + off);
	__u32 i;

	for (i = 0; i < bs / 8; i++)
		if (p[i] != pya_word(off, i, seed))
			return false;
	return true;
}

static inline bool pya_is_zero(const void *base, __u64 off, __u64 len)
{
	const volatile unsigned char *p =
		(const volatile unsigned char *)base + off;
	__u64 i;

	for (i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Allocate or free @n blocks in batches of at most PYALLOC_MAX_BATCH. */
static inline int pya_alloc_n(int fd, __u32 size, __u64 n, __u64 *offsets)
{
	__u64 done = 0;
	int ret;

	while (done < n) {
		__u32 c = n - done > PYALLOC_MAX_BATCH ? PYALLOC_MAX_BATCH
						       : (__u32)(n - done);

		ret = pya_alloc(fd, size, c, offsets + done, NULL);
		if (ret)
			return ret;
		done += c;
	}
	return 0;
}

static inline int pya_free_n(int fd, const __u64 *offsets, __u64 n)
{
	__u64 done = 0;
	int ret;

	while (done < n) {
		__u32 c = n - done > PYALLOC_MAX_BATCH ? PYALLOC_MAX_BATCH
						       : (__u32)(n - done);

		ret = pya_free(fd, offsets + done, c, NULL);
		if (ret)
			return ret;
		done += c;
	}
	return 0;
}

/* A block and its size, for overlap checks. */
struct pya_blk {
	__u64 off;
	__u32 bs;
};

static inline int pya_blk_cmp(const void *a, const void *b)
{
	const struct pya_blk *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Sorts @b; true when no two blocks overlap. */
static inline bool pya_disjoint(struct pya_blk *b, size_t n)
{
	size_t i;

	qsort(b, n, sizeof(*b), pya_blk_cmp);
	for (i = 1; i < n; i++)
		if (b[i - 1].off + b[i - 1].bs > b[i].off)
			return false;
	return true;
}

/* Where the contract puts a block: in the window, in one pool, aligned. */
static inline bool pya_well_placed(const struct pyalloc_info *info, __u64 off,
				   __u32 bs)
{
	__u64 in_pool = off % info->pool_size;

	return off < info->window_size && in_pool % bs == 0 &&
	       in_pool + bs <= info->pool_size && off % pya_align_of(bs) == 0;
}

/* A module parameter from sysfs, or -1 when it cannot be read. */
static inline long long pya_param(const char *name)
{
	char path[256], buf[64];
	long long v = -1;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), PYALLOC_SYSFS_PARAM "%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "%lld", &v) != 1)
		return -1;
	return v;
}

/* Write a module parameter; 0 or -errno. */
static inline int pya_set_param(const char *name, long long v)
{
	char path[256], buf[64];
	int fd, len, ret = 0;

	snprintf(path, sizeof(path), PYALLOC_SYSFS_PARAM "%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(buf, sizeof(buf), "%lld\n", v);
	if (write(fd, buf, len) != len)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * Map a heap's whole window; MAP_FAILED on error.  Callers munmap it with
 * info->window_size.
 */
static inline void *pya_map(int fd, const struct pyalloc_info *info)
{
	return mmap(NULL, info->window_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
}

/*
 * Check everything struct pya_kstats promises about itself: class sizes,
 * blocks per pool, byte totals, page and arena accounting.  Returns the total
 * blocks in use.
 */
static inline __u64 __pya_check_stats(struct __test_metadata *_metadata,
				      const struct pya_kstats *st,
				      const struct pyalloc_info *info)
{
	__u64 in_use = 0, bytes_in_use = 0, bytes_free = 0, quant = 0;
	__u64 class_pools = 0;
	unsigned int i;

	EXPECT_EQ(info->granularity, st->granularity);
	EXPECT_EQ(info->num_classes, st->num_classes);
	EXPECT_EQ(info->mem_limit, st->mem_limit);
	for (i = 0; i < st->num_classes && i < PYALLOC_MAX_CLASSES; i++) {
		const struct pyalloc_class_stats *c = &st->cls[i];
		__u32 bs = (i + 1) * st->granularity;
		__u32 bpp = info->pool_size / bs;

		EXPECT_EQ(bs, c->block_size);
		EXPECT_EQ((__u64)c->pools * bpp, c->blocks_in_use + c->blocks_free)
			TH_LOG("class %u (%u bytes): %u pools, %llu used, %llu free",
			       i, bs, c->pools,
			       (unsigned long long)c->blocks_in_use,
			       (unsigned long long)c->blocks_free);
		in_use += c->blocks_in_use;
		bytes_in_use += c->blocks_in_use * bs;
		bytes_free += c->blocks_free * bs;
		quant += (__u64)c->pools * (info->pool_size % bs);
		class_pools += c->pools;
	}
	for (; i < PYALLOC_MAX_CLASSES; i++) {
		const struct pyalloc_class_stats *c = &st->cls[i];

		EXPECT_EQ(0, c->block_size);
		EXPECT_EQ(0, c->pools);
		EXPECT_EQ(0, c->blocks_in_use);
		EXPECT_EQ(0, c->blocks_free);
	}
	EXPECT_EQ(bytes_in_use, st->bytes_in_use);
	EXPECT_EQ(bytes_free, st->bytes_free);
	EXPECT_EQ(quant, st->bytes_quantization);
	EXPECT_EQ(class_pools + st->pools_empty, st->pages);
	EXPECT_GE(st->arenas_highwater, st->arenas_current);
	EXPECT_GE(st->arenas_allocated, st->arenas_highwater);
	EXPECT_EQ(st->arenas_current,
		  st->arenas_allocated - st->arenas_reclaimed);
	EXPECT_LE(st->pages, st->arenas_current * info->pools_per_arena);
	EXPECT_LE(st->pages * info->pool_size, st->mem_limit);
	EXPECT_EQ(in_use, st->blocks_allocated - st->blocks_freed);
	return in_use;
}

#define pya_check_stats(st, info) __pya_check_stats(_metadata, st, info)

/*
 * After a failed call that must allocate or free no block (EFAULT, ENOMEM),
 * every block-level number is as before.  Arena and page counters may differ
 * only if the kernel keeps an emptied arena around, which the policy allows.
 */
static inline void __pya_expect_blocks_unchanged(
	struct __test_metadata *_metadata,
	const struct pya_kstats *a, const struct pya_kstats *b)
{
	EXPECT_EQ(0, memcmp(a->cls, b->cls, sizeof(a->cls)));
	EXPECT_EQ(a->bytes_in_use, b->bytes_in_use);
	EXPECT_EQ(a->bytes_free, b->bytes_free);
	EXPECT_EQ(a->bytes_quantization, b->bytes_quantization);
	EXPECT_EQ(a->alloc_calls, b->alloc_calls);
	EXPECT_EQ(a->free_calls, b->free_calls);
	EXPECT_EQ(a->blocks_allocated, b->blocks_allocated);
	EXPECT_EQ(a->blocks_freed, b->blocks_freed);
	EXPECT_EQ(a->mem_limit, b->mem_limit);
}

#define pya_expect_blocks_unchanged(a, b) \
	__pya_expect_blocks_unchanged(_metadata, a, b)

/* After a call rejected up front (EINVAL, E2BIG, ...), nothing changed. */
#define pya_expect_stats_equal(a, b) do {				\
	EXPECT_EQ(0, memcmp((a), (b), sizeof(*(a))));			\
	EXPECT_EQ((a)->alloc_calls, (b)->alloc_calls);			\
	EXPECT_EQ((a)->free_calls, (b)->free_calls);			\
	EXPECT_EQ((a)->blocks_allocated, (b)->blocks_allocated);	\
	EXPECT_EQ((a)->pages, (b)->pages);				\
	EXPECT_EQ((a)->arenas_current, (b)->arenas_current);		\
} while (0)

/* The common fixture: one heap, its geometry and its whole window mapped. */
#define PYA_HEAP_FIXTURE(name)						\
	FIXTURE(name) {							\
		int fd;							\
		struct pyalloc_info info;				\
		char *map;						\
	};								\
	FIXTURE_SETUP(name)						\
	{								\
		self->map = MAP_FAILED;					\
		self->fd = pya_open();					\
		ASSERT_LE(0, self->fd) TH_LOG("open %s: %s",		\
					      PYALLOC_DEV,		\
					      strerror(errno));		\
		ASSERT_EQ(0, pya_info(self->fd, &self->info));		\
		self->map = pya_map(self->fd, &self->info);		\
		ASSERT_NE(MAP_FAILED, self->map) TH_LOG("mmap: %s",	\
						      strerror(errno));	\
	}								\
	FIXTURE_TEARDOWN(name)						\
	{								\
		if (self->map != MAP_FAILED)				\
			munmap(self->map, self->info.window_size);	\
		if (self->fd >= 0)					\
			close(self->fd);				\
	}

#define PYALLOC_TEST_MAIN						\
	int main(int argc, char **argv)					\
	{								\
		int i, listing = 0;					\
									\
		for (i = 1; i < argc; i++)				\
			listing |= !strcmp(argv[i], "-l") ||		\
				   !strcmp(argv[i], "-h");		\
		if (!listing && access(PYALLOC_DEV, F_OK)) {		\
			ksft_print_header();				\
			ksft_exit_skip("%s not present\n", PYALLOC_DEV);\
		}							\
		return test_harness_run(argc, argv);			\
	}

#endif /* PYALLOC_SELFTEST_UTIL_H */
