// SPDX-License-Identifier: GPL-2.0
/*
 * Heaps are isolated: each open of /dev/pyalloc has its own blocks, pages,
 * statistics and mappings.  Offsets of one heap are wild in another, data
 * written in one is invisible in the other, and releasing or closing one
 * leaves the other untouched.
 */
#include "pyalloc_util.h"

FIXTURE(two) {
	int a, b;
	struct pyalloc_info info;
	char *ma, *mb;
};

FIXTURE_SETUP(two)
{
	struct pyalloc_info ib;

	self->ma = self->mb = MAP_FAILED;
	self->a = pya_open();
	self->b = pya_open();
	ASSERT_LE(0, self->a);
	ASSERT_LE(0, self->b);
	ASSERT_EQ(0, pya_info(self->a, &self->info));
	ASSERT_EQ(0, pya_info(self->b, &ib));
	ASSERT_EQ(self->info.window_size, ib.window_size);
	self->ma = pya_map(self->a, &self->info);
	self->mb = pya_map(self->b, &self->info);
	ASSERT_NE(MAP_FAILED, self->ma);
	ASSERT_NE(MAP_FAILED, self->mb);
}

FIXTURE_TEARDOWN(two)
{
	if (self->ma != MAP_FAILED)
		munmap(self->ma, self->info.window_size);
	if (self->mb != MAP_FAILED)
		munmap(self->mb, self->info.window_size);
	if (self->a >= 0)
		close(self->a);
	if (self->b >= 0)
		close(self->b);
}

TEST_F(two, offsets_of_other_heap_einval)
{
	struct pya_kstats a0, a1, b0, b1;
	__u64 oa[4], ob;
	__u32 idx = ~0U;

	ASSERT_EQ(0, pya_alloc(self->a, 64, 4, oa, NULL));
	ASSERT_EQ(0, pya_alloc(self->b, 64, 1, &ob, NULL));
	ASSERT_EQ(0, pya_stats(self->a, &a0));
	ASSERT_EQ(0, pya_stats(self->b, &b0));
	/* A's blocks 1..3 do not exist in B (B has one block). */
	EXPECT_EQ(-EINVAL, pya_free(self->b, oa[0] == ob ? oa + 1 : oa, 3,
				    &idx));
	EXPECT_EQ(0, idx);
	ASSERT_EQ(0, pya_stats(self->a, &a1));
	ASSERT_EQ(0, pya_stats(self->b, &b1));
	pya_expect_stats_equal(&a0, &a1);
	pya_expect_stats_equal(&b0, &b1);
	/* Each heap frees its own. */
	EXPECT_EQ(0, pya_free(self->a, oa, 4, NULL));
	EXPECT_EQ(0, pya_free(self->b, &ob, 1, NULL));
}

/* Same offsets in both heaps (both fresh, same requests), different data. */
TEST_F(two, data_isolated)
{
	__u64 oa[16], ob[16];
	unsigned int n;

	ASSERT_EQ(0, pya_alloc(self->a, 128, 16, oa, NULL));
	for (n = 0; n < 16; n++)
		pya_fill(self->ma, oa[n], 128, 1);
	ASSERT_EQ(0, pya_alloc(self->b, 128, 16, ob, NULL));
	for (n = 0; n < 16; n++) {
		ASSERT_TRUE(pya_is_zero(self->mb, ob[n], 128))
			TH_LOG("heap B block %#llx not fresh",
			       (unsigned long long)ob[n]);
	}
	for (n = 0; n < 16; n++)
		pya_fill(self->mb, ob[n], 128, 2);
	for (n = 0; n < 16; n++) {
		EXPECT_TRUE(pya_check(self->ma, oa[n], 128, 1));
		EXPECT_TRUE(pya_check(self->mb, ob[n], 128, 2));
	}
}

/* A's mapping has nothing where only B has an arena. */
TEST_F_SIGNAL(two, other_heap_pages_not_visible, SIGBUS)
{
	__u64 ob;

	ASSERT_EQ(0, pya_alloc(self->b, 8, 1, &ob, NULL));
	pya_fill(self->mb, ob, 8, 1);
	(void)*(volatile char *)(self->ma + ob);
}

/* A's arenas released: B's blocks at the same offsets stay mapped. */
TEST_F(two, release_in_one_heap_spares_other)
{
	const __u64 bpa = (__u64)self->info.pools_per_arena *
			  (self->info.pool_size / 512);
	__u64 *oa, *ob, n = 3 * bpa, i;
	struct pya_kstats st;

	oa = malloc(n * sizeof(*oa));
	ob = malloc(n * sizeof(*ob));
	ASSERT_NE(NULL, oa);
	ASSERT_NE(NULL, ob);
	ASSERT_EQ(0, pya_alloc_n(self->a, 512, n, oa));
	ASSERT_EQ(0, pya_alloc_n(self->b, 512, n, ob));
	for (i = 0; i < n; i++) {
		pya_fill(self->ma, oa[i], 512, 1);
		pya_fill(self->mb, ob[i], 512, 2);
	}
	ASSERT_EQ(0, pya_free_n(self->a, oa, n));
	ASSERT_EQ(0, pya_stats(self->a, &st));
	ASSERT_GE(st.arenas_reclaimed, 2);
	ASSERT_EQ(0, pya_stats(self->b, &st));
	EXPECT_EQ(3, st.arenas_current);
	EXPECT_EQ(0, st.arenas_reclaimed);
	for (i = 0; i < n; i++) {
		ASSERT_TRUE(pya_check(self->mb, ob[i], 512, 2));
	}
	free(oa);
	free(ob);
}

/* Closing (and unmapping) one heap frees its pages only. */
TEST_F(two, close_one_heap_spares_other)
{
	struct pya_kstats sb0, sb1, sa;
	long long held;
	__u64 oa[64], ob[64];
	unsigned int n;

	ASSERT_EQ(0, pya_alloc(self->a, 256, 64, oa, NULL));
	ASSERT_EQ(0, pya_alloc(self->b, 256, 64, ob, NULL));
	for (n = 0; n < 64; n++)
		pya_fill(self->mb, ob[n], 256, 3);
	ASSERT_EQ(0, pya_stats(self->a, &sa));
	ASSERT_EQ(0, pya_stats(self->b, &sb0));
	held = pya_param("pages_held");
	ASSERT_LE((long long)(sa.pages + sb0.pages), held);
	munmap(self->ma, self->info.window_size);
	self->ma = MAP_FAILED;
	close(self->a);
	self->a = -1;
	EXPECT_EQ(held - (long long)sa.pages, pya_param("pages_held"));
	ASSERT_EQ(0, pya_stats(self->b, &sb1));
	pya_expect_stats_equal(&sb0, &sb1);
	for (n = 0; n < 64; n++) {
		EXPECT_TRUE(pya_check(self->mb, ob[n], 256, 3));
	}
	EXPECT_EQ(0, pya_free(self->b, ob, 64, NULL));
}

/* Many heaps at once, each with its own pattern in the same offsets. */
TEST(many_heaps)
{
	enum { N = 16 };
	struct pyalloc_info info;
	long long heaps0 = pya_param("heaps");
	char *map[N];
	__u64 off[N];
	int fd[N], i;

	ASSERT_LE(0, heaps0);
	for (i = 0; i < N; i++) {
		fd[i] = pya_open();
		ASSERT_LE(0, fd[i]);
		ASSERT_EQ(0, pya_info(fd[i], &info));
		map[i] = pya_map(fd[i], &info);
		ASSERT_NE(MAP_FAILED, map[i]);
		ASSERT_EQ(0, pya_alloc(fd[i], 64, 1, &off[i], NULL));
		pya_fill(map[i], off[i], 64, 100 + i);
	}
	EXPECT_EQ(heaps0 + N, pya_param("heaps"));
	for (i = 0; i < N; i++) {
		EXPECT_TRUE(pya_check(map[i], off[i], 64, 100 + i));
		munmap(map[i], info.window_size);
		close(fd[i]);
	}
	EXPECT_EQ(heaps0, pya_param("heaps"));
}

PYALLOC_TEST_MAIN
