// SPDX-License-Identifier: GPL-2.0
/*
 * The ioctl ABI itself: extensible struct sizes (smaller than the first
 * version -> ENOTTY, not one of our commands; larger with non-zero unknown
 * bytes -> E2BIG, larger with
 * zero unknown bytes -> accepted), unknown commands (ENOTTY) and bad argument
 * pointers (EFAULT).  The sized commands are built with _IOC() from the real
 * command's direction and number, only the size differs.
 */
#include "pyalloc_util.h"

#include <pthread.h>
#include <sched.h>

PYA_HEAP_FIXTURE(heap)

/* The real command @cmd with its size field replaced by @size. */
static unsigned long resize_cmd(unsigned long cmd, unsigned int size)
{
	return _IOC(_IOC_DIR(cmd), _IOC_TYPE(cmd), _IOC_NR(cmd), size);
}

/* Room for any struct version: the ioctl size field holds up to 16383. */
#define BIG	4096
#define TRAIL	8	/* bytes a "newer" struct has beyond the kernel's */

TEST(struct_sizes_match_ver0)
{
	EXPECT_EQ(PYALLOC_INFO_SIZE_VER0, sizeof(struct pyalloc_info));
	EXPECT_EQ(PYALLOC_CONFIG_SIZE_VER0, sizeof(struct pyalloc_config));
	EXPECT_EQ(PYALLOC_ALLOC_SIZE_VER0, sizeof(struct pyalloc_alloc));
	EXPECT_EQ(PYALLOC_FREE_SIZE_VER0, sizeof(struct pyalloc_free));
	EXPECT_EQ(PYALLOC_STATS_SIZE_VER0, sizeof(struct pyalloc_stats));
	EXPECT_EQ(PYALLOC_TRIM_SIZE_VER0, sizeof(struct pyalloc_trim));
	EXPECT_EQ(24, sizeof(struct pyalloc_class_stats));
	EXPECT_EQ(sizeof(struct pyalloc_info), _IOC_SIZE(PYALLOC_IOC_INFO));
	EXPECT_EQ(sizeof(struct pyalloc_stats), _IOC_SIZE(PYALLOC_IOC_STATS));
	/* ABI 2: a magic of our own ('Y'), not nsfs's and remoteproc's. */
	EXPECT_EQ('Y', _IOC_TYPE(PYALLOC_IOC_INFO));
	EXPECT_EQ(2, PYALLOC_ABI_VERSION);
}

/*
 * Commands of the drivers that share ABI 1's magic 0xB7 (nsfs, remoteproc)
 * are not ours: ENOTTY, whatever their number and direction.
 */
TEST_F(heap, foreign_magic_enotty)
{
	unsigned char buf[BIG];
	unsigned int nr;

	for (nr = 0; nr < 8; nr++) {
		memset(buf, 0, sizeof(buf));
		EXPECT_EQ(-ENOTTY, pya_ioctl(self->fd, _IOWR(0xB7, nr, int),
					     buf));
		EXPECT_EQ(-ENOTTY, pya_ioctl(self->fd, _IO(0xB7, nr), buf));
		EXPECT_EQ(-ENOTTY, pya_ioctl(self->fd,
			_IOC(_IOC_DIR(PYALLOC_IOC_ALLOC), 0xB7, nr,
			     sizeof(struct pyalloc_alloc)), buf));
	}
}

TEST_F(heap, unknown_command_enotty)
{
	static const unsigned long cmds[] = {
		_IOWR(PYALLOC_IOC_MAGIC, 0x06, struct pyalloc_alloc),
		_IOR(PYALLOC_IOC_MAGIC, 0x06, struct pyalloc_info),
		_IO(PYALLOC_IOC_MAGIC, 0x06),
		/* TRIM's number in the wrong direction. */
		_IOR(PYALLOC_IOC_MAGIC, 0x05, struct pyalloc_trim),
		_IOWR(PYALLOC_IOC_MAGIC, 0x7f, __u64),
		_IOWR(PYALLOC_IOC_MAGIC, 0xff, struct pya_kstats),
		/* A real number under another magic. */
		_IOR(PYALLOC_IOC_MAGIC + 1, 0x00, struct pyalloc_info),
		_IOWR('A', 0x02, struct pyalloc_alloc),
		0,
	};
	struct pya_kstats s0, s1;
	unsigned char buf[BIG];
	unsigned int n;

	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	for (n = 0; n < sizeof(cmds) / sizeof(cmds[0]); n++) {
		memset(buf, 0, sizeof(buf));
		EXPECT_EQ(-ENOTTY, pya_ioctl(self->fd, cmds[n], buf))
			TH_LOG("cmd %#lx", cmds[n]);
	}
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
}

/* ---- INFO and STATS: output structs ---- */

TEST_F(heap, info_smaller_than_ver0_enotty)
{
	unsigned char buf[BIG];

	memset(buf, 0xa5, sizeof(buf));
	EXPECT_EQ(-ENOTTY, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_INFO,
				PYALLOC_INFO_SIZE_VER0 - 8), buf));
	EXPECT_EQ(-ENOTTY, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_INFO, 0),
				     buf));
	/* Nothing was written. */
	EXPECT_EQ(0xa5, buf[0]);
}

TEST_F(heap, info_larger_accepted)
{
	unsigned char buf[BIG];
	unsigned int n;

	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(0, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_INFO,
			       sizeof(struct pyalloc_info) + TRAIL), buf));
	EXPECT_EQ(0, memcmp(buf, &self->info, sizeof(self->info)));
	/* Nothing but zeroes beyond the fields the kernel knows. */
	for (n = sizeof(struct pyalloc_info); n < sizeof(buf); n++) {
		ASSERT_EQ(0, buf[n]) TH_LOG("byte %u", n);
	}
}

TEST_F(heap, stats_smaller_than_ver0_enotty)
{
	unsigned char buf[BIG] = { 0 };

	EXPECT_EQ(-ENOTTY, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_STATS,
				PYALLOC_STATS_SIZE_VER0 - 8), buf));
}

/* A newer, larger struct: totals only (no class pointer), zeroes beyond. */
TEST_F(heap, stats_larger_accepted)
{
	unsigned char buf[BIG];
	struct pya_kstats st;
	unsigned int n;
	__u64 off[3];

	ASSERT_EQ(0, pya_alloc(self->fd, 100, 3, off, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	st.classes_count = 0;
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(0, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_STATS,
			       sizeof(struct pyalloc_stats) + TRAIL), buf));
	EXPECT_EQ(0, memcmp(buf, &st, sizeof(struct pyalloc_stats)));
	for (n = sizeof(struct pyalloc_stats); n < sizeof(buf); n++) {
		ASSERT_EQ(0, buf[n]) TH_LOG("byte %u", n);
	}
}

/*
 * The class table goes through a pointer and a count: fewer entries than
 * classes are written as asked and no more; a count without a pointer is
 * EFAULT; an unwritable table is EFAULT.
 */
TEST_F(heap, stats_class_table_pointer)
{
	struct pyalloc_class_stats cls[PYALLOC_MAX_CLASSES + 2];
	struct pyalloc_stats st;
	struct pya_kstats full;
	__u64 off[3];
	void *ro;

	ASSERT_EQ(0, pya_alloc(self->fd, 100, 3, off, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &full));
	EXPECT_EQ(64, full.classes_count);
	memset(cls, 0xee, sizeof(cls));
	memset(&st, 0, sizeof(st));
	st.classes = (__u64)(uintptr_t)cls;
	st.classes_count = 13;
	ASSERT_EQ(0, pya_ioctl(self->fd, PYALLOC_IOC_STATS, &st));
	EXPECT_EQ(13, st.classes_count);
	EXPECT_EQ((__u64)(uintptr_t)cls, st.classes);
	EXPECT_EQ(0, memcmp(cls, full.cls, 13 * sizeof(cls[0])));
	EXPECT_EQ(0xee, ((unsigned char *)&cls[13])[0]);
	/* More room than classes: num_classes entries written. */
	memset(cls, 0xee, sizeof(cls));
	st.classes = (__u64)(uintptr_t)cls;
	st.classes_count = PYALLOC_MAX_CLASSES + 2;
	ASSERT_EQ(0, pya_ioctl(self->fd, PYALLOC_IOC_STATS, &st));
	EXPECT_EQ(64, st.classes_count);
	EXPECT_EQ(0, memcmp(cls, full.cls, 64 * sizeof(cls[0])));
	EXPECT_EQ(0xee, ((unsigned char *)&cls[64])[0]);
	/* A count and no table. */
	st.classes = 0;
	st.classes_count = 1;
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_STATS, &st));
	/* A read-only table. */
	ro = mmap(NULL, PYA_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	st.classes = (__u64)(uintptr_t)ro;
	st.classes_count = 4;
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_STATS, &st));
	munmap(ro, PYA_PAGE);
}

/* ---- CONFIG: input struct ---- */

TEST_F(heap, config_smaller_than_ver0_enotty)
{
	struct pyalloc_config c = { .flags = PYALLOC_CONFIG_GRANULARITY,
				    .granularity = 16 };
	struct pyalloc_info info;

	EXPECT_EQ(-ENOTTY, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_CONFIG,
				PYALLOC_CONFIG_SIZE_VER0 - 8), &c));
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(8, info.granularity);
}

TEST_F(heap, config_larger_nonzero_tail_e2big)
{
	unsigned char buf[BIG] = { 0 };
	struct pyalloc_config c = { .flags = PYALLOC_CONFIG_GRANULARITY |
				    PYALLOC_CONFIG_MEM_LIMIT,
				    .granularity = 16,
				    .mem_limit = self->info.mem_limit / 2 };
	struct pyalloc_info info;
	unsigned int pos;

	/* Each trailing byte on its own, including the last one. */
	for (pos = sizeof(c); pos < sizeof(c) + TRAIL; pos++) {
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &c, sizeof(c));
		buf[pos] = 1;
		EXPECT_EQ(-E2BIG, pya_ioctl(self->fd,
				resize_cmd(PYALLOC_IOC_CONFIG, sizeof(c) + TRAIL),
				buf)) TH_LOG("non-zero byte %u", pos);
	}
	/* A far larger struct with its very last byte set. */
	memset(buf, 0, sizeof(buf));
	memcpy(buf, &c, sizeof(c));
	buf[sizeof(buf) - 1] = 0x80;
	EXPECT_EQ(-E2BIG, pya_ioctl(self->fd,
			resize_cmd(PYALLOC_IOC_CONFIG, sizeof(buf)), buf));
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(0, memcmp(&self->info, &info, sizeof(info)));
}

TEST_F(heap, config_larger_zero_tail_accepted)
{
	unsigned char buf[BIG] = { 0 };
	struct pyalloc_config c = { .flags = PYALLOC_CONFIG_GRANULARITY |
				    PYALLOC_CONFIG_MEM_LIMIT,
				    .granularity = 16,
				    .mem_limit = self->info.mem_limit / 2 };
	struct pyalloc_info info;

	memcpy(buf, &c, sizeof(c));
	ASSERT_EQ(0, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_CONFIG,
			       sizeof(c) + TRAIL), buf));
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(16, info.granularity);
	EXPECT_EQ(self->info.mem_limit / 2, info.mem_limit);
	/* And the largest size the ioctl number can describe here. */
	c.mem_limit /= 2;
	memcpy(buf, &c, sizeof(c));
	ASSERT_EQ(0, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_CONFIG,
			       sizeof(buf)), buf));
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(self->info.mem_limit / 4, info.mem_limit);
}

/* The unknown tail runs into a PROT_NONE page: EFAULT, nothing applied. */
TEST_F(heap, config_tail_unreadable_efault)
{
	struct pyalloc_config c = { .flags = PYALLOC_CONFIG_MEM_LIMIT,
				    .mem_limit = self->info.mem_limit / 2 };
	struct pyalloc_info info;
	unsigned char *pg;

	pg = mmap(NULL, 2 * PYA_PAGE, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, pg);
	ASSERT_EQ(0, mprotect(pg + PYA_PAGE, PYA_PAGE, PROT_NONE));
	memcpy(pg + PYA_PAGE - sizeof(c), &c, sizeof(c));
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_CONFIG,
				sizeof(c) + TRAIL), pg + PYA_PAGE - sizeof(c)));
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(self->info.mem_limit, info.mem_limit);
	munmap(pg, 2 * PYA_PAGE);
}

/* ---- ALLOC ---- */

TEST_F(heap, alloc_smaller_than_ver0_enotty)
{
	struct pya_kstats s0, s1;
	__u64 off[2];
	struct pyalloc_alloc a = { .size = 8, .count = 2,
				   .offsets = (__u64)(uintptr_t)off };

	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	EXPECT_EQ(-ENOTTY, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_ALLOC,
				PYALLOC_ALLOC_SIZE_VER0 - 8), &a));
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
}

TEST_F(heap, alloc_larger_nonzero_tail_e2big)
{
	unsigned char buf[BIG] = { 0 };
	struct pya_kstats s0, s1;
	__u64 off[2];
	struct pyalloc_alloc a = { .size = 8, .count = 2,
				   .offsets = (__u64)(uintptr_t)off };
	unsigned int pos;

	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	for (pos = sizeof(a); pos < sizeof(a) + TRAIL; pos++) {
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &a, sizeof(a));
		buf[pos] = 0xff;
		EXPECT_EQ(-E2BIG, pya_ioctl(self->fd,
				resize_cmd(PYALLOC_IOC_ALLOC, sizeof(a) + TRAIL),
				buf)) TH_LOG("non-zero byte %u", pos);
	}
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
}

TEST_F(heap, alloc_larger_zero_tail_accepted)
{
	unsigned char buf[BIG] = { 0 };
	struct pya_kstats st;
	__u64 off[2] = { ~0ULL, ~0ULL };
	struct pyalloc_alloc a = { .size = 42, .count = 2,
				   .offsets = (__u64)(uintptr_t)off };

	memcpy(buf, &a, sizeof(a));
	ASSERT_EQ(0, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_ALLOC,
			       sizeof(a) + TRAIL), buf));
	memcpy(&a, buf, sizeof(a));
	EXPECT_EQ(48, a.block_size);
	EXPECT_NE(off[0], off[1]);
	EXPECT_LT(off[0], self->info.window_size);
	EXPECT_LT(off[1], self->info.window_size);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(2, st.cls[5].blocks_in_use);
	/* The blocks are real: they free. */
	EXPECT_EQ(0, pya_free(self->fd, off, 2, NULL));
}

/* The kernel writes block_size back: a read-only argument is EFAULT. */
TEST_F(heap, alloc_arg_read_only_efault)
{
	struct pya_kstats s0, s1;
	struct pyalloc_alloc *a;
	__u64 off[4];

	a = mmap(NULL, PYA_PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, a);
	a->size = 64;
	a->count = 4;
	a->offsets = (__u64)(uintptr_t)off;
	ASSERT_EQ(0, mprotect(a, PYA_PAGE, PROT_READ));
	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_ALLOC, a));
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_blocks_unchanged(&s0, &s1);
	pya_check_stats(&s1, &self->info);
	munmap(a, PYA_PAGE);
}

/* ---- FREE ---- */

TEST_F(heap, free_smaller_than_ver0_enotty)
{
	struct pya_kstats s0, s1;
	__u64 off[2];
	struct pyalloc_free f = { .count = 2,
				  .offsets = (__u64)(uintptr_t)off };

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 2, off, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	EXPECT_EQ(-ENOTTY, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_FREE,
				PYALLOC_FREE_SIZE_VER0 - 8), &f));
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
}

TEST_F(heap, free_larger_nonzero_tail_e2big)
{
	unsigned char buf[BIG] = { 0 };
	struct pya_kstats s0, s1;
	__u64 off[2];
	struct pyalloc_free f = { .count = 2,
				  .offsets = (__u64)(uintptr_t)off };
	unsigned int pos;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 2, off, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	for (pos = sizeof(f); pos < sizeof(f) + TRAIL; pos++) {
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &f, sizeof(f));
		buf[pos] = 0x01;
		EXPECT_EQ(-E2BIG, pya_ioctl(self->fd,
				resize_cmd(PYALLOC_IOC_FREE, sizeof(f) + TRAIL),
				buf)) TH_LOG("non-zero byte %u", pos);
	}
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
	/* Still allocated. */
	EXPECT_EQ(0, pya_free(self->fd, off, 2, NULL));
}

TEST_F(heap, free_larger_zero_tail_accepted)
{
	unsigned char buf[BIG] = { 0 };
	struct pya_kstats st;
	__u64 off[2];
	struct pyalloc_free f = { .count = 2,
				  .offsets = (__u64)(uintptr_t)off };

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 2, off, NULL));
	memcpy(buf, &f, sizeof(f));
	ASSERT_EQ(0, pya_ioctl(self->fd, resize_cmd(PYALLOC_IOC_FREE,
			       sizeof(f) + TRAIL), buf));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(0, st.cls[0].blocks_in_use);
	EXPECT_EQ(2, st.blocks_freed);
}

/* ---- the argument pointer itself ---- */

TEST_F(heap, null_argument_efault)
{
	static const unsigned long cmds[] = {
		PYALLOC_IOC_INFO, PYALLOC_IOC_CONFIG, PYALLOC_IOC_ALLOC,
		PYALLOC_IOC_FREE, PYALLOC_IOC_STATS,
	};
	struct pya_kstats s0, s1;
	unsigned int n;

	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	for (n = 0; n < sizeof(cmds) / sizeof(cmds[0]); n++) {
		EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, cmds[n], NULL))
			TH_LOG("cmd %#lx", cmds[n]);
	}
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
}

TEST_F(heap, prot_none_argument_efault)
{
	static const unsigned long cmds[] = {
		PYALLOC_IOC_INFO, PYALLOC_IOC_CONFIG, PYALLOC_IOC_ALLOC,
		PYALLOC_IOC_FREE, PYALLOC_IOC_STATS,
	};
	struct pya_kstats s0, s1;
	unsigned int n;
	void *pg;

	pg = mmap(NULL, PYA_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		  -1, 0);
	ASSERT_NE(MAP_FAILED, pg);
	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	for (n = 0; n < sizeof(cmds) / sizeof(cmds[0]); n++) {
		EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, cmds[n], pg))
			TH_LOG("cmd %#lx", cmds[n]);
	}
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
	munmap(pg, PYA_PAGE);
}

/* INFO and STATS write their whole struct: a read-only buffer is EFAULT. */
TEST_F(heap, read_only_output_efault)
{
	void *pg;

	pg = mmap(NULL, 2 * PYA_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		  -1, 0);
	ASSERT_NE(MAP_FAILED, pg);
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_INFO, pg));
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_STATS, pg));
	munmap(pg, 2 * PYA_PAGE);
}

/*
 * Arguments inside the heap's own window.  Backed by a live pool (the page
 * not yet faulted in): every command works, so the kernel takes that page
 * fault while serving the ioctl without deadlocking on its own lock.  In an
 * unbacked part of the window: EFAULT, and no SIGBUS for the caller.
 */
TEST_F(heap, arguments_in_own_window)
{
	struct pyalloc_stats *st;
	struct pya_kstats ref;
	struct pyalloc_info *info;
	struct pyalloc_alloc *a;
	__u64 pool[8], base, *out;
	unsigned int n;
	char *page;

	/* A whole pool of 512-byte blocks is one page of our own. */
	ASSERT_EQ(0, pya_alloc(self->fd, 512, 8, pool, NULL));
	base = pool[0];
	for (n = 1; n < 8; n++)
		base = pool[n] < base ? pool[n] : base;
	ASSERT_EQ(0, base % PYA_PAGE);
	page = self->map + base;
	info = (struct pyalloc_info *)page;
	ASSERT_EQ(0, pya_ioctl(self->fd, PYALLOC_IOC_INFO, info));
	EXPECT_EQ(0, memcmp(info, &self->info, sizeof(*info)));
	ASSERT_EQ(0, pya_stats(self->fd, &ref));
	st = (struct pyalloc_stats *)page;
	memset(st, 0, sizeof(*st));
	ASSERT_EQ(0, pya_ioctl(self->fd, PYALLOC_IOC_STATS, st));
	ref.classes_count = 0;
	EXPECT_EQ(0, memcmp(st, &ref, sizeof(*st)));
	/* An ALLOC request and its offsets array living in the window. */
	a = (struct pyalloc_alloc *)page;
	out = (__u64 *)(page + 64);
	memset(page, 0, 128);
	a->size = 8;
	a->count = 4;
	a->offsets = (__u64)(uintptr_t)out;
	ASSERT_EQ(0, pya_ioctl(self->fd, PYALLOC_IOC_ALLOC, a));
	EXPECT_EQ(8, a->block_size);
	EXPECT_EQ(0, pya_free(self->fd, out, 4, NULL));
}

TEST_F(heap, arguments_in_unbacked_window_efault)
{
	/* The last page of the window: no arena there. */
	char *hole = self->map + self->info.window_size - PYA_PAGE;
	struct pya_kstats s0, s1;
	__u64 offs[4];

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 4, offs, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_INFO, hole));
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_STATS, hole));
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_CONFIG, hole));
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_ALLOC, hole));
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_FREE, hole));
	/* Offsets arrays there: nothing allocated, nothing freed. */
	EXPECT_EQ(-EFAULT, pya_alloc(self->fd, 8, 4, (__u64 *)hole, NULL));
	EXPECT_EQ(-EFAULT, pya_free(self->fd, (__u64 *)hole, 4, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_blocks_unchanged(&s0, &s1);
	EXPECT_EQ(0, pya_free(self->fd, offs, 4, NULL));
}

/*
 * ALLOC's offsets array in a page a sibling thread keeps dropping
 * (MADV_DONTNEED, as under memory pressure): the kernel faults the buffer
 * in and tries again, and when it is dropped again delivers the offsets
 * with the heap lock dropped and page faults allowed, so every call
 * succeeds, and soon (this lost the race for minutes under QEMU when the
 * kernel retried for as long as faulting in succeeded); EFAULT is only for
 * a buffer that cannot be written at all.
 */
struct dropper {
	void *page;
	volatile int stop;
	unsigned long drops;
};

static void *drop_loop(void *arg)
{
	struct dropper *d = arg;

	while (!d->stop) {
		madvise(d->page, PYA_PAGE, MADV_DONTNEED);
		__atomic_fetch_add(&d->drops, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

TEST_F(heap, alloc_retries_while_the_buffer_is_dropped)
{
	struct dropper d = { 0 };
	unsigned int i, failed = 0;
	unsigned long d0;
	struct pya_kstats st;
	pthread_t t;
	__u64 *out;

	d.page = mmap(NULL, PYA_PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, d.page);
	out = d.page;
	ASSERT_EQ(0, pthread_create(&t, NULL, drop_loop, &d));
	/*
	 * Start once the sibling runs, and go on past 2000 calls until it has
	 * dropped the buffer during them: on a loaded host its vCPU may be
	 * held off for the whole loop, and then the test would prove nothing.
	 */
	while (!(d0 = __atomic_load_n(&d.drops, __ATOMIC_RELAXED)))
		sched_yield();
	for (i = 0; i < 2000 ||
		    __atomic_load_n(&d.drops, __ATOMIC_RELAXED) == d0; i++) {
		int ret = pya_alloc(self->fd, 64, 64, out, NULL);

		if (ret) {
			failed++;
			continue;
		}
		/* The offsets may be dropped again before we read them. */
		ASSERT_EQ(0, pya_stats(self->fd, &st));
	}
	d.stop = 1;
	pthread_join(t, NULL);
	EXPECT_EQ(0, failed);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(i * 64ULL, st.blocks_allocated);
	munmap(d.page, PYA_PAGE);
}

/*
 * The buffer made read-only and writable again by a sibling thread: each
 * call succeeds or fails with EFAULT, and a failed call leaves no block
 * allocated, also when the buffer turned read-only after the kernel had
 * faulted it in and dropped the heap lock to deliver (ioctl.c's slow
 * path then frees that batch).
 */
struct protector {
	void *page;
	volatile int stop;
	unsigned long flips;
};

static void *protect_loop(void *arg)
{
	struct protector *p = arg;

	while (!p->stop) {
		mprotect(p->page, PYA_PAGE, PROT_READ);
		madvise(p->page, PYA_PAGE, MADV_DONTNEED);
		mprotect(p->page, PYA_PAGE, PROT_READ | PROT_WRITE);
		__atomic_fetch_add(&p->flips, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

TEST_F(heap, alloc_fails_whole_while_the_buffer_turns_read_only)
{
	struct protector p = { 0 };
	unsigned int i, ok = 0, failed = 0;
	unsigned long f0;
	struct pya_kstats st;
	pthread_t t;

	p.page = mmap(NULL, PYA_PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, p.page);
	ASSERT_EQ(0, pthread_create(&t, NULL, protect_loop, &p));
	/* As above: the calls overlap the sibling's flips, whatever the host. */
	while (!(f0 = __atomic_load_n(&p.flips, __ATOMIC_RELAXED)))
		sched_yield();
	for (i = 0; i < 1000 ||
		    __atomic_load_n(&p.flips, __ATOMIC_RELAXED) == f0; i++) {
		int ret = pya_alloc(self->fd, 64, 64, p.page, NULL);

		if (!ret) {
			ok++;
			continue;
		}
		failed++;
		if (ret != -EFAULT)
			break;
	}
	p.stop = 1;
	pthread_join(t, NULL);
	TH_LOG("%u calls succeeded, %u failed, %lu flips", ok, failed, p.flips);
	/* Every call succeeded or failed with EFAULT (no break). */
	EXPECT_EQ(i, ok + failed);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	/* A batch given back counts as allocated and freed. */
	EXPECT_LE(ok, st.alloc_calls);
	EXPECT_EQ(ok * 64ULL, st.blocks_allocated - st.blocks_freed);
	EXPECT_EQ(ok * 64ULL, pya_check_stats(&st, &self->info));
	munmap(p.page, PYA_PAGE);
}

PYALLOC_TEST_MAIN
