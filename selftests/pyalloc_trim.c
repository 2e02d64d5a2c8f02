// SPDX-License-Identifier: GPL-2.0
/*
 * PYALLOC_IOC_TRIM: the heap keeps one entirely empty arena (pages
 * included) to avoid thrashing; TRIM gives it back, like malloc_trim(), and
 * purges the empty pools of the arenas still in use.
 */
#include "pyalloc_util.h"

static int pya_trim(int fd, __u64 *pages)
{
	struct pyalloc_trim t = { .pages = 0xdeadbeef };
	int ret = pya_ioctl(fd, PYALLOC_IOC_TRIM, &t);

	if (!ret && pages)
		*pages = t.pages;
	return ret;
}

PYA_HEAP_FIXTURE(heap);

TEST_F(heap, trim_empty_heap_releases_nothing)
{
	struct pya_kstats before, after;
	__u64 pages = 1;

	ASSERT_EQ(0, pya_stats(self->fd, &before));
	ASSERT_EQ(0, pya_trim(self->fd, &pages));
	EXPECT_EQ(0, pages);
	ASSERT_EQ(0, pya_stats(self->fd, &after));
	pya_expect_stats_equal(&before, &after);
}

TEST_F(heap, trim_keeps_live_blocks)
{
	__u64 offs[64], pages = 1;
	struct pya_kstats st;

	ASSERT_EQ(0, pya_alloc(self->fd, 512, 64, offs, NULL));
	pya_fill(self->map, offs[0], 512, 7);
	ASSERT_EQ(0, pya_trim(self->fd, &pages));
	EXPECT_EQ(0, pages);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(8, st.pages);
	EXPECT_TRUE(pya_check(self->map, offs[0], 512, 7));
}

/* Free everything: one arena stays, pages and all; TRIM returns it. */
TEST_F(heap, trim_returns_the_kept_arena)
{
	__u64 ppa = self->info.pools_per_arena, n = 2 * ppa * 8, pages = 0;
	long long held = pya_param("pages_held");
	struct pya_kstats st;
	__u64 *offs = calloc(n, sizeof(*offs));

	ASSERT_NE(NULL, offs);
	ASSERT_EQ(0, pya_alloc_n(self->fd, 512, n, offs));
	ASSERT_EQ(0, pya_free_n(self->fd, offs, n));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(1, st.arenas_current);
	EXPECT_EQ(ppa, st.pages);
	ASSERT_EQ(0, pya_trim(self->fd, &pages));
	EXPECT_EQ(ppa, pages);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(0, st.arenas_current);
	EXPECT_EQ(0, st.pages);
	EXPECT_EQ(0, st.pools_empty);
	EXPECT_EQ(2, st.arenas_reclaimed);
	if (held >= 0)
		EXPECT_EQ(held, pya_param("pages_held"));
	/* The heap works on, from a fresh arena. */
	ASSERT_EQ(0, pya_alloc(self->fd, 24, 1, offs, NULL));
	EXPECT_TRUE(pya_is_zero(self->map, offs[0], 24));
	free(offs);
}

/* A page of the trimmed arena was mapped: it is gone from the mapping. */
TEST_F_SIGNAL(heap, trim_unmaps, SIGBUS)
{
	volatile char *p;
	__u64 off;

	ASSERT_EQ(0, pya_alloc(self->fd, 64, 1, &off, NULL));
	p = (volatile char *)self->map + off;
	*p = 1;
	ASSERT_EQ(0, pya_free(self->fd, &off, 1, NULL));
	ASSERT_EQ(0, pya_trim(self->fd, NULL));
	*p = 2;
	TH_LOG("no SIGBUS after the arena was trimmed");
}

/*
 * An arena still in use: TRIM gives back the page of each empty pool in it
 * (purges it), keeps the live pools as they are, and a purged pool serves
 * again from a fresh zeroed page.
 */
TEST_F(heap, trim_purges_empty_pools_of_a_live_arena)
{
	__u64 offs[3 * 8], again[2 * 8], pages = 0, i;
	long long held = pya_param("pages_held");
	struct pya_kstats st;

	ASSERT_EQ(0, pya_alloc(self->fd, 512, 3 * 8, offs, NULL)); /* 3 pools */
	for (i = 0; i < 3 * 8; i++)
		pya_fill(self->map, offs[i], 512, i);
	ASSERT_EQ(0, pya_free(self->fd, offs + 8, 2 * 8, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(3, st.pages);
	EXPECT_EQ(2, st.pools_empty);
	ASSERT_EQ(0, pya_trim(self->fd, &pages));
	EXPECT_EQ(2, pages);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(1, st.pages);
	EXPECT_EQ(0, st.pools_empty);
	EXPECT_EQ(1, st.arenas_current);
	EXPECT_EQ(0, st.arenas_reclaimed);
	pya_check_stats(&st, &self->info);
	if (held >= 0)
		EXPECT_EQ(held + 1, pya_param("pages_held"));
	for (i = 0; i < 8; i++)
		EXPECT_TRUE(pya_check(self->map, offs[i], 512, i));
	/* Nothing left to purge. */
	ASSERT_EQ(0, pya_trim(self->fd, &pages));
	EXPECT_EQ(0, pages);
	/* The purged pools serve again, zeroed, before any new one. */
	ASSERT_EQ(0, pya_alloc(self->fd, 512, 2 * 8, again, NULL));
	for (i = 0; i < 2 * 8; i++) {
		EXPECT_LT(again[i] / PYA_PAGE, 3);
		EXPECT_TRUE(pya_is_zero(self->map, again[i], 512));
	}
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(3, st.pages);
	pya_check_stats(&st, &self->info);
	if (held >= 0)
		EXPECT_EQ(held + 3, pya_param("pages_held"));
}

/* A purged pool's page was mapped: it is gone from the mapping. */
TEST_F_SIGNAL(heap, trim_unmaps_purged_pools, SIGBUS)
{
	volatile char *p;
	__u64 offs[2 * 8];

	ASSERT_EQ(0, pya_alloc(self->fd, 512, 2 * 8, offs, NULL));
	p = (volatile char *)self->map + offs[8];
	*p = 1;
	ASSERT_EQ(0, pya_free(self->fd, offs + 8, 8, NULL));
	ASSERT_EQ(0, pya_trim(self->fd, NULL));
	*p = 2;
	TH_LOG("no SIGBUS after the pool was purged");
}

TEST_F(heap, trim_rejects_flags_and_reserved)
{
	struct pyalloc_trim t = { .flags = 1 };

	EXPECT_EQ(-EINVAL, pya_ioctl(self->fd, PYALLOC_IOC_TRIM, &t));
	t.flags = 0;
	t.reserved = 1;
	EXPECT_EQ(-EINVAL, pya_ioctl(self->fd, PYALLOC_IOC_TRIM, &t));
	t.reserved = 0;
	EXPECT_EQ(0, pya_ioctl(self->fd, PYALLOC_IOC_TRIM, &t));
}

TEST_F(heap, trim_bad_pointer_is_efault)
{
	void *ro = mmap(NULL, PYA_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);

	ASSERT_NE(MAP_FAILED, ro);
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_TRIM, NULL));
	EXPECT_EQ(-EFAULT, pya_ioctl(self->fd, PYALLOC_IOC_TRIM, ro));
	munmap(ro, PYA_PAGE);
}

PYALLOC_TEST_MAIN
