// SPDX-License-Identifier: GPL-2.0
/*
 * The heap window in user space: which mmap calls are refused (private,
 * beyond the window, growth by mremap), SIGBUS where no live pool backs an
 * offset (a slot never used, an unused pool, a released arena, through every
 * mapping), arenas released when emptied with their pages returned and
 * fresh (zeroed) pages when the window slot is used again, and a mapping
 * keeping its heap alive after close().
 */
#include "pyalloc_util.h"

PYA_HEAP_FIXTURE(heap)

/* Blocks of 512 bytes: a pool holds 8, an arena pools_per_arena * 8. */
#define BIG_BLOCK	512

static __u64 blocks_per_arena(const struct pyalloc_info *info)
{
	return (__u64)info->pools_per_arena * (info->pool_size / BIG_BLOCK);
}

/*
 * Fill @n arenas with 512-byte blocks and write a pattern to each (faulting
 * every page in).  Returns the offsets (malloc'd) and sets *count.
 */
static __u64 *fill_arenas(struct __test_metadata *_metadata, int fd,
			  const struct pyalloc_info *info, char *map,
			  unsigned int n, __u64 *count)
{
	__u64 total = n * blocks_per_arena(info), i;
	struct pya_kstats st;
	__u64 *offs;

	offs = malloc(total * sizeof(*offs));
	if (!offs)
		return NULL;
	if (pya_alloc_n(fd, BIG_BLOCK, total, offs)) {
		free(offs);
		return NULL;
	}
	for (i = 0; i < total; i++)
		pya_fill(map, offs[i], BIG_BLOCK, 3);
	if (pya_stats(fd, &st) == 0) {
		EXPECT_EQ(n, st.arenas_current);
		EXPECT_EQ((__u64)n * info->pools_per_arena, st.pages);
		EXPECT_EQ(total, st.cls[BIG_BLOCK / 8 - 1].blocks_in_use);
		pya_check_stats(&st, info);
	}
	*count = total;
	return offs;
}

TEST_F(heap, map_private_einval)
{
	void *p;

	/* Small: a large private writable mapping may fail commit first. */
	p = mmap(NULL, self->info.arena_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE, self->fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, PYA_PAGE, PROT_READ, MAP_PRIVATE, self->fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(heap, map_beyond_window_einval)
{
	const __u64 w = self->info.window_size;
	struct { __u64 off, len; } bad[] = {
		{ 0, w + PYA_PAGE },
		{ w - PYA_PAGE, 2 * PYA_PAGE },
		{ w, PYA_PAGE },
		{ w + self->info.arena_size, PYA_PAGE },
		{ self->info.arena_size, w },
	};
	unsigned int n;

	for (n = 0; n < sizeof(bad) / sizeof(bad[0]); n++) {
		void *p = mmap(NULL, bad[n].len, PROT_READ | PROT_WRITE,
			       MAP_SHARED, self->fd, bad[n].off);

		EXPECT_EQ(MAP_FAILED, p) TH_LOG("offset %#llx length %#llx",
						(unsigned long long)bad[n].off,
						(unsigned long long)bad[n].len);
		if (p == MAP_FAILED) {
			EXPECT_EQ(EINVAL, errno);
		} else {
			munmap(p, bad[n].len);
		}
	}
	/* The last page alone is inside the window. */
	{
		void *p = mmap(NULL, PYA_PAGE, PROT_READ | PROT_WRITE,
			       MAP_SHARED, self->fd, w - PYA_PAGE);

		EXPECT_NE(MAP_FAILED, p);
		if (p != MAP_FAILED)
			munmap(p, PYA_PAGE);
	}
}

/* A mapping of part of the window sees the same pages at the same offsets. */
TEST_F(heap, map_subrange_shares_pages)
{
	__u64 off, pool;
	char *p;

	ASSERT_EQ(0, pya_alloc(self->fd, 256, 1, &off, NULL));
	pya_fill(self->map, off, 256, 11);
	pool = off & ~(__u64)(self->info.pool_size - 1);
	p = mmap(NULL, PYA_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
		 self->fd, pool);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_TRUE(pya_check(p - pool, off, 256, 11));
	pya_fill(p - pool, off, 256, 12);
	EXPECT_TRUE(pya_check(self->map, off, 256, 12));
	munmap(p, PYA_PAGE);
}

TEST_F(heap, mremap_grow_fails)
{
	__u64 off;
	void *p;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &off, NULL));
	pya_fill(self->map, off, 8, 1);
	p = mremap(self->map, self->info.window_size,
		   self->info.window_size + PYA_PAGE, MREMAP_MAYMOVE);
	EXPECT_EQ(MAP_FAILED, p);
	if (p != MAP_FAILED) {
		self->map = p;
		return;
	}
	/* A sub-range mapping cannot grow in place either. */
	p = mmap(NULL, PYA_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
		 self->fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(MAP_FAILED, mremap(p, PYA_PAGE, 2 * PYA_PAGE, 0));
	EXPECT_EQ(MAP_FAILED, mremap(p, PYA_PAGE, 2 * PYA_PAGE,
				     MREMAP_MAYMOVE));
	munmap(p, PYA_PAGE);
	/* The original mapping is untouched. */
	EXPECT_TRUE(pya_check(self->map, off, 8, 1));
}

/* No arena at all: the first page of the window has nothing behind it. */
TEST_F_SIGNAL(heap, sigbus_empty_heap, SIGBUS)
{
	volatile char *p = self->map;

	(void)*p;
}

/* One arena in slot 0: slot 1 was never used. */
TEST_F_SIGNAL(heap, sigbus_unused_arena_slot, SIGBUS)
{
	volatile char *p;
	__u64 off;

	ASSERT_LT(self->info.arena_size, self->info.window_size);
	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &off, NULL));
	pya_fill(self->map, off, 8, 1);
	ASSERT_LT(off, self->info.arena_size);
	p = self->map + self->info.arena_size + off;
	(void)*p;
}

/* The last page of the window, far from any arena, written to. */
TEST_F_SIGNAL(heap, sigbus_window_end_write, SIGBUS)
{
	volatile char *p;
	__u64 off;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &off, NULL));
	p = self->map + self->info.window_size - 1;
	*p = 1;
}

/* A live arena, but a pool in it that never held a block. */
TEST_F_SIGNAL(heap, sigbus_unused_pool, SIGBUS)
{
	volatile char *p;
	__u64 off, last;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &off, NULL));
	pya_fill(self->map, off, 8, 1);
	last = (__u64)(self->info.pools_per_arena - 1) * self->info.pool_size;
	ASSERT_NE(off / self->info.pool_size, last / self->info.pool_size);
	p = self->map + last;
	(void)*p;
}

/*
 * Freeing everything releases all but one arena: its pages leave the heap
 * and the module, the arena counters say so.
 */
TEST_F(heap, release_returns_pages)
{
	long long held0 = pya_param("pages_held"), held1, held2;
	struct pya_kstats st;
	__u64 *offs, n;

	ASSERT_LE(0, held0);
	offs = fill_arenas(_metadata, self->fd, &self->info, self->map, 3, &n);
	ASSERT_NE(NULL, offs);
	held1 = pya_param("pages_held");
	EXPECT_EQ(held0 + 3 * self->info.pools_per_arena, held1);
	ASSERT_EQ(0, pya_free_n(self->fd, offs, n));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_LE(st.arenas_current, 1);
	EXPECT_GE(st.arenas_reclaimed, 2);
	EXPECT_EQ(3, st.arenas_highwater);
	EXPECT_EQ(3, st.arenas_allocated);
	EXPECT_LE(st.pages, self->info.pools_per_arena);
	EXPECT_EQ(0, st.bytes_in_use);
	EXPECT_EQ(0, pya_check_stats(&st, &self->info));
	held2 = pya_param("pages_held");
	EXPECT_EQ(held0 + (long long)st.pages, held2);
	EXPECT_GE(held1 - held2, 2LL * self->info.pools_per_arena);
	free(offs);
}

/* A released arena's pages are gone from a mapping that had them mapped. */
TEST_F_SIGNAL(heap, sigbus_released_arena, SIGBUS)
{
	const __u64 as = self->info.arena_size;
	struct pya_kstats st;
	__u64 *offs, n, a;

	offs = fill_arenas(_metadata, self->fd, &self->info, self->map, 3, &n);
	ASSERT_NE(NULL, offs);
	ASSERT_EQ(0, pya_free_n(self->fd, offs, n));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	ASSERT_LE(st.arenas_current, 1);
	/* At most one of the three slots is still backed. */
	for (a = 0; a < 3; a++) {
		volatile char *p = self->map + a * as + as / 2;

		(void)*p;
	}
	TH_LOG("no SIGBUS in any of the three released arena slots");
}

/* The same through a second mapping of the heap, made before the release. */
TEST_F_SIGNAL(heap, sigbus_released_arena_second_mapping, SIGBUS)
{
	const __u64 as = self->info.arena_size;
	__u64 *offs, n, a;
	char *map2;

	map2 = pya_map(self->fd, &self->info);
	ASSERT_NE(MAP_FAILED, map2);
	offs = fill_arenas(_metadata, self->fd, &self->info, self->map, 3, &n);
	ASSERT_NE(NULL, offs);
	/* Fault every arena into the second mapping too. */
	for (a = 0; a < 3; a++) {
		ASSERT_TRUE(pya_check(map2, offs[a * n / 3], BIG_BLOCK, 3));
	}
	for (a = 0; a < n; a += 8)
		(void)*(volatile char *)(map2 + offs[a]);
	ASSERT_EQ(0, pya_free_n(self->fd, offs, n));
	for (a = 0; a < 3; a++) {
		volatile char *p = map2 + a * as + as - 1;

		(void)*p;
	}
	TH_LOG("no SIGBUS in any of the three released arena slots");
}

/*
 * Reallocating after a release: the released slots come back with fresh,
 * zeroed pages (only the one kept arena may show old data).
 */
TEST_F(heap, released_arena_comes_back_zeroed)
{
	__u64 *offs, n, i, zero = 0, bpa = blocks_per_arena(&self->info);
	struct pya_kstats st;

	offs = fill_arenas(_metadata, self->fd, &self->info, self->map, 3, &n);
	ASSERT_NE(NULL, offs);
	ASSERT_EQ(0, pya_free_n(self->fd, offs, n));
	ASSERT_EQ(0, pya_alloc_n(self->fd, BIG_BLOCK, n, offs));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(3, st.arenas_current);
	for (i = 0; i < n; i++) {
		if (pya_is_zero(self->map, offs[i], BIG_BLOCK))
			zero++;
		else
			/* Old data is only allowed as it was written. */
			EXPECT_TRUE(pya_check(self->map, offs[i], BIG_BLOCK,
					      3));
	}
	EXPECT_GE(zero, 2 * bpa);
	free(offs);
}

/*
 * A half-used arena is not released when others empty, and its blocks stay
 * readable through the whole cycle.
 */
TEST_F(heap, live_arena_survives_release_of_others)
{
	__u64 *offs, n, i, keep, bpa = blocks_per_arena(&self->info);
	struct pya_kstats st;

	offs = fill_arenas(_metadata, self->fd, &self->info, self->map, 3, &n);
	ASSERT_NE(NULL, offs);
	/* Keep one block of the first arena allocated. */
	keep = offs[0];
	ASSERT_EQ(0, pya_free_n(self->fd, offs + 1, n - 1));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_GE(st.arenas_reclaimed, 1);
	EXPECT_LE(st.arenas_current, 2);
	EXPECT_EQ(1, st.cls[BIG_BLOCK / 8 - 1].blocks_in_use);
	EXPECT_TRUE(pya_check(self->map, keep, BIG_BLOCK, 3));
	/* Allocate it all again and check nothing overwrote the kept one. */
	ASSERT_EQ(0, pya_alloc_n(self->fd, BIG_BLOCK, 2 * bpa, offs));
	for (i = 0; i < 2 * bpa; i++) {
		ASSERT_NE(keep, offs[i]);
		pya_fill(self->map, offs[i], BIG_BLOCK, 4);
	}
	EXPECT_TRUE(pya_check(self->map, keep, BIG_BLOCK, 3));
	free(offs);
}

/* The mapping holds the heap: data survives close() until munmap(). */
TEST(mapping_outlives_close)
{
	long long heaps0 = pya_param("heaps"), held0 = pya_param("pages_held");
	struct pyalloc_info info;
	__u64 offs[16];
	unsigned int i;
	char *map;
	int fd;

	ASSERT_LE(0, heaps0);
	fd = pya_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pya_info(fd, &info));
	map = pya_map(fd, &info);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, pya_alloc(fd, 512, 16, offs, NULL));
	for (i = 0; i < 16; i++)
		pya_fill(map, offs[i], 512, i);
	close(fd);
	EXPECT_EQ(heaps0 + 1, pya_param("heaps"));
	EXPECT_EQ(held0 + 2, pya_param("pages_held"));
	for (i = 0; i < 16; i++) {
		EXPECT_TRUE(pya_check(map, offs[i], 512, i));
	}
	munmap(map, info.window_size);
	EXPECT_EQ(heaps0, pya_param("heaps"));
	EXPECT_EQ(held0, pya_param("pages_held"));
}

PYALLOC_TEST_MAIN
