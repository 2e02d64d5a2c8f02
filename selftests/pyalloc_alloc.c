// SPDX-License-Identifier: GPL-2.0
/*
 * PYALLOC_IOC_ALLOC: size classes, block placement and alignment, data
 * written and read back through the mapping, fresh memory reading as zero,
 * and every rejection (EINVAL for bad size/count/flags, EFAULT for a bad
 * offsets array) leaving the heap as it was.  Each test runs at granularity
 * 8 (64 classes) and 16 (32 classes).
 */
#include "pyalloc_util.h"

FIXTURE(alloc) {
	int fd;
	struct pyalloc_info info;
	char *map;
	__u32 gran;
};

FIXTURE_VARIANT(alloc) {
	__u32 granularity;
};

FIXTURE_VARIANT_ADD(alloc, gran8) {
	.granularity = 8,
};

FIXTURE_VARIANT_ADD(alloc, gran16) {
	.granularity = 16,
};

FIXTURE_SETUP(alloc)
{
	self->map = MAP_FAILED;
	self->fd = pya_open();
	ASSERT_LE(0, self->fd);
	if (variant->granularity != 8) {
		ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_GRANULARITY,
					variant->granularity, 0));
	}
	ASSERT_EQ(0, pya_info(self->fd, &self->info));
	ASSERT_EQ(variant->granularity, self->info.granularity);
	ASSERT_EQ(512 / variant->granularity, self->info.num_classes);
	self->gran = variant->granularity;
	self->map = pya_map(self->fd, &self->info);
	ASSERT_NE(MAP_FAILED, self->map);
}

FIXTURE_TEARDOWN(alloc)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, self->info.window_size);
	close(self->fd);
}

/* A rejected ALLOC: errno as expected, nothing changed at all. */
static void expect_alloc_rejected(struct __test_metadata *_metadata, int fd,
				  struct pyalloc_alloc *a, int err)
{
	struct pya_kstats s0, s1;

	ASSERT_EQ(0, pya_stats(fd, &s0));
	EXPECT_EQ(-err, pya_ioctl(fd, PYALLOC_IOC_ALLOC, a))
		TH_LOG("size %u count %u flags %#x", a->size, a->count,
		       a->flags);
	ASSERT_EQ(0, pya_stats(fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
}

/* The seed's examples and the class boundaries. */
TEST_F(alloc, seed_examples)
{
	static const __u32 sizes[] = { 1, 6, 8, 9, 16, 17, 42, 48, 49,
				       255, 256, 257, 504, 505, 511, 512 };
	unsigned int n;

	for (n = 0; n < sizeof(sizes) / sizeof(sizes[0]); n++) {
		__u32 sz = sizes[n], bs = 0;
		struct pya_kstats st;
		__u64 off;

		ASSERT_EQ(0, pya_alloc(self->fd, sz, 1, &off, &bs));
		EXPECT_EQ(pya_round(sz, self->gran), bs) TH_LOG("size %u", sz);
		ASSERT_EQ(0, pya_stats(self->fd, &st));
		EXPECT_EQ(1, st.cls[pya_class(sz, self->gran)].blocks_in_use)
			TH_LOG("size %u", sz);
		ASSERT_EQ(0, pya_free(self->fd, &off, 1, NULL));
	}
	if (self->gran == 8) {
		/* 6 -> 8 (class 0), 42 -> 48 (class 5), 512 -> class 63. */
		EXPECT_EQ(8, pya_round(6, 8));
		EXPECT_EQ(0, pya_class(6, 8));
		EXPECT_EQ(48, pya_round(42, 8));
		EXPECT_EQ(5, pya_class(42, 8));
		EXPECT_EQ(63, pya_class(512, 8));
	}
}

/*
 * Every request size 1..512 at once: the right block size, a well-placed
 * offset, no two blocks overlapping, and per-class counts of exactly
 * granularity blocks (each class serves granularity request sizes).
 */
TEST_F(alloc, every_size_class_and_alignment)
{
	static struct pya_blk blk[PYALLOC_MAX_REQUEST];
	static __u64 offs[PYALLOC_MAX_REQUEST];
	struct pya_kstats st;
	unsigned int c;
	__u32 n;

	for (n = 1; n <= PYALLOC_MAX_REQUEST; n++) {
		__u32 bs = 0;
		__u64 off;

		ASSERT_EQ(0, pya_alloc(self->fd, n, 1, &off, &bs))
			TH_LOG("size %u", n);
		ASSERT_EQ(pya_round(n, self->gran), bs) TH_LOG("size %u", n);
		EXPECT_TRUE(pya_well_placed(&self->info, off, bs))
			TH_LOG("size %u: offset %#llx", n,
			       (unsigned long long)off);
		EXPECT_EQ(0, off % pya_align_of(bs));
		offs[n - 1] = off;
		blk[n - 1].off = off;
		blk[n - 1].bs = bs;
	}
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	for (c = 0; c < self->info.num_classes; c++) {
		EXPECT_EQ(self->gran, st.cls[c].blocks_in_use)
			TH_LOG("class %u", c);
	}
	EXPECT_EQ(PYALLOC_MAX_REQUEST, pya_check_stats(&st, &self->info));
	EXPECT_TRUE(pya_disjoint(blk, PYALLOC_MAX_REQUEST));
	/* All 512 in one batch of PYALLOC_MAX_BATCH. */
	ASSERT_EQ(0, pya_free(self->fd, offs, PYALLOC_MAX_REQUEST, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(0, pya_check_stats(&st, &self->info));
}

/*
 * One class at a time in an otherwise empty heap: a pool's worth plus one
 * block fills exactly one pool (4096 / block_size blocks, no header) and
 * starts a second; every block lies inside its pool at a multiple of the
 * block size; patterns written to all of them read back intact.
 */
TEST_F(alloc, pool_layout_every_class)
{
	static __u64 offs[PYA_PAGE / 8 + 1];
	static struct pya_blk blk[PYA_PAGE / 8 + 1];
	unsigned int c;

	for (c = 0; c < self->info.num_classes; c++) {
		__u32 bs = (c + 1) * self->gran;
		__u32 bpp = self->info.pool_size / bs, n;
		__u64 pool0, pool1 = ~0ULL;
		unsigned int in0 = 0, in1 = 0;
		struct pya_kstats st;

		ASSERT_EQ(0, pya_alloc_n(self->fd, bs, bpp + 1, offs));
		pool0 = offs[0] & ~(__u64)(self->info.pool_size - 1);
		for (n = 0; n <= bpp; n++) {
			__u64 pool = offs[n] & ~(__u64)(self->info.pool_size - 1);

			ASSERT_TRUE(pya_well_placed(&self->info, offs[n], bs))
				TH_LOG("class %u offset %#llx", c,
				       (unsigned long long)offs[n]);
			if (pool == pool0) {
				in0++;
			} else {
				if (pool1 == ~0ULL)
					pool1 = pool;
				ASSERT_EQ(pool1, pool)
					TH_LOG("class %u: a third pool", c);
				in1++;
			}
			blk[n].off = offs[n];
			blk[n].bs = bs;
			pya_fill(self->map, offs[n], bs, c);
		}
		EXPECT_TRUE((in0 == bpp && in1 == 1) || (in0 == 1 && in1 == bpp))
			TH_LOG("class %u: %u and %u blocks in the two pools",
			       c, in0, in1);
		ASSERT_TRUE(pya_disjoint(blk, bpp + 1)) TH_LOG("class %u", c);
		for (n = 0; n <= bpp; n++) {
			ASSERT_TRUE(pya_check(self->map, blk[n].off, bs, c))
				TH_LOG("class %u offset %#llx", c,
				       (unsigned long long)blk[n].off);
		}
		ASSERT_EQ(0, pya_stats(self->fd, &st));
		EXPECT_EQ(2, st.cls[c].pools) TH_LOG("class %u", c);
		EXPECT_EQ(bpp + 1, st.cls[c].blocks_in_use);
		EXPECT_EQ(bpp - 1, st.cls[c].blocks_free);
		EXPECT_EQ(bpp + 1, pya_check_stats(&st, &self->info));
		ASSERT_EQ(0, pya_free_n(self->fd, offs, bpp + 1));
	}
}

/* Blocks of fresh pages read as zero, whatever the class. */
TEST_F(alloc, fresh_blocks_read_zero)
{
	static __u64 offs[PYALLOC_MAX_BATCH];
	unsigned int c, n;

	for (c = 0; c < self->info.num_classes; c++) {
		__u32 bs = (c + 1) * self->gran;
		__u32 cnt = self->info.pool_size / bs;

		if (cnt > 64)
			cnt = 64;
		ASSERT_EQ(0, pya_alloc(self->fd, bs, cnt, offs, NULL));
		for (n = 0; n < cnt; n++) {
			ASSERT_TRUE(pya_is_zero(self->map, offs[n], bs))
				TH_LOG("class %u offset %#llx", c,
				       (unsigned long long)offs[n]);
		}
	}
}

/*
 * A mix of sizes in one heap, patterned after all are allocated (so any
 * overlap between blocks of different classes shows), read back through the
 * first mapping and a second, independent mapping of the same heap.
 */
TEST_F(alloc, patterns_mixed_classes_two_mappings)
{
	enum { PER = 40 };
	static __u64 offs[PYALLOC_MAX_CLASSES][PER];
	unsigned int c, n, nc = self->info.num_classes;
	char *map2;

	for (c = 0; c < nc; c++) {
		ASSERT_EQ(0, pya_alloc(self->fd, (c + 1) * self->gran - 1,
				       PER, offs[c], NULL));
	}
	for (c = 0; c < nc; c++)
		for (n = 0; n < PER; n++)
			pya_fill(self->map, offs[c][n], (c + 1) * self->gran,
				 1000 + c);
	map2 = pya_map(self->fd, &self->info);
	ASSERT_NE(MAP_FAILED, map2);
	for (c = 0; c < nc; c++)
		for (n = 0; n < PER; n++) {
			ASSERT_TRUE(pya_check(self->map, offs[c][n],
					      (c + 1) * self->gran, 1000 + c));
			ASSERT_TRUE(pya_check(map2, offs[c][n],
					      (c + 1) * self->gran, 1000 + c));
		}
	/* Writes through the second mapping show in the first. */
	pya_fill(map2, offs[0][0], self->gran, 77);
	EXPECT_TRUE(pya_check(self->map, offs[0][0], self->gran, 77));
	munmap(map2, self->info.window_size);
}

TEST_F(alloc, max_batch_accepted)
{
	static __u64 offs[PYALLOC_MAX_BATCH];
	struct pya_kstats st;
	__u32 bs = 0;

	ASSERT_EQ(0, pya_alloc(self->fd, 100, PYALLOC_MAX_BATCH, offs, &bs));
	EXPECT_EQ(pya_round(100, self->gran), bs);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(PYALLOC_MAX_BATCH,
		  st.cls[pya_class(100, self->gran)].blocks_in_use);
	EXPECT_EQ(1, st.alloc_calls);
	EXPECT_EQ(PYALLOC_MAX_BATCH, st.blocks_allocated);
	pya_check_stats(&st, &self->info);
}

TEST_F(alloc, count_zero_einval)
{
	__u64 offs[1];
	struct pyalloc_alloc a = { .size = 8, .count = 0,
				   .offsets = (__u64)(uintptr_t)offs };

	expect_alloc_rejected(_metadata, self->fd, &a, EINVAL);
}

TEST_F(alloc, count_above_max_batch_einval)
{
	static __u64 offs[PYALLOC_MAX_BATCH + 1];
	struct pyalloc_alloc a = { .size = 8,
				   .count = PYALLOC_MAX_BATCH + 1,
				   .offsets = (__u64)(uintptr_t)offs };

	expect_alloc_rejected(_metadata, self->fd, &a, EINVAL);
	a.count = 0xffffffff;
	expect_alloc_rejected(_metadata, self->fd, &a, EINVAL);
}

TEST_F(alloc, size_zero_einval)
{
	__u64 offs[4];
	struct pyalloc_alloc a = { .size = 0, .count = 4,
				   .offsets = (__u64)(uintptr_t)offs };

	expect_alloc_rejected(_metadata, self->fd, &a, EINVAL);
}

TEST_F(alloc, size_too_large_einval)
{
	static const __u32 sizes[] = { 513, 520, 4096, 0x80000000, 0xffffffff };
	__u64 offs[4];
	unsigned int n;

	for (n = 0; n < sizeof(sizes) / sizeof(sizes[0]); n++) {
		struct pyalloc_alloc a = { .size = sizes[n], .count = 4,
					   .offsets = (__u64)(uintptr_t)offs };

		expect_alloc_rejected(_metadata, self->fd, &a, EINVAL);
	}
}

TEST_F(alloc, flags_einval)
{
	__u64 offs[4];
	unsigned int bit;

	for (bit = 0; bit < 32; bit++) {
		struct pyalloc_alloc a = { .size = 64, .count = 4,
					   .flags = 1U << bit,
					   .offsets = (__u64)(uintptr_t)offs };

		expect_alloc_rejected(_metadata, self->fd, &a, EINVAL);
	}
}

/*
 * EFAULT for the offsets array: nothing allocated.  Each bad buffer is tried
 * in an empty heap and again with blocks of the same class already live.
 */
static void expect_alloc_efault(struct __test_metadata *_metadata, int fd,
				const struct pyalloc_info *info, void *offsets,
				__u32 count)
{
	struct pyalloc_alloc a = { .size = 200, .count = count,
				   .offsets = (__u64)(uintptr_t)offsets };
	struct pya_kstats s0, s1;

	ASSERT_EQ(0, pya_stats(fd, &s0));
	EXPECT_EQ(-EFAULT, pya_ioctl(fd, PYALLOC_IOC_ALLOC, &a))
		TH_LOG("offsets %p count %u", offsets, count);
	ASSERT_EQ(0, pya_stats(fd, &s1));
	pya_expect_blocks_unchanged(&s0, &s1);
	pya_check_stats(&s1, info);
}

static void run_efault_cases(struct __test_metadata *_metadata, int fd,
			     const struct pyalloc_info *info)
{
	char *pg;

	/* NULL, in an empty heap and with live blocks. */
	expect_alloc_efault(_metadata, fd, info, NULL, 1);
	expect_alloc_efault(_metadata, fd, info, NULL, PYALLOC_MAX_BATCH);

	pg = mmap(NULL, 2 * PYA_PAGE, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, pg);

	/* Read-only output buffer. */
	ASSERT_EQ(0, mprotect(pg, 2 * PYA_PAGE, PROT_READ));
	expect_alloc_efault(_metadata, fd, info, pg, 8);
	/* PROT_NONE. */
	ASSERT_EQ(0, mprotect(pg, 2 * PYA_PAGE, PROT_NONE));
	expect_alloc_efault(_metadata, fd, info, pg, 8);
	/* Writable except its last entry: a partial copy must be undone. */
	ASSERT_EQ(0, mprotect(pg, PYA_PAGE, PROT_READ | PROT_WRITE));
	expect_alloc_efault(_metadata, fd, info,
			    pg + PYA_PAGE - 7 * sizeof(__u64), 8);
	expect_alloc_efault(_metadata, fd, info,
			    pg + PYA_PAGE - 100 * sizeof(__u64), 101);
	/* Unmapped. */
	munmap(pg, 2 * PYA_PAGE);
	expect_alloc_efault(_metadata, fd, info, pg, 8);
	/* A kernel address. */
	expect_alloc_efault(_metadata, fd, info,
			    (void *)(uintptr_t)0xffff888000000000ULL, 8);
}

TEST_F(alloc, bad_offsets_pointer_efault_empty_heap)
{
	run_efault_cases(_metadata, self->fd, &self->info);
}

TEST_F(alloc, bad_offsets_pointer_efault_live_blocks)
{
	__u64 offs[3];
	unsigned int n;

	ASSERT_EQ(0, pya_alloc(self->fd, 200, 3, offs, NULL));
	for (n = 0; n < 3; n++)
		pya_fill(self->map, offs[n], pya_round(200, self->gran), n);
	run_efault_cases(_metadata, self->fd, &self->info);
	for (n = 0; n < 3; n++) {
		EXPECT_TRUE(pya_check(self->map, offs[n],
				      pya_round(200, self->gran), n));
	}
	EXPECT_EQ(0, pya_free(self->fd, offs, 3, NULL));
}

/*
 * An offsets array whose pages were never touched: the kernel's first
 * delivery faults, so it gives the blocks back, faults the array in and
 * allocates again (ioctl.c).  The caller sees one call: the same offsets
 * as a twin heap writing into an array already faulted in, and the
 * statistics of one call.
 */
TEST_F(alloc, offsets_array_not_faulted_in_yet)
{
	const size_t len = PYALLOC_MAX_BATCH * sizeof(__u64) + PYA_PAGE;
	__u64 *fresh, *warm;
	struct pya_kstats a, b;
	char *buf;
	int twin;

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	/* Straddling a page boundary, so both pages fault. */
	fresh = (__u64 *)(buf + PYA_PAGE / 2);
	warm = malloc(PYALLOC_MAX_BATCH * sizeof(__u64));
	ASSERT_NE(NULL, warm);
	memset(warm, 0xff, PYALLOC_MAX_BATCH * sizeof(__u64));	/* faulted in */
	twin = pya_open();
	ASSERT_LE(0, twin);
	if (self->gran != 8) {
		ASSERT_EQ(0, pya_config(twin, PYALLOC_CONFIG_GRANULARITY,
					self->gran, 0));
	}

	ASSERT_EQ(0, pya_alloc(self->fd, 48, PYALLOC_MAX_BATCH, fresh, NULL));
	ASSERT_EQ(0, pya_alloc(twin, 48, PYALLOC_MAX_BATCH, warm, NULL));
	EXPECT_EQ(0, memcmp(fresh, warm, PYALLOC_MAX_BATCH * sizeof(__u64)));
	ASSERT_EQ(0, pya_stats(self->fd, &a));
	ASSERT_EQ(0, pya_stats(twin, &b));
	EXPECT_EQ(1, a.alloc_calls);
	EXPECT_EQ(PYALLOC_MAX_BATCH, a.blocks_allocated);
	EXPECT_EQ(b.pages, a.pages);
	EXPECT_EQ(b.arenas_allocated, a.arenas_allocated);

	EXPECT_EQ(0, pya_free(self->fd, fresh, PYALLOC_MAX_BATCH, NULL));
	EXPECT_EQ(0, pya_free(twin, warm, PYALLOC_MAX_BATCH, NULL));
	close(twin);
	free(warm);
	munmap(buf, len);
}

/*
 * The offsets array may live in the heap's own window, in a block not yet
 * faulted in: the kernel must take that page fault while serving the ioctl
 * (no self-deadlock on the heap's lock) and succeed.
 */
TEST_F(alloc, offsets_array_inside_own_window)
{
	__u64 buf_off, *arr;
	struct pya_kstats st;
	unsigned int n;

	ASSERT_EQ(0, pya_alloc(self->fd, 512, 1, &buf_off, NULL));
	arr = (__u64 *)(self->map + buf_off);
	/* 64 entries fill the untouched 512-byte block. */
	ASSERT_EQ(0, pya_alloc(self->fd, 24, 64, arr, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(64, st.cls[pya_class(24, self->gran)].blocks_in_use);
	for (n = 0; n < 64; n++) {
		EXPECT_TRUE(pya_well_placed(&self->info, arr[n],
					    pya_round(24, self->gran)));
	}
	/* And freed from there too. */
	EXPECT_EQ(0, pya_free(self->fd, arr, 64, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(0, st.cls[pya_class(24, self->gran)].blocks_in_use);
}

PYALLOC_TEST_MAIN
