// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libpyalloc randomized stress against a shadow model.
 *
 * Several threads allocate, free, reallocate and hand blocks to each other.
 * The shadow model records each live block's size and id; every block is
 * filled with a pattern derived from its id and checked before it is
 * freed, reallocated or handed over, so two live blocks that overlap, a
 * block handed out twice, or a realloc that loses data are all caught.
 * Sizes cover every class, the class boundaries and the large range;
 * reallocs cross classes both ways and cross the small/large line.  At the
 * end every block must be back in the kernel.
 */
#include "lib_util.h"

#define NTHREADS	4
#define SLOTS		400
#define XCHG		1024

struct blk {
	char *p;
	size_t size;
	uint64_t id;
};

struct shared {
	pya_heap_t *h;
	int ops;
	pthread_mutex_t lock;		/* the exchange between threads */
	struct blk xchg[XCHG];
	int nx;
	uint64_t next_id;
	int errors;
	char what[256];
	uint64_t cross_frees, reallocs, larges;
};

static void fail(struct shared *s, const char *what, const struct blk *b)
{
	pthread_mutex_lock(&s->lock);
	if (!s->errors++)
		snprintf(s->what, sizeof(s->what), "%s: block %p size %zu id %llu",
			 what, b->p, b->size, (unsigned long long)b->id);
	pthread_mutex_unlock(&s->lock);
}

static size_t rand_size(unsigned int *seed)
{
	unsigned int r = rand_r(seed) % 100;

	if (r < 80)
		return 1 + rand_r(seed) % 512;
	if (r < 90)	/* class boundaries: n and n + 1 around each class */
		return (size_t)(1 + rand_r(seed) % 64) * 8 + rand_r(seed) % 2;
	return 513 + rand_r(seed) % 40000;
}

static int check(struct shared *s, const struct blk *b)
{
	if (pya_usable_size(b->p) < b->size) {
		fail(s, "usable size too small", b);
		return -1;
	}
	if (lib_check(b->p, b->size, b->id) != SIZE_MAX) {
		fail(s, "pattern damaged", b);
		return -1;
	}
	return 0;
}

static uint64_t new_id(struct shared *s)
{
	return __atomic_add_fetch(&s->next_id, 1, __ATOMIC_RELAXED);
}

static int do_alloc(struct shared *s, struct blk *b, unsigned int *seed)
{
	b->size = rand_size(seed);
	if (rand_r(seed) % 8 == 0) {
		b->p = pya_heap_calloc(s->h, 1, b->size);
		if (b->p && b->size <= 512) {
			size_t i;

			for (i = 0; i < b->size; i++)
				if (b->p[i]) {
					fail(s, "calloc not zeroed", b);
					return -1;
				}
		}
	} else {
		b->p = pya_heap_malloc(s->h, b->size);
	}
	if (!b->p) {
		fail(s, "allocation failed", b);
		return -1;
	}
	if (b->size > 512)
		__atomic_add_fetch(&s->larges, 1, __ATOMIC_RELAXED);
	b->id = new_id(s);
	lib_fill(b->p, b->size, b->id);
	return 0;
}

static int do_free(struct shared *s, struct blk *b)
{
	if (check(s, b))
		return -1;
	pya_heap_free(s->h, b->p);
	b->p = NULL;
	return 0;
}

static int do_realloc(struct shared *s, struct blk *b, unsigned int *seed)
{
	size_t n = rand_size(seed), keep = n < b->size ? n : b->size;
	char *q;

	if (check(s, b))
		return -1;
	q = pya_heap_realloc(s->h, b->p, n);
	if (!q) {
		fail(s, "realloc failed", b);
		return -1;
	}
	b->p = q;
	if (lib_check(q, keep, b->id) != SIZE_MAX) {
		fail(s, "realloc lost data", b);
		return -1;
	}
	b->size = n;
	b->id = new_id(s);
	lib_fill(q, n, b->id);
	__atomic_add_fetch(&s->reallocs, 1, __ATOMIC_RELAXED);
	return 0;
}

static void *worker(void *arg)
{
	struct shared *s = arg;
	struct blk mine[SLOTS] = { 0 };
	unsigned int seed = (unsigned int)(uintptr_t)pthread_self() ^ 0x5eed;
	int op, i;

	for (op = 0; op < s->ops && !s->errors; op++) {
		struct blk *b = &mine[rand_r(&seed) % SLOTS];
		unsigned int r = rand_r(&seed) % 100;

		if (!b->p) {
			if (r < 20) {
				/* adopt a block another thread handed over */
				pthread_mutex_lock(&s->lock);
				if (s->nx)
					*b = s->xchg[--s->nx];
				pthread_mutex_unlock(&s->lock);
				if (b->p) {
					if (check(s, b))
						break;
					continue;
				}
			}
			if (do_alloc(s, b, &seed))
				break;
		} else if (r < 40) {
			if (do_free(s, b))
				break;
		} else if (r < 65) {
			if (do_realloc(s, b, &seed))
				break;
		} else if (r < 85) {
			/* hand over: another thread will free or adopt it */
			pthread_mutex_lock(&s->lock);
			if (s->nx < XCHG) {
				s->xchg[s->nx++] = *b;
				b->p = NULL;
			}
			pthread_mutex_unlock(&s->lock);
		} else {
			/* free a block some other thread allocated */
			struct blk x = { 0 };

			pthread_mutex_lock(&s->lock);
			if (s->nx)
				x = s->xchg[--s->nx];
			pthread_mutex_unlock(&s->lock);
			if (x.p) {
				if (do_free(s, &x))
					break;
				__atomic_add_fetch(&s->cross_frees, 1,
						   __ATOMIC_RELAXED);
			}
		}
	}
	for (i = 0; i < SLOTS; i++)
		if (mine[i].p)
			do_free(s, &mine[i]);
	return NULL;
}

FIXTURE(stress) {
	struct shared s;
};

FIXTURE_VARIANT(stress) {
	int granularity;	/* 0: the default heap */
	unsigned int flags;
	int ops;
};

FIXTURE_VARIANT_ADD(stress, default_heap) {
	.granularity = 0, .flags = 0, .ops = 60000,
};

FIXTURE_VARIANT_ADD(stress, granularity_16) {
	.granularity = 16, .flags = 0, .ops = 60000,
};

FIXTURE_VARIANT_ADD(stress, debug_heap) {
	.granularity = 8, .flags = PYA_HEAP_DEBUG, .ops = 10000,
};

FIXTURE_SETUP(stress)
{
	memset(&self->s, 0, sizeof(self->s));
	pthread_mutex_init(&self->s.lock, NULL);
	self->s.ops = variant->ops;
	if (variant->granularity) {
		struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;

		o.granularity = variant->granularity;
		o.flags = variant->flags;
		self->s.h = pya_heap_open(&o);
		ASSERT_NE(NULL, self->s.h);
	}
}

FIXTURE_TEARDOWN(stress)
{
	if (self->s.h)
		EXPECT_EQ(0, pya_heap_close(self->s.h));
	pthread_mutex_destroy(&self->s.lock);
}

TEST_F_TIMEOUT(stress, shadow_model, 300)
{
	struct shared *s = &self->s;
	struct pya_stats st;
	pthread_t t[NTHREADS];
	int i;

	for (i = 0; i < NTHREADS; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, worker, s));
	for (i = 0; i < NTHREADS; i++)
		ASSERT_EQ(0, pthread_join(t[i], NULL));
	while (s->nx)
		do_free(s, &s->xchg[--s->nx]);
	EXPECT_EQ(0, s->errors) {
		TH_LOG("%d errors, first: %s", s->errors, s->what);
	}
	ASSERT_EQ(0, pya_heap_stats(s->h, &st));
	ksft_print_msg("%llu small allocs, %llu small frees, %llu reallocs, %llu cross-thread frees, %llu large; %llu alloc + %llu free ioctls\n",
		       (unsigned long long)st.small_allocs,
		       (unsigned long long)st.small_frees,
		       (unsigned long long)s->reallocs,
		       (unsigned long long)s->cross_frees,
		       (unsigned long long)s->larges,
		       (unsigned long long)st.ioctl_alloc,
		       (unsigned long long)st.ioctl_free);
	EXPECT_LT(0, s->cross_frees);
	EXPECT_EQ(0, st.large_live);
	/* The workers exited (their magazines went back); this thread's
	 * magazine is all that is left, and then nothing. */
	EXPECT_EQ(0, lib_live_blocks(s->h));
	EXPECT_EQ(0, pya_heap_flush(s->h));
	EXPECT_EQ(0, lib_kernel_blocks(s->h));
}

LIB_TEST_MAIN
