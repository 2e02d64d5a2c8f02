// SPDX-License-Identifier: GPL-2.0
/*
 * Limits: a heap's memory limit (lowered with PYALLOC_IOC_CONFIG) and its
 * window give ENOMEM, all or nothing; the module parameters heap_limit_mb
 * and window_mb set the limit and window of heaps opened afterwards.
 */
#include "pyalloc_util.h"

PYA_HEAP_FIXTURE(heap)

/*
 * Allocate 512-byte blocks (8 per pool) one pool's worth per call until the
 * heap refuses; checks the refusal is ENOMEM and changed nothing.  Returns
 * the number of blocks allocated.
 */
static __u64 alloc_until_enomem(struct __test_metadata *_metadata, int fd,
				__u64 *offs, __u64 max)
{
	struct pya_kstats s0, s1;
	__u64 n = 0;
	int ret;

	for (;;) {
		if (n + 8 > max) {
			EXPECT_TRUE(0) TH_LOG("no ENOMEM after %llu blocks",
					      (unsigned long long)n);
			return n;
		}
		ASSERT_EQ(0, pya_stats(fd, &s0));
		ret = pya_alloc(fd, 512, 8, offs + n, NULL);
		if (ret)
			break;
		n += 8;
	}
	EXPECT_EQ(-ENOMEM, ret);
	ASSERT_EQ(0, pya_stats(fd, &s1));
	pya_expect_blocks_unchanged(&s0, &s1);
	EXPECT_EQ(s0.pages, s1.pages);
	return n;
}

/* Every page up to the limit is usable, not one more. */
TEST_F(heap, limit_gives_enomem)
{
	static __u64 offs[1024];
	struct pya_kstats st;
	__u64 n;

	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_MEM_LIMIT, 0,
				4 * PYA_PAGE));
	ASSERT_EQ(0, pya_info(self->fd, &self->info));
	n = alloc_until_enomem(_metadata, self->fd, offs, 1024);
	EXPECT_EQ(32, n);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(4, st.pages);
	EXPECT_EQ(4 * PYA_PAGE, st.mem_limit);
	pya_check_stats(&st, &self->info);
	/* The data is fine and the heap still works once blocks are freed. */
	ASSERT_EQ(0, pya_free(self->fd, offs, 8, NULL));
	EXPECT_EQ(0, pya_alloc(self->fd, 512, 8, offs, NULL));
	EXPECT_EQ(-ENOMEM, pya_alloc(self->fd, 512, 1, offs + 32, NULL));
}

/* A batch that needs more pages than are left fails whole. */
TEST_F(heap, limit_batch_all_or_nothing)
{
	long long held0 = pya_param("pages_held");
	struct pya_kstats s0, s1;
	__u64 offs[40];

	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_MEM_LIMIT, 0,
				4 * PYA_PAGE));
	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	/* 40 blocks of 512 need 5 pages. */
	EXPECT_EQ(-ENOMEM, pya_alloc(self->fd, 512, 40, offs, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_blocks_unchanged(&s0, &s1);
	EXPECT_EQ(0, s1.pages);
	EXPECT_EQ(held0, pya_param("pages_held"));
	/* With one pool already in use, 33 more need 5 more pages. */
	ASSERT_EQ(0, pya_alloc(self->fd, 512, 7, offs, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	EXPECT_EQ(-ENOMEM, pya_alloc(self->fd, 512, 33, offs + 7, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_blocks_unchanged(&s0, &s1);
	EXPECT_EQ(1, s1.pages);
	/* Exactly what fits: 25 = 1 free slot + 3 pools of 8. */
	EXPECT_EQ(0, pya_alloc(self->fd, 512, 25, offs + 7, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	EXPECT_EQ(4, s1.pages);
	EXPECT_EQ(32, s1.cls[63].blocks_in_use);
}

/* The limit counts pages: a class with room in its pool still allocates. */
TEST_F(heap, limit_counts_pages_not_blocks)
{
	__u64 offs[16];

	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_MEM_LIMIT, 0,
				2 * PYA_PAGE));
	ASSERT_EQ(0, pya_alloc(self->fd, 512, 4, offs, NULL));
	ASSERT_EQ(0, pya_alloc(self->fd, 8, 8, offs + 4, NULL));
	/* A third class needs a third page. */
	EXPECT_EQ(-ENOMEM, pya_alloc(self->fd, 16, 1, offs + 12, NULL));
	/* Both existing pools have room. */
	EXPECT_EQ(0, pya_alloc(self->fd, 512, 4, offs + 12, NULL));
	EXPECT_EQ(0, pya_alloc(self->fd, 3, 1, offs, NULL));
	/* An emptied pool can be taken by another class within the limit. */
	ASSERT_EQ(0, pya_free(self->fd, offs + 4, 8, NULL));
	ASSERT_EQ(0, pya_free(self->fd, offs, 1, NULL));
	EXPECT_EQ(0, pya_alloc(self->fd, 16, 1, offs + 4, NULL));
}

/* A limit below one page: nothing can be allocated. */
TEST_F(heap, limit_below_one_page)
{
	struct pya_kstats s0, s1;
	__u64 off;

	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_MEM_LIMIT, 0,
				PYA_PAGE - 1));
	ASSERT_EQ(0, pya_stats(self->fd, &s0));
	EXPECT_EQ(-ENOMEM, pya_alloc(self->fd, 8, 1, &off, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &s1));
	pya_expect_blocks_unchanged(&s0, &s1);
	EXPECT_EQ(0, s1.pages);
}

/*
 * Module parameters: save them in setup, restore them in teardown (which
 * runs in the test process whatever the test did).
 */
FIXTURE(params) {
	long long limit_mb, window_mb;
	int fd;
};

FIXTURE_SETUP(params)
{
	self->fd = -1;
	if (geteuid() != 0)
		SKIP(return, "needs root to write module parameters");
	self->limit_mb = pya_param("heap_limit_mb");
	self->window_mb = pya_param("window_mb");
	ASSERT_LE(0, self->limit_mb);
	ASSERT_LE(0, self->window_mb);
}

FIXTURE_TEARDOWN(params)
{
	if (self->fd >= 0)
		close(self->fd);
	if (geteuid() != 0)
		return;
	EXPECT_EQ(0, pya_set_param("heap_limit_mb", self->limit_mb));
	EXPECT_EQ(0, pya_set_param("window_mb", self->window_mb));
}

TEST_F(params, heap_limit_mb_applies_to_new_heaps)
{
	struct pyalloc_info info;
	int old;

	old = pya_open();
	ASSERT_LE(0, old);
	ASSERT_EQ(0, pya_set_param("heap_limit_mb", 1));
	EXPECT_EQ(1, pya_param("heap_limit_mb"));
	self->fd = pya_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(1ULL << 20, info.mem_limit);
	/* A heap opened before keeps its limit. */
	ASSERT_EQ(0, pya_info(old, &info));
	EXPECT_EQ((__u64)self->limit_mb << 20, info.mem_limit);
	close(old);
}

/* A 1 MiB limit is 256 pages: 2048 blocks of 512, then ENOMEM. */
TEST_F(params, heap_limit_mb_enforced)
{
	static __u64 offs[4096];
	struct pya_kstats st;

	ASSERT_EQ(0, pya_set_param("heap_limit_mb", 1));
	self->fd = pya_open();
	ASSERT_LE(0, self->fd);
	EXPECT_EQ(2048, alloc_until_enomem(_metadata, self->fd, offs, 4096));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(256, st.pages);
}

/* window_mb sets the window; a full window is ENOMEM like a limit. */
TEST_F(params, window_mb_applies_and_fills)
{
	static __u64 offs[8192];
	struct pya_kstats st;
	struct pyalloc_info info;
	__u64 n, slots, i;
	char *map;

	ASSERT_EQ(0, pya_set_param("window_mb", 1));
	self->fd = pya_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, pya_info(self->fd, &info));
	if (info.arena_size > (1U << 20))
		SKIP(return, "arena larger than 1 MiB");
	EXPECT_EQ(1ULL << 20, info.window_size);
	slots = info.window_size / info.arena_size;
	ASSERT_LE(slots * info.pools_per_arena * 8, 8192);
	n = alloc_until_enomem(_metadata, self->fd, offs, 8192);
	EXPECT_EQ(slots * info.pools_per_arena * 8, n);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(slots, st.arenas_current);
	EXPECT_EQ(slots * info.pools_per_arena, st.pages);
	/* Every block lies in the window, and the window maps and works. */
	map = pya_map(self->fd, &info);
	ASSERT_NE(MAP_FAILED, map);
	for (i = 0; i < n; i++) {
		ASSERT_LT(offs[i], info.window_size);
		pya_fill(map, offs[i], 512, 9);
	}
	for (i = 0; i < n; i++) {
		ASSERT_TRUE(pya_check(map, offs[i], 512, 9));
	}
	munmap(map, info.window_size);
}

PYALLOC_TEST_MAIN
