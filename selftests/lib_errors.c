// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libpyalloc: pointers the library does not own stop the program with a
 * clear message, like glibc's "free(): invalid pointer"; debug mode
 * catches double and invalid frees at the call site; without it a double
 * free is caught when the magazine goes back to the kernel.
 */
#include "lib_util.h"

static void free_stack(void *arg)
{
	void *p = pya_malloc(8);	/* the default heap exists */
	int local;

	(void)arg;
	pya_free(p);
	pya_free(&local);
}

static void free_libc(void *arg)
{
	(void)arg;
	pya_free(malloc(16));
}

static void free_misaligned(void *arg)
{
	char *p = pya_malloc(16);

	(void)arg;
	pya_free(p + 8);	/* a multiple of 8, not of the block size */
}

static void free_interior(void *arg)
{
	char *p = pya_malloc(100);

	(void)arg;
	pya_free(p + 1);
}

/* Inside the window, in a page the library never handed a block from. */
static void free_untouched_page(void *arg)
{
	char *p = pya_malloc(8);

	(void)arg;
	pya_free(p + 16 * 4096);
}

static void free_large_interior(void *arg)
{
	char *p = pya_malloc(100000);

	(void)arg;
	pya_free(p + 4096);
}

static void free_large_twice(void *arg)
{
	void *p = pya_malloc(100000);

	(void)arg;
	pya_free(p);
	pya_free(p);
}

static void realloc_invalid(void *arg)
{
	int local;

	(void)arg;
	pya_realloc(&local, 10);
}

static void realloc_invalid_large(void *arg)
{
	int local;

	(void)arg;
	pya_realloc(&local, 10000);
}

static void usable_size_invalid(void *arg)
{
	char *p = pya_malloc(48);

	(void)arg;
	pya_usable_size(p + 16);
}

static void heap_free_wrong_heap(void *arg)
{
	pya_heap_t *a = pya_heap_open(NULL), *b = pya_heap_open(NULL);

	(void)arg;
	pya_heap_free(b, pya_heap_malloc(a, 8));
}

static void heap_realloc_wrong_heap(void *arg)
{
	pya_heap_t *a = pya_heap_open(NULL), *b = pya_heap_open(NULL);

	(void)arg;
	pya_heap_realloc(b, pya_heap_malloc(a, 8), 16);
}

TEST(invalid_pointers_abort)
{
	EXPECT_ABORT(free_stack, NULL, "pya_free(): invalid pointer 0x");
	EXPECT_ABORT(free_libc, NULL, "pya_free(): invalid pointer 0x");
	EXPECT_ABORT(free_misaligned, NULL, "pya_free(): invalid pointer 0x");
	EXPECT_ABORT(free_interior, NULL, "pya_free(): invalid pointer 0x");
	EXPECT_ABORT(free_untouched_page, NULL, "pya_free(): invalid pointer 0x");
	EXPECT_ABORT(free_large_interior, NULL, "pya_free(): invalid pointer 0x");
	EXPECT_ABORT(free_large_twice, NULL, "pya_free(): invalid pointer 0x");
	EXPECT_ABORT(realloc_invalid, NULL, "pya_realloc(): invalid pointer 0x");
	EXPECT_ABORT(realloc_invalid_large, NULL, "pya_realloc(): invalid pointer 0x");
	EXPECT_ABORT(usable_size_invalid, NULL,
		     "pya_usable_size(): invalid pointer 0x");
	EXPECT_ABORT(heap_free_wrong_heap, NULL,
		     "pya_heap_free(): invalid pointer 0x");
	EXPECT_ABORT(heap_realloc_wrong_heap, NULL,
		     "pya_heap_realloc(): invalid pointer 0x");
}

static pya_heap_t *debug_heap(void)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;

	o.flags = PYA_HEAP_DEBUG;
	return pya_heap_open(&o);
}

static void debug_double_free(void *arg)
{
	pya_heap_t *h = debug_heap();
	void *p = pya_heap_malloc(h, 32);

	(void)arg;
	pya_heap_free(h, p);
	pya_heap_free(h, p);	/* the kernel says EINVAL right here */
	fprintf(stderr, "not caught at the call site\n");
}

static void env_debug_double_free(void *arg)
{
	void *p;

	(void)arg;
	setenv("PYALLOC_DEBUG", "1", 1);
	p = pya_malloc(200);
	pya_free(p);
	pya_free(p);
	fprintf(stderr, "not caught at the call site\n");
}

/* A freed block's page may since hold another class, or the block may be
 * in the middle of a class-table entry the library still trusts: only the
 * kernel knows, and in debug mode it is asked at once. */
static void debug_free_after_free_other_class(void *arg)
{
	pya_heap_t *h = debug_heap();
	void *p = pya_heap_malloc(h, 8), *q;

	(void)arg;
	pya_heap_free(h, p);
	q = pya_heap_malloc(h, 8);	/* may well be p again */
	pya_heap_free(h, q);
	pya_heap_free(h, p);
	fprintf(stderr, "not caught at the call site\n");
}

/* Freed again right away: caught at the call site even with magazines
 * (the newest entries of the magazine are compared). */
static void quick_double_free(void *arg)
{
	void *p = pya_malloc(32), *q = pya_malloc(32);

	(void)arg;
	pya_free(p);
	pya_free(q);
	pya_free(p);
	fprintf(stderr, "not caught at the call site\n");
}

/* Freed again after more frees of its class: still in the magazine, and
 * still caught at the call site (the block carries the key). */
static void deep_double_free(void *arg)
{
	void *p = pya_malloc(32), *q[40];
	int i;

	(void)arg;
	for (i = 0; i < 40; i++)
		q[i] = pya_malloc(32);
	pya_free(p);
	for (i = 0; i < 40; i++)
		pya_free(q[i]);
	pya_free(p);
	fprintf(stderr, "not caught at the call site\n");
}

/* realloc() of a freed block within its class would return it while it
 * sits in the magazine, to be handed out again: caught instead. */
static void realloc_after_free(void *arg)
{
	void *p = pya_malloc(32), *q = pya_malloc(32);

	(void)arg;
	pya_free(p);
	pya_free(q);
	p = pya_realloc(p, 30);
	fprintf(stderr, "not caught at the call site\n");
}

/* The same to another class: the free half of the move catches it. */
static void realloc_after_free_moving(void *arg)
{
	void *p = pya_malloc(32), *q = pya_malloc(32);

	(void)arg;
	pya_free(p);
	pya_free(q);
	p = pya_realloc(p, 200);
	fprintf(stderr, "not caught at the call site\n");
}

/* The program wrote into the block after freeing it, wiping the key: the
 * second free goes into the magazine, and the kernel catches the
 * duplicate when the magazine drains. */
static void late_double_free(void *arg)
{
	void *p = pya_malloc(32), *q[8];
	int i;

	(void)arg;
	for (i = 0; i < 8; i++)
		q[i] = pya_malloc(32);
	pya_free(p);
	for (i = 0; i < 8; i++)
		pya_free(q[i]);
	memset(p, 0x5a, 32);	/* use after free */
	pya_free(p);		/* both in the magazine... */
	pya_heap_flush(NULL);	/* ...and the kernel sees the duplicate */
	fprintf(stderr, "not caught at flush\n");
}

TEST(double_free_debug_mode)
{
	/* The message names the function that was called. */
	EXPECT_ABORT(debug_double_free, NULL,
		     "pya_heap_free(): double free or invalid pointer 0x");
	EXPECT_ABORT(env_debug_double_free, NULL,
		     "pya_free(): double free or invalid pointer 0x");
	EXPECT_ABORT(debug_free_after_free_other_class, NULL,
		     "pya_heap_free(): double free or invalid pointer 0x");
}

TEST(double_free_caught_at_call_site)
{
	EXPECT_ABORT(quick_double_free, NULL, "pya_free(): double free 0x");
	EXPECT_ABORT(deep_double_free, NULL, "pya_free(): double free 0x");
	EXPECT_ABORT(realloc_after_free, NULL,
		     "pya_realloc(): 0x");
	EXPECT_ABORT(realloc_after_free_moving, NULL,
		     "pya_realloc(): double free 0x");
}

TEST(double_free_caught_at_flush)
{
	EXPECT_ABORT(late_double_free, NULL, "PYALLOC_DEBUG=1");
}

/* In debug mode every operation is one ioctl and nothing is cached. */
TEST(debug_mode_is_direct)
{
	pya_heap_t *h = debug_heap();
	struct pya_stats st;
	void *p[100];
	int i;

	ASSERT_NE(NULL, h);
	for (i = 0; i < 100; i++) {
		p[i] = pya_heap_malloc(h, 1 + i);
		ASSERT_NE(NULL, p[i]);
	}
	for (i = 0; i < 100; i++)
		pya_heap_free(h, p[i]);
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_EQ(100, st.ioctl_alloc);
	EXPECT_EQ(100, st.ioctl_free);
	EXPECT_EQ(200, st.direct_ops);
	EXPECT_EQ(0, st.blocks_cached);
	EXPECT_EQ(100, st.kernel_alloc_calls);
	EXPECT_EQ(0, lib_kernel_blocks(h));
	EXPECT_EQ(0, pya_heap_close(h));
}

#ifdef PYA_FAKE_DEVICE
/*
 * A kernel that answers an offset outside the window (its bug, or a reply
 * corrupted on the way) must stop the library before it hands out a
 * pointer into whatever lies past the window.  The bad offset is the
 * batch's first, which the library converts last, after a run of good
 * blocks of one page: the check is per page of the batch, not only on its
 * first block.  Only the host's stand-in can answer such a thing.
 */
static void alloc_bad_offset(void *arg)
{
	pya_heap_t *h = pya_heap_open(NULL);

	/* Without a heap of its own the default heap's magazine might serve
	 * the malloc, and the armed offset would reach another test. */
	if (!h)
		abort();
	fakedev_bad_alloc_offset(*(const uint64_t *)arg);
	fprintf(stderr, "not caught: %p\n", pya_heap_malloc(h, 64));
}

TEST(kernel_offset_outside_window_aborts)
{
	static const uint64_t bad[] = {
		FAKEDEV_WINDOW,			/* the first byte past it */
		FAKEDEV_WINDOW + 4096 + 64,	/* a block a page further */
		UINT64_MAX - 63,		/* wraps when added to base */
	};
	pya_heap_t *h = pya_heap_open(NULL);
	void *p;
	unsigned int i;

	/* What the test counts on: one 64-byte malloc on a fresh heap takes
	 * a batch of several blocks, so the bad offset comes after others. */
	ASSERT_NE(NULL, h);
	p = pya_heap_malloc(h, 64);
	ASSERT_NE(NULL, p);
	EXPECT_LT(8, lib_kernel_blocks(h));
	pya_heap_free(h, p);
	EXPECT_EQ(0, pya_heap_close(h));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_ABORT(alloc_bad_offset, (void *)&bad[i],
			     "pyalloc: kernel offset 0x");
}
#endif

LIB_TEST_MAIN
