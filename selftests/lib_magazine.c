// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libpyalloc magazines: the syscall budget (at most one ioctl per 256
 * operations in a steady workload, by the library's own counters), the
 * bound on what a thread may hoard, flushing on thread exit and heap close,
 * blocks freed by a thread other than the one that allocated them, and the
 * depot that hands batches of them back without a system call.
 */
#include <sys/resource.h>

#include "lib_util.h"

/*
 * Per class c of size s: at most M blocks in the thread's magazine and
 * 2 * B in the heap's depot, where B = clamp(16384 / s, 32, 64) and M the
 * largest B * 2^k with M <= 512 and M <= 262144 / s, at least 2 * B
 * (userspace/README.md, "Magazines").
 */
static unsigned int class_bound(unsigned int size)
{
	unsigned int b = 16384 / size, m;

	b = b > 64 ? 64 : b < 32 ? 32 : b;
	for (m = 2 * b; 2 * m <= 512 && 2 * m <= 262144 / size; m *= 2)
		;
	return m + 2 * b;
}

/*
 * A steady workload: a working set of N objects of random sizes across all
 * classes, each step freeing a random one and allocating a replacement.
 */
TEST(ioctls_per_operation)
{
	enum { N = 4096, WARM = 100000, STEPS = 400000 };
	static void *obj[N];
	struct pya_stats a, b;
	unsigned int seed = 12345;
	uint64_t ops, ioctls;
	int i, s;

	for (i = 0; i < N; i++)
		ASSERT_NE(NULL, obj[i] = pya_malloc(1 + rand_r(&seed) % 512));
	for (s = 0; s < WARM + STEPS; s++) {
		if (s == WARM)
			ASSERT_EQ(0, pya_heap_stats(NULL, &a));
		i = rand_r(&seed) % N;
		pya_free(obj[i]);
		obj[i] = pya_malloc(1 + rand_r(&seed) % 512);
		ASSERT_NE(NULL, obj[i]);
	}
	ASSERT_EQ(0, pya_heap_stats(NULL, &b));
	ops = (b.small_allocs + b.small_frees) - (a.small_allocs + a.small_frees);
	ioctls = (b.ioctl_alloc + b.ioctl_free) - (a.ioctl_alloc + a.ioctl_free);
	EXPECT_EQ(2 * STEPS, ops);
	/* A miss refills from the kernel or from the depot, a drain goes to
	 * one or the other: never more than one ioctl each. */
	EXPECT_LE(b.ioctl_alloc, b.mag_misses);
	EXPECT_LE(b.ioctl_free, b.free_drains);
	ksft_print_msg("steady state: %llu operations, %llu alloc/free ioctls, %.0f operations per ioctl\n",
		       (unsigned long long)ops, (unsigned long long)ioctls,
		       ioctls ? (double)ops / ioctls : (double)ops);
	EXPECT_LE(ioctls * 256, ops);
	for (i = 0; i < N; i++)
		pya_free(obj[i]);
}

/* Many frees of one class: the magazine keeps at most M blocks, and the
 * depot 2 * B more. */
TEST(magazine_is_bounded)
{
	enum { N = 5000 };
	static void *p[N];
	struct pya_stats st;
	unsigned int c;
	int i;

	for (i = 0; i < N; i++)
		ASSERT_NE(NULL, p[i] = pya_malloc(64));
	for (i = 0; i < N; i++)
		pya_free(p[i]);
	ASSERT_EQ(0, pya_heap_stats(NULL, &st));
	ASSERT_EQ(8, st.granularity);
	for (c = 0; c < st.num_classes; c++)
		EXPECT_GE(class_bound(8 * (c + 1)), st.classes[c].blocks_cached);
	EXPECT_LT(0, st.classes[7].blocks_cached);
	EXPECT_GE(class_bound(64), st.blocks_cached);
	/* Every class at once: still bounded by the per-class figure. */
	for (i = 0; i < N; i++)
		ASSERT_NE(NULL, p[i] = pya_malloc(1 + i % 512));
	for (i = 0; i < N; i++)
		pya_free(p[i]);
	ASSERT_EQ(0, pya_heap_stats(NULL, &st));
	for (c = 0; c < st.num_classes; c++)
		EXPECT_GE(class_bound(8 * (c + 1)), st.classes[c].blocks_cached);
	ksft_print_msg("%llu blocks cached after freeing %d blocks of all classes\n",
		       (unsigned long long)st.blocks_cached, N);
}

/*
 * A wave of allocations, then of frees: each trip of a streak doubles the
 * magazine up to M (512 blocks of 16 bytes), so the wave costs about N / M
 * system calls each way, not N / B; the magazine is bounded all the same.
 */
TEST(streaks_grow_to_the_kernel_batch)
{
	enum { N = 20000, M = 512 };
	pya_heap_t *h = pya_heap_open(NULL);
	struct pya_stats a, b;
	static void *p[N];
	int i;

	ASSERT_NE(NULL, h);
	ASSERT_EQ(0, pya_heap_stats(h, &a));
	for (i = 0; i < N; i++)
		ASSERT_NE(NULL, p[i] = pya_heap_malloc(h, 16));
	ASSERT_EQ(0, pya_heap_stats(h, &b));
	ksft_print_msg("%d allocations: %llu ALLOC ioctls\n", N,
		       (unsigned long long)(b.ioctl_alloc - a.ioctl_alloc));
	/* 64, 256, then 512 a trip. */
	EXPECT_GE(N / M + 4, b.ioctl_alloc - a.ioctl_alloc);
	EXPECT_LE(N / M, b.ioctl_alloc - a.ioctl_alloc);
	a = b;
	for (i = 0; i < N; i++)
		pya_heap_free(h, p[i]);
	ASSERT_EQ(0, pya_heap_stats(h, &b));
	ksft_print_msg("%d frees: %llu FREE ioctls\n", N,
		       (unsigned long long)(b.ioctl_free - a.ioctl_free));
	EXPECT_GE(N / M + 4, b.ioctl_free - a.ioctl_free);
	EXPECT_GE(class_bound(16), b.classes[1].blocks_cached);
	EXPECT_EQ(0, pya_heap_flush(h));
	EXPECT_EQ(0, lib_kernel_blocks(h));
	EXPECT_EQ(0, pya_heap_close(h));
}

/*
 * A class's first refill takes B blocks and leaves the magazine at 2 * B;
 * the next one, a streak, fills those 2 * B: B + 1 allocations cache at
 * most 2 * B blocks more.  Only what comes after grows the magazine.
 */
TEST(first_refills_take_two_batches)
{
	enum { B = 64 };	/* B(c) of a 24-byte class */
	pya_heap_t *h = pya_heap_open(NULL);
	struct pya_stats st;
	static void *p[B + 1];
	int i;

	ASSERT_NE(NULL, h);
	for (i = 0; i < B + 1; i++)
		ASSERT_NE(NULL, p[i] = pya_heap_malloc(h, 24));
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_EQ(2, st.ioctl_alloc);
	EXPECT_EQ(2 * B - 1, st.classes[2].blocks_cached);
	for (i = 0; i < B + 1; i++)
		pya_heap_free(h, p[i]);
	EXPECT_EQ(0, pya_heap_flush(h));
	EXPECT_EQ(0, lib_kernel_blocks(h));
	EXPECT_EQ(0, pya_heap_close(h));
}

/*
 * Waves of N <= M - B allocations, then N frees, of one class: the magazine
 * grows to hold the whole wave after a few trips, and from then on the
 * waves make no system call at all (as glibc's free lists would serve
 * them); what it keeps is still bounded.
 */
TEST(repeated_waves_settle_in_the_magazine)
{
	enum { N = 300, WAVES = 20, SETTLED = 3 };
	pya_heap_t *h = pya_heap_open(NULL);
	struct pya_stats a, b;
	static void *p[N];
	int i, w;

	ASSERT_NE(NULL, h);
	for (w = 0; w < WAVES; w++) {
		if (w == SETTLED)
			ASSERT_EQ(0, pya_heap_stats(h, &a));
		for (i = 0; i < N; i++)
			ASSERT_NE(NULL, p[i] = pya_heap_malloc(h, 24));
		for (i = 0; i < N; i++)
			pya_heap_free(h, p[i]);
	}
	ASSERT_EQ(0, pya_heap_stats(h, &b));
	ksft_print_msg("%d waves of %d blocks: %llu ioctls in the first %d, %llu after\n",
		       WAVES, N,
		       (unsigned long long)(a.ioctl_alloc + a.ioctl_free),
		       SETTLED, (unsigned long long)(b.ioctl_alloc + b.ioctl_free -
						     a.ioctl_alloc - a.ioctl_free));
	EXPECT_EQ(a.ioctl_alloc, b.ioctl_alloc);
	EXPECT_EQ(a.ioctl_free, b.ioctl_free);
	EXPECT_EQ(a.mag_misses, b.mag_misses);
	EXPECT_GE(class_bound(24), b.classes[2].blocks_cached);
	EXPECT_LE(N, b.classes[2].blocks_cached);
	EXPECT_EQ(0, pya_heap_flush(h));
	EXPECT_EQ(0, lib_kernel_blocks(h));
	EXPECT_EQ(0, pya_heap_close(h));
}

static void *churn(void *arg)
{
	pya_heap_t *h = arg;
	void *p[1000];
	int i, r;

	for (r = 0; r < 5; r++) {
		for (i = 0; i < 1000; i++)
			if (!(p[i] = pya_heap_malloc(h, 1 + (i * 7) % 512)))
				return (void *)1;
		for (i = 0; i < 1000; i++)
			pya_heap_free(h, p[i]);
	}
	return NULL;
}

static void *use_and_exit(void *arg)
{
	pya_heap_t *h = arg;
	void *p[100];
	int i;

	for (i = 0; i < 100; i++)
		if (!(p[i] = pya_heap_malloc(h, 40)))
			return (void *)1;
	for (i = 0; i < 100; i++)
		pya_heap_free(h, p[i]);
	return NULL;
}

/*
 * A thread that exits while another thread uses the heap leaves its blocks
 * in the depot for it (as far as there is room): the other thread's next
 * refill of that class makes no system call.
 */
TEST(exiting_thread_leaves_blocks_to_the_others)
{
	enum { B = 64 };	/* B(c) of a 40-byte class */
	pya_heap_t *h = pya_heap_open(NULL);
	struct pya_stats a, b;
	void *mine, *p;
	pthread_t t;
	void *ret;

	ASSERT_NE(NULL, h);
	ASSERT_NE(NULL, mine = pya_heap_malloc(h, 200));	/* a user */
	ASSERT_EQ(0, pthread_create(&t, NULL, use_and_exit, h));
	ASSERT_EQ(0, pthread_join(t, &ret));
	EXPECT_EQ(NULL, ret);
	ASSERT_EQ(0, pya_heap_stats(h, &a));
	/* 100 blocks were cached by the thread; at most 2 * B stay. */
	EXPECT_LT(0, a.classes[4].blocks_cached);
	EXPECT_GE(2 * B, a.classes[4].blocks_cached);
	EXPECT_EQ(a.classes[4].blocks_cached, lib_kernel_blocks(h) - 1 -
		  a.classes[24].blocks_cached);
	ASSERT_NE(NULL, p = pya_heap_malloc(h, 40));
	ASSERT_EQ(0, pya_heap_stats(h, &b));
	EXPECT_EQ(a.ioctl_alloc, b.ioctl_alloc);
	EXPECT_EQ(a.mag_misses + 1, b.mag_misses);
	pya_heap_free(h, p);
	pya_heap_free(h, mine);
	EXPECT_EQ(0, pya_heap_flush(h));
	EXPECT_EQ(0, lib_kernel_blocks(h));
	EXPECT_EQ(0, pya_heap_close(h));
}

/* One block of every class of the heap, allocated and freed. */
static void *every_class(void *arg)
{
	pya_heap_t *h = arg;
	int n;

	for (n = 8; n <= 512; n += 8) {
		void *p = pya_heap_malloc(h, n);

		if (!p)
			return (void *)1;
		pya_heap_free(h, p);
	}
	return NULL;
}

static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/*
 * A thread that starts after another one exited takes over its tcache,
 * mapped and faulted in already (a server that replaces its threads, as
 * larson does): a new thread that uses all 64 classes faults in far fewer
 * pages than its 64 magazines span (one page of slots each).
 */
TEST(new_threads_reuse_the_caches_of_exited_ones)
{
	enum { THREADS = 20, CLASSES = 64 };
	pya_heap_t *h = pya_heap_open(NULL);
	long before, faults;
	void *ret, *mine;
	pthread_t t;
	int i;

	ASSERT_NE(NULL, h);
	/* A user of the heap throughout: the heap's last thread would give
	 * every block back at its exit, pages and all. */
	ASSERT_NE(NULL, mine = pya_heap_malloc(h, 200));
	/* The first thread maps its tcache, and glibc caches its stack. */
	ASSERT_EQ(0, pthread_create(&t, NULL, every_class, h));
	ASSERT_EQ(0, pthread_join(t, &ret));
	ASSERT_EQ(NULL, ret);
	before = minor_faults();
	for (i = 0; i < THREADS; i++) {
		ASSERT_EQ(0, pthread_create(&t, NULL, every_class, h));
		ASSERT_EQ(0, pthread_join(t, &ret));
		ASSERT_EQ(NULL, ret);
	}
	faults = minor_faults() - before;
	ksft_print_msg("%d threads using every class: %ld page faults, %.1f a thread\n",
		       THREADS, faults, (double)faults / THREADS);
	EXPECT_GT(CLASSES / 2, faults / THREADS);
	pya_heap_free(h, mine);
	EXPECT_EQ(0, pya_heap_flush(h));
	EXPECT_EQ(0, lib_kernel_blocks(h));
	EXPECT_EQ(0, pya_heap_close(h));
}

/* A thread's magazines go back to the kernel when it exits, the depot too
 * when it was the heap's last thread. */
TEST(thread_exit_flushes)
{
	pya_heap_t *h = pya_heap_open(NULL);
	pthread_t t[4];
	struct pya_stats st;
	void *ret;
	int i;

	ASSERT_NE(NULL, h);
	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, churn, h));
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, pthread_join(t[i], &ret));
		EXPECT_EQ(NULL, ret);
	}
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_EQ(0, st.blocks_cached);
	EXPECT_EQ(0, lib_kernel_blocks(h));
	/* The exited threads' counters are kept. */
	EXPECT_EQ(4 * 5 * 1000, st.small_allocs);
	EXPECT_EQ(4 * 5 * 1000, st.small_frees);
	EXPECT_EQ(0, pya_heap_close(h));
}

struct handoff {
	pya_heap_t *h;
	void **blocks;
	int n;
};

static void *consumer(void *arg)
{
	struct handoff *ho = arg;
	int i;

	for (i = 0; i < ho->n; i++) {
		size_t n = pya_usable_size(ho->blocks[i]);

		if (lib_check(ho->blocks[i], n, i) != SIZE_MAX)
			return (void *)1;
		pya_free(ho->blocks[i]);
	}
	return NULL;
}

/* Blocks allocated by one thread and freed by another. */
TEST(cross_thread_free)
{
	enum { N = 20000 };
	static void *blocks[N];
	struct handoff ho = { NULL, blocks, N };
	pthread_t t;
	void *ret;
	int i;

	ho.h = pya_heap_open(NULL);
	ASSERT_NE(NULL, ho.h);
	for (i = 0; i < N; i++) {
		blocks[i] = pya_heap_malloc(ho.h, 1 + i % 512);
		ASSERT_NE(NULL, blocks[i]);
		lib_fill(blocks[i], pya_usable_size(blocks[i]), i);
	}
	ASSERT_EQ(0, pthread_create(&t, NULL, consumer, &ho));
	ASSERT_EQ(0, pthread_join(t, &ret));
	EXPECT_EQ(NULL, ret);
	/* Only this thread's magazines hold blocks now. */
	EXPECT_EQ(0, lib_live_blocks(ho.h));
	EXPECT_EQ(0, pya_heap_flush(ho.h));
	EXPECT_EQ(0, lib_kernel_blocks(ho.h));
	EXPECT_EQ(0, pya_heap_close(ho.h));
}

struct depot_run {
	pya_heap_t *h;
	void **blocks;
	int n;
	pthread_barrier_t bar;
};

/* Frees what the main thread allocated, then stays alive (an exiting
 * thread flushes the depot) until the main thread has refilled. */
static void *depot_consumer(void *arg)
{
	struct depot_run *r = arg;
	int i;

	for (i = 0; i < r->n; i++)
		pya_heap_free(r->h, r->blocks[i]);
	pthread_barrier_wait(&r->bar);
	pthread_barrier_wait(&r->bar);
	return NULL;
}

/*
 * Producer and consumer: the batches a consumer's full magazine drains go
 * to the heap's depot, and the producer's empty magazine refills from it:
 * no system call either way (userspace/magazine.c, the depot).
 */
TEST(depot_hands_batches_between_threads)
{
	enum { N = 192, B = 64 };	/* B(c) of a 40-byte class */
	static void *blocks[N], *again[B];
	struct depot_run r = { .blocks = blocks, .n = N };
	struct pya_stats a, b;
	pthread_t t;
	int i;

	ASSERT_EQ(0, pthread_barrier_init(&r.bar, NULL, 2));
	r.h = pya_heap_open(NULL);
	ASSERT_NE(NULL, r.h);
	for (i = 0; i < N; i++)
		ASSERT_NE(NULL, blocks[i] = pya_heap_malloc(r.h, 40));
	/* The consumer's magazine fills with 2 * B, drains one batch into
	 * the depot and fills again. */
	ASSERT_EQ(0, pthread_create(&t, NULL, depot_consumer, &r));
	pthread_barrier_wait(&r.bar);
	ASSERT_EQ(0, pya_heap_stats(r.h, &a));
	EXPECT_EQ(N, a.classes[4].blocks_cached);
	EXPECT_EQ(0, a.ioctl_free);
	/* This thread's magazine is empty (it took B, then 2 * B in a
	 * growing streak): its next refill takes the batch in the depot. */
	for (i = 0; i < B; i++)
		ASSERT_NE(NULL, again[i] = pya_heap_malloc(r.h, 40));
	ASSERT_EQ(0, pya_heap_stats(r.h, &b));
	EXPECT_EQ(a.ioctl_alloc, b.ioctl_alloc);
	EXPECT_EQ(a.mag_misses + 1, b.mag_misses);
	/* They are the blocks the consumer freed. */
	for (i = 0; i < B; i++) {
		int j, found = 0;

		for (j = 0; j < N && !found; j++)
			found = again[i] == blocks[j];
		EXPECT_TRUE(found);
	}
	pthread_barrier_wait(&r.bar);
	ASSERT_EQ(0, pthread_join(t, NULL));
	for (i = 0; i < B; i++)
		pya_heap_free(r.h, again[i]);
	EXPECT_EQ(0, pya_heap_flush(r.h));
	EXPECT_EQ(0, lib_kernel_blocks(r.h));
	EXPECT_EQ(0, pya_heap_close(r.h));
	pthread_barrier_destroy(&r.bar);
}

struct closer {
	pya_heap_t *h;
	pthread_barrier_t bar;
	int ok;
};

static void *user(void *arg)
{
	struct closer *c = arg;
	void *p[200];
	int i;

	for (i = 0; i < 200; i++)
		p[i] = pya_heap_malloc(c->h, 40);
	for (i = 0; i < 200; i++)
		pya_heap_free(c->h, p[i]);
	pthread_barrier_wait(&c->bar);	/* main closes the heap... */
	pthread_barrier_wait(&c->bar);	/* ...and opens another one */
	for (i = 0; i < 200; i++)
		p[i] = pya_heap_malloc(c->h, 40);
	c->ok = 1;
	for (i = 0; i < 200; i++)
		if (!p[i])
			c->ok = 0;
	for (i = 0; i < 200; i++)
		pya_heap_free(c->h, p[i]);
	return NULL;
}

/* Closing a heap returns what every thread has cached; the threads then
 * move on to a new heap, which may well reuse the closed one's slot. */
TEST(heap_close_with_other_threads)
{
	struct closer c = { 0 };
	pthread_t t;

	ASSERT_EQ(0, pthread_barrier_init(&c.bar, NULL, 2));
	c.h = pya_heap_open(NULL);
	ASSERT_NE(NULL, c.h);
	ASSERT_EQ(0, pthread_create(&t, NULL, user, &c));
	pthread_barrier_wait(&c.bar);
	EXPECT_LT(0, lib_kernel_blocks(c.h));	/* the thread's magazine */
	EXPECT_EQ(0, lib_live_blocks(c.h));
	EXPECT_EQ(0, pya_heap_close(c.h));
	c.h = pya_heap_open(NULL);
	ASSERT_NE(NULL, c.h);
	pthread_barrier_wait(&c.bar);
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(1, c.ok);
	EXPECT_EQ(0, lib_kernel_blocks(c.h));
	EXPECT_EQ(0, pya_heap_close(c.h));
	pthread_barrier_destroy(&c.bar);
}

/* Near the memory limit, a thread gives back what it hoards in other
 * classes before reporting ENOMEM. */
TEST(enomem_drains_own_magazines)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;
	enum { LIMIT = 64 << 10 };
	void *p[LIMIT / 8];
	int n, i;
	pya_heap_t *h;

	o.mem_limit = LIMIT;
	h = pya_heap_open(&o);
	ASSERT_NE(NULL, h);
	/* Fill the heap with 8-byte blocks, then free them all: they sit in
	 * this thread's magazine or in kernel pools. */
	for (n = 0; n < LIMIT / 8; n++)
		if (!(p[n] = pya_heap_malloc(h, 8)))
			break;
	ASSERT_LT(0, n);
	for (i = 0; i < n; i++)
		pya_heap_free(h, p[i]);
	/* Now 512-byte blocks must get (nearly) every page back. */
	for (i = 0; i < LIMIT / 512; i++)
		if (!(p[i] = pya_heap_malloc(h, 512)))
			break;
	EXPECT_LE(LIMIT / 512 - 2, i) {
		TH_LOG("only %d of %d 512-byte blocks", i, LIMIT / 512);
	}
	EXPECT_EQ(0, pya_heap_close(h));
}

LIB_TEST_MAIN
