// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libpyalloc: each API function and each error path that returns (the
 * paths that abort are in lib_errors.c).
 */
#include "lib_util.h"

#include <stdalign.h>
#include <stddef.h>

TEST(malloc_every_size)
{
	size_t n;

	for (n = 0; n <= 1200; n++) {
		void *p = pya_malloc(n);

		ASSERT_NE(NULL, p);
		if (n <= PYA_SMALL_MAX) {
			size_t bs = lib_round(n, 8);

			EXPECT_EQ(bs, pya_usable_size(p));
			/* aligned to the largest power of two dividing bs */
			EXPECT_EQ(0, (uintptr_t)p % (bs & -bs));
		} else {
			EXPECT_LE(n, pya_usable_size(p));
			EXPECT_EQ(0, (uintptr_t)p % 4096);
		}
		lib_fill(p, pya_usable_size(p), n);
		EXPECT_EQ(SIZE_MAX, lib_check(p, pya_usable_size(p), n));
		pya_free(p);
	}
}

/* The seed's examples: 6 bytes -> an 8-byte block, 42 -> 48. */
TEST(seed_examples)
{
	void *a = pya_malloc(6), *b = pya_malloc(42);

	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	EXPECT_EQ(8, pya_usable_size(a));
	EXPECT_EQ(48, pya_usable_size(b));
	pya_free(a);
	pya_free(b);
}

TEST(malloc_zero_is_unique)
{
	void *a = pya_malloc(0), *b = pya_malloc(0);

	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	EXPECT_NE(a, b);
	pya_free(a);
	pya_free(b);
}

TEST(free_null_and_usable_null)
{
	pya_free(NULL);
	pya_heap_free(NULL, NULL);
	EXPECT_EQ(0, pya_usable_size(NULL));
}

TEST(granularity_16)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;
	struct pya_stats st;
	pya_heap_t *h;
	size_t n;

	o.granularity = 16;
	h = pya_heap_open(&o);
	ASSERT_NE(NULL, h);
	for (n = 1; n <= PYA_SMALL_MAX; n++) {
		void *p = pya_heap_malloc(h, n);

		ASSERT_NE(NULL, p);
		EXPECT_EQ(lib_round(n, 16), pya_usable_size(p));
		EXPECT_EQ(0, (uintptr_t)p % alignof(max_align_t));
		pya_heap_free(h, p);
	}
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_EQ(16, st.granularity);
	EXPECT_EQ(32, st.num_classes);
	EXPECT_EQ(0, pya_heap_close(h));
}

TEST(calloc_zeroes_reused_blocks)
{
	enum { N = 300 };
	void *p[N];
	int i;

	/* Dirty blocks, free them (into the magazine, or the kernel), then
	 * calloc the same class: reused blocks are not zeroed by anyone else. */
	for (i = 0; i < N; i++) {
		p[i] = pya_malloc(64);
		ASSERT_NE(NULL, p[i]);
		memset(p[i], 0xff, 64);
	}
	for (i = 0; i < N; i++)
		pya_free(p[i]);
	pya_heap_flush(NULL);
	for (i = 0; i < N; i++) {
		unsigned char *c = pya_calloc(8, 8);
		int j;

		ASSERT_NE(NULL, c);
		for (j = 0; j < 64; j++)
			ASSERT_EQ(0, c[j]);
		p[i] = c;
	}
	for (i = 0; i < N; i++)
		pya_free(p[i]);
}

TEST(calloc_large_and_overflow)
{
	unsigned char *p = pya_calloc(1000, 1000);
	size_t i;

	ASSERT_NE(NULL, p);
	for (i = 0; i < 1000000; i += 4093)
		ASSERT_EQ(0, p[i]);
	pya_free(p);
	errno = 0;
	EXPECT_EQ(NULL, pya_calloc(SIZE_MAX / 2, 3));
	EXPECT_EQ(ENOMEM, errno);
	p = pya_calloc(0, 5);
	EXPECT_NE(NULL, p);
	pya_free(p);
}

/* Grow one byte at a time through every class into the large range and
 * back down, checking that the contents survive every move. */
TEST(realloc_across_classes)
{
	size_t n, keep = 1;
	char *p = pya_malloc(1);

	ASSERT_NE(NULL, p);
	p[0] = (char)lib_pat(7, 0);
	for (n = 2; n <= 5000; keep = n, n += (n < 600 ? 1 : 397)) {
		p = pya_realloc(p, n);
		ASSERT_NE(NULL, p);
		ASSERT_EQ(SIZE_MAX, lib_check(p, keep, 7));
		lib_fill(p, n, 7);
	}
	for (n = 4900; n >= 1; n -= (n > 600 ? 397 : 1)) {
		p = pya_realloc(p, n);
		ASSERT_NE(NULL, p);
		ASSERT_EQ(SIZE_MAX, lib_check(p, n, 7));
		if (n <= PYA_SMALL_MAX)
			EXPECT_EQ(lib_round(n, 8), pya_usable_size(p));
	}
	pya_free(p);
}

TEST(realloc_in_place_and_edges)
{
	void *p = pya_malloc(20), *q;

	ASSERT_NE(NULL, p);
	/* 20 and 24 share the 24-byte class: no move. */
	EXPECT_EQ(p, pya_realloc(p, 24));
	/* realloc(NULL, n) is malloc(n). */
	q = pya_realloc(NULL, 100);
	ASSERT_NE(NULL, q);
	EXPECT_EQ(104, pya_usable_size(q));
	/* realloc(p, 0) returns a minimal block, like malloc(0). */
	q = pya_realloc(q, 0);
	ASSERT_NE(NULL, q);
	EXPECT_EQ(8, pya_usable_size(q));
	pya_free(q);
	pya_free(p);
}

TEST(large_realloc)
{
	char *p = pya_malloc(1000);

	ASSERT_NE(NULL, p);
	lib_fill(p, 1000, 3);
	p = pya_realloc(p, 1 << 20);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(SIZE_MAX, lib_check(p, 1000, 3));
	EXPECT_EQ(1 << 20, pya_usable_size(p));
	lib_fill(p, 1 << 20, 4);
	p = pya_realloc(p, 3000);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(SIZE_MAX, lib_check(p, 3000, 4));
	EXPECT_EQ(4096, pya_usable_size(p));
	p = pya_realloc(p, 100);	/* into the heap */
	ASSERT_NE(NULL, p);
	ASSERT_EQ(SIZE_MAX, lib_check(p, 100, 4));
	EXPECT_EQ(104, pya_usable_size(p));
	pya_free(p);
}

TEST(many_large_blocks)
{
	enum { N = 2000 };
	static void *p[N];
	unsigned int seed = 1;
	int i, round;

	/* Enough to grow the large-block registry several times, and free in
	 * random order to exercise its deletion. */
	for (i = 0; i < N; i++) {
		p[i] = pya_malloc(513 + i % 9000);
		ASSERT_NE(NULL, p[i]);
		*(int *)p[i] = i;
	}
	for (round = 0; round < 3 * N; round++) {
		i = rand_r(&seed) % N;
		if (p[i]) {
			ASSERT_EQ(i, *(int *)p[i]);
			pya_free(p[i]);
			p[i] = NULL;
		} else {
			p[i] = pya_malloc(513 + rand_r(&seed) % 20000);
			ASSERT_NE(NULL, p[i]);
			*(int *)p[i] = i;
		}
	}
	for (i = 0; i < N; i++) {
		if (p[i])
			ASSERT_EQ(i, *(int *)p[i]);
		pya_free(p[i]);
	}
}

TEST(aligned_alloc_alignments)
{
	static const size_t sizes[] = { 0, 1, 7, 100, 500, 512, 513, 5000 };
	size_t align, i;

	for (align = 1; align <= 65536; align *= 2) {
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			void *p = pya_aligned_alloc(align, sizes[i]);

			ASSERT_NE(NULL, p);
			EXPECT_EQ(0, (uintptr_t)p % align) {
				TH_LOG("align %zu size %zu -> %p", align, sizes[i], p);
			}
			EXPECT_LE(sizes[i], pya_usable_size(p));
			memset(p, 0x11, sizes[i]);
			pya_free(p);
		}
	}
}

TEST(aligned_alloc_einval)
{
	errno = 0;
	EXPECT_EQ(NULL, pya_aligned_alloc(0, 8));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(NULL, pya_aligned_alloc(24, 48));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(NULL, pya_heap_aligned_alloc(NULL, 3, 8));
	EXPECT_EQ(EINVAL, errno);
}

TEST(explicit_heaps)
{
	pya_heap_t *a = pya_heap_open(NULL), *b = pya_heap_open(NULL);
	void *pa, *pb, *pd, *q;

	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	EXPECT_NE(a, b);
	pa = pya_heap_malloc(a, 40);
	pb = pya_heap_calloc(b, 5, 8);
	pd = pya_heap_malloc(NULL, 40);		/* the default heap */
	ASSERT_NE(NULL, pa);
	ASSERT_NE(NULL, pb);
	ASSERT_NE(NULL, pd);
	EXPECT_EQ(pya_default_heap() != NULL, 1);
	q = pya_heap_aligned_alloc(a, 64, 10);
	ASSERT_NE(NULL, q);
	EXPECT_EQ(0, (uintptr_t)q % 64);
	pa = pya_heap_realloc(a, pa, 300);
	ASSERT_NE(NULL, pa);
	EXPECT_EQ(304, pya_usable_size(pa));
	/* pya_free finds the owning heap of any block. */
	pya_free(pa);
	pya_heap_free(b, pb);
	pya_heap_free(NULL, pd);
	pya_heap_free(a, q);
	EXPECT_EQ(0, pya_heap_close(a));
	EXPECT_EQ(0, pya_heap_close(b));
}

TEST(heap_options_einval)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;
	struct {
		struct pya_heap_options o;
		uint64_t future;
	} big = { PYA_HEAP_OPTIONS_INIT, 0 };

	o.granularity = 12;
	errno = 0;
	EXPECT_EQ(NULL, pya_heap_open(&o));
	EXPECT_EQ(EINVAL, errno);

	o.granularity = 8;
	o.flags = 0x80;
	errno = 0;
	EXPECT_EQ(NULL, pya_heap_open(&o));
	EXPECT_EQ(EINVAL, errno);

	o.flags = 0;
	o.size = 4;
	errno = 0;
	EXPECT_EQ(NULL, pya_heap_open(&o));
	EXPECT_EQ(EINVAL, errno);

	o.size = sizeof(o);
	o.mem_limit = UINT64_MAX;	/* limits can only be lowered */
	errno = 0;
	EXPECT_EQ(NULL, pya_heap_open(&o));
	EXPECT_EQ(EINVAL, errno);

	/* A newer, larger options struct: fine while the tail is zero. */
	big.o.size = sizeof(big);
	pya_heap_t *h = pya_heap_open(&big.o);

	ASSERT_NE(NULL, h);
	EXPECT_EQ(0, pya_heap_close(h));
	big.future = 1;
	errno = 0;
	EXPECT_EQ(NULL, pya_heap_open(&big.o));
	EXPECT_EQ(EINVAL, errno);

	o.mem_limit = 0;
	o.decay_ms = PYA_DECAY_MAX_MS + 1;
	errno = 0;
	EXPECT_EQ(NULL, pya_heap_open(&o));
	EXPECT_EQ(EINVAL, errno);

	o.decay_ms = 0;
	o.reserved = 1;
	errno = 0;
	EXPECT_EQ(NULL, pya_heap_open(&o));
	EXPECT_EQ(EINVAL, errno);
	o.reserved = 0;

	/* The struct as it was before decay_ms: accepted, default decay. */
	o.decay_ms = 0;
	o.size = offsetof(struct pya_heap_options, decay_ms);
	h = pya_heap_open(&o);
	ASSERT_NE(NULL, h);
	EXPECT_EQ(0, pya_heap_close(h));
}

TEST(heap_close_einval)
{
	errno = 0;
	EXPECT_EQ(-1, pya_heap_close(NULL));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_NE(NULL, pya_default_heap());
	errno = 0;
	EXPECT_EQ(-1, pya_heap_close(pya_default_heap()));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(-1, pya_heap_stats(NULL, NULL));
	EXPECT_EQ(EINVAL, errno);
	errno = 0;
	EXPECT_EQ(-1, pya_print_stats(NULL));
	EXPECT_EQ(EINVAL, errno);
}

/* At the memory limit: NULL + ENOMEM, and every page is still usable
 * (the library shrinks its batch down to one block before giving up). */
TEST(mem_limit_enomem)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;
	enum { LIMIT = 64 << 10, MAX = LIMIT / 512 };
	void *p[MAX + 1];
	struct pya_stats st;
	int n, i;
	pya_heap_t *h;

	o.mem_limit = LIMIT;
	h = pya_heap_open(&o);
	ASSERT_NE(NULL, h);
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_EQ(LIMIT, st.mem_limit);
	for (n = 0; n <= MAX; n++) {
		errno = 0;
		p[n] = pya_heap_malloc(h, 512);
		if (!p[n])
			break;
	}
	EXPECT_EQ(ENOMEM, errno);
	EXPECT_LT(0, n);
	EXPECT_GE(MAX, n);
	TH_LOG("%d blocks of 512 bytes under a %d-byte limit", n, LIMIT);
	/* Large blocks are the OS's, not limited by the heap. */
	void *big = pya_heap_malloc(h, 1 << 20);

	EXPECT_NE(NULL, big);
	pya_free(big);
	for (i = 0; i < n; i++)
		pya_heap_free(h, p[i]);
	pya_heap_flush(h);
	p[0] = pya_heap_malloc(h, 512);
	EXPECT_NE(NULL, p[0]);
	pya_heap_free(h, p[0]);
	EXPECT_EQ(0, pya_heap_close(h));
}

TEST(too_many_heaps)
{
	static pya_heap_t *h[PYA_MAX_HEAPS + 1];
	int n, i;

	for (n = 0; n <= PYA_MAX_HEAPS; n++) {
		errno = 0;
		h[n] = pya_heap_open(NULL);
		if (!h[n])
			break;
	}
	EXPECT_GE(PYA_MAX_HEAPS, n);
	if (n == PYA_MAX_HEAPS)
		EXPECT_EQ(EMFILE, errno);
	TH_LOG("%d heaps open, then %s", n, strerror(errno));
	/* All usable at once, each with its own magazines. */
	for (i = 0; i < n; i++) {
		void *p = pya_heap_malloc(h[i], 8 * (i % 64) + 1);

		ASSERT_NE(NULL, p);
		pya_free(p);
	}
	for (i = 0; i < n; i++)
		EXPECT_EQ(0, pya_heap_close(h[i]));
	/* Slots are reused. */
	h[0] = pya_heap_open(NULL);
	ASSERT_NE(NULL, h[0]);
	EXPECT_EQ(0, pya_heap_close(h[0]));
}

TEST(stats_and_table)
{
	enum { N = 1000 };
	void *p[N];
	struct pya_stats st;
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int i;

	for (i = 0; i < N; i++) {
		p[i] = pya_malloc(1 + i % 512);
		ASSERT_NE(NULL, p[i]);
	}
	ASSERT_EQ(0, pya_heap_stats(NULL, &st));
	EXPECT_EQ(8, st.granularity);
	EXPECT_EQ(64, st.num_classes);
	EXPECT_EQ(N, st.small_allocs);
	EXPECT_EQ(N, lib_live_blocks(NULL));
	EXPECT_LE(1, st.arenas_current);
	EXPECT_LE(st.arenas_current, st.arenas_highwater);
	EXPECT_EQ(st.ioctl_alloc, st.mag_misses);
	EXPECT_LE(st.ioctl_alloc + st.ioctl_free, st.ioctls);
	/* The kernel's byte totals agree with its class table. */
	uint64_t bytes = 0;

	for (i = 0; i < (int)st.num_classes; i++)
		bytes += st.classes[i].blocks_in_use * st.classes[i].block_size;
	EXPECT_EQ(bytes, st.bytes_in_use);

	f = open_memstream(&text, &len);
	ASSERT_NE(NULL, f);
	ASSERT_EQ(0, pya_print_stats(f));
	fclose(f);
	EXPECT_NE(NULL, strstr(text, "Small block threshold = 512, in 64 size classes."));
	EXPECT_NE(NULL, strstr(text, "class   size   num pools   blocks in use  avail blocks\n"
				     "-----   ----   ---------   -------------  ------------\n"));
	EXPECT_NE(NULL, strstr(text, "# arenas allocated total           ="));
	EXPECT_NE(NULL, strstr(text, "# bytes lost to quantization       ="));
	EXPECT_NE(NULL, strstr(text, "\nTotal                              ="));
	/* class 0 (8 bytes): sizes 1..8 twice (i % 512 in 0..7). */
	EXPECT_NE(NULL, strstr(text, "\n    0      8           1              16")) {
		TH_LOG("%s", text);
	}
	free(text);
	for (i = 0; i < N; i++)
		pya_free(p[i]);
	ASSERT_EQ(0, pya_heap_stats(NULL, &st));
	EXPECT_EQ(N, st.small_frees);
	EXPECT_EQ(0, lib_live_blocks(NULL));
}

TEST(flush_returns_blocks)
{
	pya_heap_t *h = pya_heap_open(NULL);
	struct pya_stats st;
	void *p[100];
	int i;

	ASSERT_NE(NULL, h);
	for (i = 0; i < 100; i++)
		p[i] = pya_heap_malloc(h, 24);
	for (i = 0; i < 100; i++)
		pya_heap_free(h, p[i]);
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_LT(0, st.blocks_cached);
	EXPECT_EQ(st.blocks_cached, st.classes[2].blocks_cached);
	EXPECT_EQ(0, pya_heap_flush(h));
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_EQ(0, st.blocks_cached);
	EXPECT_EQ(0, lib_kernel_blocks(h));
	EXPECT_EQ(0, pya_heap_close(h));
}

#ifndef PYA_FAKE_DEVICE
/*
 * Trim: after everything is freed the kernel holds no page for the heap.
 * Without a decay the heap keeps exactly one empty arena, and no timer
 * gives it back before the trim does (the default decay of 500 ms could,
 * on a slow guest).
 */
TEST(trim_returns_every_page)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;
	struct pya_stats st;
	static void *p[3000];
	pya_heap_t *h;
	int i;

	o.flags = PYA_HEAP_NO_DECAY;
	h = pya_heap_open(&o);
	ASSERT_NE(NULL, h);
	for (i = 0; i < 3000; i++) {
		p[i] = pya_heap_malloc(h, 24 + i % 400);
		ASSERT_NE(NULL, p[i]);
	}
	for (i = 0; i < 3000; i++)
		pya_heap_free(h, p[i]);
	EXPECT_EQ(0, pya_heap_flush(h));
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_EQ(0, st.bytes_in_use);
	EXPECT_LT(0, st.pages);		/* the kept empty arena */
	EXPECT_EQ(0, pya_heap_trim(h));
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_EQ(0, st.pages);
	EXPECT_EQ(0, st.arenas_current);
	/* It works on. */
	p[0] = pya_heap_malloc(h, 24);
	ASSERT_NE(NULL, p[0]);
	pya_heap_free(h, p[0]);
	EXPECT_EQ(0, pya_heap_close(h));
}
#endif

#ifndef PYA_FAKE_DEVICE
/* One wave: 20,000 blocks of 200 bytes (about 16 arenas), all freed. */
static uint64_t pages_after_wave(pya_heap_t *h)
{
	static void *p[20000];
	struct pya_stats st;
	int i;

	for (i = 0; i < 20000; i++) {
		p[i] = pya_heap_malloc(h, 200);
		if (!p[i])
			return 0;
	}
	for (i = 0; i < 20000; i++)
		pya_heap_free(h, p[i]);
	pya_heap_flush(h);
	if (pya_heap_stats(h, &st))
		return 0;
	return st.pages;
}

/* Pages the heap holds once they stop changing (at most @ms). */
static uint64_t pages_settled(pya_heap_t *h, int ms)
{
	struct pya_stats st = { 0 };

	for (; ms > 0; ms -= 50) {
		if (pya_heap_stats(h, &st) == 0 && st.pages == 0)
			break;
		usleep(50 * 1000);
	}
	return st.pages;
}

/*
 * Decay: the arenas of a wave stay, pages and all, so the next wave finds
 * them; decay_ms later they go back.  PYA_HEAP_NO_DECAY keeps one at most.
 * Nothing here depends on how fast the machine is: the reuse is checked
 * with a decay of a minute, the release by waiting (up to 30 s) for a
 * decay of 200 ms.
 */
TEST(decay_keeps_arenas_then_gives_them_back)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;
	struct pya_stats st, st2;
	pya_heap_t *h;
	uint64_t kept;

	o.decay_ms = PYA_DECAY_MAX_MS;
	h = pya_heap_open(&o);
	ASSERT_NE(NULL, h);
	kept = pages_after_wave(h);
	EXPECT_LT(8 * 64, kept);	/* many arenas of 64 pages */
	/* A second wave reuses them: no arena is made or given back. */
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_EQ(0, st.arenas_reclaimed);
	EXPECT_LE(kept, pages_after_wave(h));
	ASSERT_EQ(0, pya_heap_stats(h, &st2));
	EXPECT_EQ(st.arenas_allocated, st2.arenas_allocated);
	EXPECT_EQ(0, st2.arenas_reclaimed);
	EXPECT_EQ(0, pya_heap_close(h));

	o.decay_ms = 200;
	h = pya_heap_open(&o);
	ASSERT_NE(NULL, h);
	pages_after_wave(h);
	EXPECT_EQ(0, pages_settled(h, 30000));
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_EQ(st.arenas_allocated, st.arenas_reclaimed);
	EXPECT_EQ(0, pya_heap_close(h));

	o.decay_ms = 0;
	o.flags = PYA_HEAP_NO_DECAY;
	h = pya_heap_open(&o);
	ASSERT_NE(NULL, h);
	EXPECT_GE(64, pages_after_wave(h));	/* pymalloc's one kept arena */
	EXPECT_EQ(0, pya_heap_close(h));
}
#endif

#ifdef PYA_FAKE_DEVICE
/* Without the device, small requests fail with ENODEV; large ones, which
 * never touch it, still work. */

TEST(no_device_enodev)
{
	void *p;

	fakedev_set_open_error(ENODEV);
	errno = 0;
	EXPECT_EQ(NULL, pya_malloc(8));
	EXPECT_EQ(ENODEV, errno);
	errno = 0;
	EXPECT_EQ(NULL, pya_calloc(1, 8));
	EXPECT_EQ(ENODEV, errno);
	errno = 0;
	EXPECT_EQ(NULL, pya_heap_open(NULL));
	EXPECT_EQ(ENODEV, errno);
	errno = 0;
	EXPECT_EQ(NULL, pya_default_heap());
	EXPECT_EQ(ENODEV, errno);
	p = pya_malloc(4096);
	EXPECT_NE(NULL, p);
	pya_free(p);
	fakedev_set_open_error(0);
}

/* A transient ioctl failure surfaces as NULL + errno, nothing leaks. */
TEST(alloc_ioctl_failure)
{
	pya_heap_t *h = pya_heap_open(NULL);
	void *p;

	ASSERT_NE(NULL, h);
	fakedev_fail_ioctl(PYALLOC_IOC_ALLOC, EFAULT, 1);
	errno = 0;
	EXPECT_EQ(NULL, pya_heap_malloc(h, 8));
	EXPECT_EQ(EFAULT, errno);
	p = pya_heap_malloc(h, 8);
	EXPECT_NE(NULL, p);
	pya_heap_free(h, p);
	EXPECT_EQ(0, pya_heap_close(h));
}
#endif

LIB_TEST_MAIN
