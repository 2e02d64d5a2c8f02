// SPDX-License-Identifier: GPL-2.0
/*
 * PYALLOC_IOC_FREE: freeing and reusing blocks, and every bad free rejected
 * with EINVAL, the offending entry named in error_index and nothing freed:
 * double free, wild offsets (past the window, in an arena slot never used,
 * in an unused pool, on an unallocated block), misaligned offsets, offsets
 * of another class's pool, duplicates within a batch; bad count, flags and
 * reserved fields; EFAULT for an unreadable offsets array.
 */
#include "pyalloc_util.h"

PYA_HEAP_FIXTURE(heap)

/*
 * Free @offs, expecting EINVAL at entry @bad (or, for @bad == ~0U, without
 * checking error_index), with the heap entirely unchanged.
 */
static void expect_free_rejected(struct __test_metadata *_metadata, int fd,
				 const __u64 *offs, __u32 count, __u32 bad)
{
	struct pya_kstats s0, s1;
	__u32 idx = 0;

	ASSERT_EQ(0, pya_stats(fd, &s0));
	EXPECT_EQ(-EINVAL, pya_free(fd, offs, count, &idx))
		TH_LOG("count %u, expected bad entry %u", count, bad);
	if (bad != ~0U) {
		EXPECT_EQ(bad, idx) TH_LOG("bad offset %#llx",
					   (unsigned long long)offs[bad]);
	}
	ASSERT_EQ(0, pya_stats(fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
}

/* Free a batch that must succeed and check blocks_in_use went down. */
static void expect_freed(struct __test_metadata *_metadata, int fd,
			 const __u64 *offs, __u32 count)
{
	struct pya_kstats s0, s1;

	ASSERT_EQ(0, pya_stats(fd, &s0));
	ASSERT_EQ(0, pya_free(fd, offs, count, NULL));
	ASSERT_EQ(0, pya_stats(fd, &s1));
	EXPECT_EQ(s0.blocks_freed + count, s1.blocks_freed);
	EXPECT_EQ(s0.free_calls + 1, s1.free_calls);
}

TEST_F(heap, free_updates_stats)
{
	struct pya_kstats st;
	__u64 offs[10];

	ASSERT_EQ(0, pya_alloc(self->fd, 42, 10, offs, NULL));
	ASSERT_EQ(0, pya_free(self->fd, offs, 4, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(6, st.cls[5].blocks_in_use);
	EXPECT_EQ(1, st.free_calls);
	EXPECT_EQ(4, st.blocks_freed);
	EXPECT_EQ(6 * 48, st.bytes_in_use);
	EXPECT_EQ(6, pya_check_stats(&st, &self->info));
	ASSERT_EQ(0, pya_free(self->fd, offs + 4, 6, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(0, pya_check_stats(&st, &self->info));
	EXPECT_EQ(0, st.bytes_in_use);
}

/* "error_index: ... otherwise @count": a successful free reports count. */
TEST_F(heap, success_sets_error_index_to_count)
{
	__u64 offs[5];
	__u32 idx = 0;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 5, offs, NULL));
	ASSERT_EQ(0, pya_free(self->fd, offs, 5, &idx));
	EXPECT_EQ(5, idx);
}

/*
 * A freed block is handed out again.  Fill exactly one pool, free one block
 * in its middle: the pool's only free block is the next one allocated, and
 * it keeps what was last written to it.
 */
TEST_F(heap, free_then_reuse)
{
	static __u64 offs[PYA_PAGE / 64];
	__u32 bpp = self->info.pool_size / 64, n;
	struct pya_kstats st;
	__u64 again;

	ASSERT_EQ(0, pya_alloc(self->fd, 64, bpp, offs, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	ASSERT_EQ(1, st.cls[7].pools);
	for (n = 0; n < bpp; n++)
		pya_fill(self->map, offs[n], 64, 5);
	ASSERT_EQ(0, pya_free(self->fd, &offs[bpp / 2], 1, NULL));
	ASSERT_EQ(0, pya_alloc(self->fd, 64, 1, &again, NULL));
	EXPECT_EQ(offs[bpp / 2], again);
	EXPECT_TRUE(pya_check(self->map, again, 64, 5));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(1, st.cls[7].pools);
	EXPECT_EQ(bpp, st.cls[7].blocks_in_use);
	/* Free all, allocate all again: no new page is needed. */
	ASSERT_EQ(0, pya_free(self->fd, offs, bpp, NULL));
	ASSERT_EQ(0, pya_alloc(self->fd, 64, bpp, offs, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(1, st.pages);
	EXPECT_EQ(1, st.cls[7].pools);
}

/* An emptied pool goes back to its arena and may serve another class. */
TEST_F(heap, empty_pool_serves_other_class)
{
	static __u64 offs[PYA_PAGE / 16];
	__u32 bpp = self->info.pool_size / 16;
	struct pya_kstats st;
	__u64 pages;

	ASSERT_EQ(0, pya_alloc(self->fd, 16, bpp, offs, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	pages = st.pages;
	ASSERT_EQ(0, pya_free(self->fd, offs, bpp, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(0, st.cls[1].pools);
	/* The arena is the only one, kept with its pages. */
	EXPECT_EQ(pages, st.pools_empty);
	ASSERT_EQ(0, pya_alloc(self->fd, 256, 16, offs, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(pages, st.pages) TH_LOG("a new page for a class switch");
	EXPECT_EQ(1, st.cls[31].pools);
	EXPECT_EQ(0, st.pools_empty);
	pya_check_stats(&st, &self->info);
}

TEST_F(heap, double_free_einval)
{
	__u64 offs[3];

	ASSERT_EQ(0, pya_alloc(self->fd, 100, 3, offs, NULL));
	expect_freed(_metadata, self->fd, &offs[1], 1);
	expect_free_rejected(_metadata, self->fd, &offs[1], 1, 0);
	/* In a batch after a valid entry: the valid one is not freed. */
	expect_free_rejected(_metadata, self->fd, offs, 2, 1);
	expect_free_rejected(_metadata, self->fd, offs, 3, 1);
	/* Both others are still allocated. */
	expect_freed(_metadata, self->fd, &offs[0], 1);
	expect_freed(_metadata, self->fd, &offs[2], 1);
}

/*
 * Double free after the pool went empty and now serves another class: the
 * stale offset (block 1 of 40 bytes) is no block start of the new class.
 */
TEST_F(heap, double_free_after_pool_reuse_einval)
{
	__u64 a[2], b[8], stale;

	ASSERT_EQ(0, pya_alloc(self->fd, 40, 2, a, NULL));
	ASSERT_EQ(0, pya_free(self->fd, a, 2, NULL));
	ASSERT_EQ(0, pya_alloc(self->fd, 512, 8, b, NULL));
	stale = a[0] > a[1] ? a[0] : a[1];
	ASSERT_NE(0, stale % 512);
	expect_free_rejected(_metadata, self->fd, &stale, 1, 0);
}

TEST_F(heap, offset_beyond_window_einval)
{
	__u64 live[2], bad[3];
	const __u64 w = self->info.window_size;
	const __u64 wild[] = { w, w + self->info.pool_size, w + 8,
			       w * 2, 1ULL << 62, ~0ULL, ~0ULL - 7 };
	unsigned int n;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 2, live, NULL));
	for (n = 0; n < sizeof(wild) / sizeof(wild[0]); n++) {
		bad[0] = live[0];
		bad[1] = live[1];
		bad[2] = wild[n];
		expect_free_rejected(_metadata, self->fd, &bad[2], 1, 0);
		expect_free_rejected(_metadata, self->fd, bad, 3, 2);
	}
}

/* Inside the window, in an arena slot that holds no arena. */
TEST_F(heap, offset_in_unused_arena_slot_einval)
{
	const __u64 as = self->info.arena_size;
	__u64 live, bad[2];

	if (self->info.window_size < 3 * as)
		SKIP(return, "window of fewer than 3 arenas");
	/* Before any arena exists. */
	bad[0] = 0;
	expect_free_rejected(_metadata, self->fd, bad, 1, 0);
	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &live, NULL));
	ASSERT_LT(live, as);	/* the first arena is slot 0 */
	bad[0] = live;
	bad[1] = as + live;	/* same place, next slot */
	expect_free_rejected(_metadata, self->fd, bad, 2, 1);
	bad[1] = self->info.window_size - as;
	expect_free_rejected(_metadata, self->fd, bad, 2, 1);
	bad[1] = self->info.window_size - 8;
	expect_free_rejected(_metadata, self->fd, bad, 2, 1);
}

/* In the live arena, in a pool that holds no block. */
TEST_F(heap, offset_in_unused_pool_einval)
{
	const __u64 ps = self->info.pool_size;
	__u64 live, pool, bad;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &live, NULL));
	pool = live / ps;
	/* The last pool of the arena: one block in use, so not that one. */
	bad = (self->info.pools_per_arena - 1) * ps;
	ASSERT_NE(pool, bad / ps);
	expect_free_rejected(_metadata, self->fd, &bad, 1, 0);
	bad = (pool + 1) * ps;
	expect_free_rejected(_metadata, self->fd, &bad, 1, 0);
}

/* In a pool in use, at a block start, but that block is not allocated. */
TEST_F(heap, unallocated_block_einval)
{
	__u64 live, pool, bad;
	unsigned int k;

	ASSERT_EQ(0, pya_alloc(self->fd, 64, 1, &live, NULL));
	pool = live & ~(__u64)(self->info.pool_size - 1);
	for (k = 0; k < self->info.pool_size / 64; k++) {
		bad = pool + k * 64;
		if (bad == live)
			continue;
		expect_free_rejected(_metadata, self->fd, &bad, 1, 0);
	}
	expect_freed(_metadata, self->fd, &live, 1);
}

TEST_F(heap, misaligned_offset_einval)
{
	static const __u64 delta[] = { 1, 4, 7, 8, 16, 32, 47, 24 };
	__u64 live[2], bad[2];
	unsigned int n;

	/* 48-byte blocks: +8, +16, +24, +32 are 8-aligned but no block start. */
	ASSERT_EQ(0, pya_alloc(self->fd, 48, 2, live, NULL));
	for (n = 0; n < sizeof(delta) / sizeof(delta[0]); n++) {
		bad[0] = live[0];
		bad[1] = live[1] + delta[n];
		expect_free_rejected(_metadata, self->fd, &bad[1], 1, 0);
		expect_free_rejected(_metadata, self->fd, bad, 2, 1);
		bad[1] = live[1] - delta[n];
		if (bad[1] % self->info.pool_size > live[1] % self->info.pool_size)
			continue;	/* went into the previous page */
		if ((bad[1] % self->info.pool_size) % 48 == 0)
			continue;	/* a block start: covered elsewhere */
		expect_free_rejected(_metadata, self->fd, &bad[1], 1, 0);
	}
	/* The tail bytes of a pool (4096 % 48 = 16): no block there. */
	bad[0] = (live[0] & ~(__u64)(self->info.pool_size - 1)) +
		 (self->info.pool_size / 48) * 48;
	expect_free_rejected(_metadata, self->fd, bad, 1, 0);
}

/*
 * A valid block start for one class, inside a pool of another class: the
 * kernel must go by the pool's class, not by what the offset looks like.
 */
TEST_F(heap, offset_in_other_class_pool_einval)
{
	__u64 a48[2], a32[2], bad;
	__u64 p48, p32;

	ASSERT_EQ(0, pya_alloc(self->fd, 48, 2, a48, NULL));
	ASSERT_EQ(0, pya_alloc(self->fd, 32, 2, a32, NULL));
	p48 = a48[0] & ~(__u64)(self->info.pool_size - 1);
	p32 = a32[0] & ~(__u64)(self->info.pool_size - 1);
	ASSERT_NE(p48, p32);
	/* 32 is a 32-byte block start, not a 48-byte one. */
	bad = p48 + 32;
	expect_free_rejected(_metadata, self->fd, &bad, 1, 0);
	bad = p48 + 160;
	expect_free_rejected(_metadata, self->fd, &bad, 1, 0);
	/* 48 is a 48-byte block start, not a 32-byte one. */
	bad = p32 + 48;
	expect_free_rejected(_metadata, self->fd, &bad, 1, 0);
	bad = p32 + 16;
	expect_free_rejected(_metadata, self->fd, &bad, 1, 0);
	expect_freed(_metadata, self->fd, a48, 2);
	expect_freed(_metadata, self->fd, a32, 2);
}

TEST_F(heap, duplicate_in_batch_einval)
{
	__u64 offs[4], batch[5];

	ASSERT_EQ(0, pya_alloc(self->fd, 24, 4, offs, NULL));
	batch[0] = offs[0];
	batch[1] = offs[0];
	expect_free_rejected(_metadata, self->fd, batch, 2, 1);
	batch[0] = offs[0];
	batch[1] = offs[1];
	batch[2] = offs[2];
	batch[3] = offs[1];
	batch[4] = offs[3];
	expect_free_rejected(_metadata, self->fd, batch, 5, 3);
	/* A duplicate of the last entry at the very end of a full batch. */
	expect_freed(_metadata, self->fd, offs, 4);
}

TEST_F(heap, duplicate_at_end_of_max_batch_einval)
{
	static __u64 offs[PYALLOC_MAX_BATCH];

	ASSERT_EQ(0, pya_alloc(self->fd, 8, PYALLOC_MAX_BATCH - 1, offs,
			       NULL));
	offs[PYALLOC_MAX_BATCH - 1] = offs[0];
	expect_free_rejected(_metadata, self->fd, offs, PYALLOC_MAX_BATCH,
			     PYALLOC_MAX_BATCH - 1);
	expect_freed(_metadata, self->fd, offs, PYALLOC_MAX_BATCH - 1);
}

/* A bad entry anywhere in a large valid batch: nothing at all freed. */
TEST_F(heap, bad_entry_in_large_batch_frees_nothing)
{
	static __u64 offs[PYALLOC_MAX_BATCH];
	static const __u32 at[] = { 0, 1, 255, PYALLOC_MAX_BATCH - 1 };
	unsigned int n;

	ASSERT_EQ(0, pya_alloc(self->fd, 512, PYALLOC_MAX_BATCH, offs, NULL));
	for (n = 0; n < sizeof(at) / sizeof(at[0]); n++) {
		__u64 keep = offs[at[n]];

		offs[at[n]] = keep + 8;		/* misaligned */
		expect_free_rejected(_metadata, self->fd, offs,
				     PYALLOC_MAX_BATCH, at[n]);
		offs[at[n]] = keep;
	}
	expect_freed(_metadata, self->fd, offs, PYALLOC_MAX_BATCH);
}

TEST_F(heap, count_zero_einval)
{
	__u64 off;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &off, NULL));
	expect_free_rejected(_metadata, self->fd, &off, 0, ~0U);
}

TEST_F(heap, count_above_max_batch_einval)
{
	static __u64 offs[PYALLOC_MAX_BATCH + 1];

	ASSERT_EQ(0, pya_alloc(self->fd, 8, PYALLOC_MAX_BATCH, offs, NULL));
	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &offs[PYALLOC_MAX_BATCH],
			       NULL));
	expect_free_rejected(_metadata, self->fd, offs, PYALLOC_MAX_BATCH + 1,
			     ~0U);
	expect_free_rejected(_metadata, self->fd, offs, 0xffffffff, ~0U);
}

TEST_F(heap, flags_einval)
{
	struct pya_kstats s0, s1;
	unsigned int bit;
	__u64 off;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &off, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	for (bit = 0; bit < 32; bit++) {
		struct pyalloc_free f = { .count = 1, .flags = 1U << bit,
					  .offsets = (__u64)(uintptr_t)&off };

		EXPECT_EQ(-EINVAL, pya_ioctl(self->fd, PYALLOC_IOC_FREE, &f))
			TH_LOG("flags %#x", f.flags);
	}
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
}

TEST_F(heap, reserved_einval)
{
	struct pya_kstats s0, s1;
	unsigned int bit;
	__u64 off;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &off, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	for (bit = 0; bit < 32; bit++) {
		struct pyalloc_free f = { .count = 1, .reserved = 1U << bit,
					  .offsets = (__u64)(uintptr_t)&off };

		EXPECT_EQ(-EINVAL, pya_ioctl(self->fd, PYALLOC_IOC_FREE, &f))
			TH_LOG("reserved %#x", f.reserved);
	}
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
}

/* error_index is an output: whatever it held on input does not matter. */
TEST_F(heap, error_index_input_ignored)
{
	struct pyalloc_free f;
	__u64 off;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &off, NULL));
	f = (struct pyalloc_free){ .count = 1, .error_index = 0x12345678,
				   .offsets = (__u64)(uintptr_t)&off };
	EXPECT_EQ(0, pya_ioctl(self->fd, PYALLOC_IOC_FREE, &f));
}

/* EFAULT for an unreadable offsets array; nothing freed. */
TEST_F(heap, bad_offsets_pointer_efault)
{
	struct pya_kstats s0, s1;
	__u64 offs[8], *pg;
	__u32 idx;

	ASSERT_EQ(0, pya_alloc(self->fd, 16, 8, offs, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	EXPECT_EQ(-EFAULT, pya_free(self->fd, NULL, 8, &idx));
	pg = mmap(NULL, 2 * PYA_PAGE, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, pg);
	/* The last entry lies in a PROT_NONE page. */
	memcpy((char *)pg + PYA_PAGE - 7 * 8, offs, 7 * 8);
	ASSERT_EQ(0, mprotect((char *)pg + PYA_PAGE, PYA_PAGE, PROT_NONE));
	EXPECT_EQ(-EFAULT, pya_free(self->fd,
				    (__u64 *)((char *)pg + PYA_PAGE - 7 * 8),
				    8, &idx));
	EXPECT_EQ(-EFAULT, pya_free(self->fd,
				    (__u64 *)((char *)pg + PYA_PAGE), 1, &idx));
	munmap(pg, 2 * PYA_PAGE);
	EXPECT_EQ(-EFAULT, pya_free(self->fd, pg, 1, &idx));
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_stats_equal(&s0, &s1);
	expect_freed(_metadata, self->fd, offs, 8);
}

/* Free only reads the array: a read-only one is fine. */
TEST_F(heap, read_only_offsets_accepted)
{
	__u64 *pg;

	pg = mmap(NULL, PYA_PAGE, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, pg);
	ASSERT_EQ(0, pya_alloc(self->fd, 16, 8, pg, NULL));
	ASSERT_EQ(0, mprotect(pg, PYA_PAGE, PROT_READ));
	expect_freed(_metadata, self->fd, pg, 8);
	munmap(pg, PYA_PAGE);
}

/* Everything freed in one call, in reverse and interleaved class order. */
TEST_F(heap, free_mixed_classes_in_one_batch)
{
	static __u64 offs[PYALLOC_MAX_BATCH];
	struct pya_kstats st;
	unsigned int c, n = 0;

	for (c = 0; c < 64; c++) {
		ASSERT_EQ(0, pya_alloc(self->fd, (c + 1) * 8, 8, &offs[n],
				       NULL));
		n += 8;
	}
	ASSERT_EQ(PYALLOC_MAX_BATCH, n);
	/* Shuffle deterministically. */
	for (c = 0; c < n; c++) {
		unsigned int j = (c * 7919 + 13) % n;
		__u64 t = offs[c];

		offs[c] = offs[j];
		offs[j] = t;
	}
	expect_freed(_metadata, self->fd, offs, n);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(0, pya_check_stats(&st, &self->info));
}

PYALLOC_TEST_MAIN
