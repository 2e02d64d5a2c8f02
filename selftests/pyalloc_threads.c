// SPDX-License-Identifier: GPL-2.0
/*
 * One heap shared by several threads: random batches of allocations and
 * frees from 4 threads at once, every block patterned with its owner and
 * checked before it is freed; blocks allocated in one thread and freed in
 * another; and arenas being released by one thread while another keeps
 * touching its live blocks (which must never SIGBUS).  Bounded work, no
 * timing assertions.
 *
 * Threads never use ASSERT/EXPECT (they longjmp); they count errors and the
 * main thread checks the counts.
 */
#include "pyalloc_util.h"

#include <pthread.h>

PYA_HEAP_FIXTURE(heap)

#define NTHREADS	4
#define ITERATIONS	1500	/* batches per thread */
#define MAXLIVE		1024

struct worker {
	int fd;
	const struct pyalloc_info *info;
	char *map;
	unsigned int id;
	__u64 seed;
	/* results */
	unsigned long errors, corrupt, allocs, frees;
	int first_err;
};

static __u64 rnd(__u64 *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void note_err(struct worker *w, int err)
{
	if (!w->errors++)
		w->first_err = err;
}

static void *hammer(void *arg)
{
	struct worker *w = arg;
	__u64 live[MAXLIVE], batch[64];
	__u32 live_bs[MAXLIVE];
	unsigned int nlive = 0, it, i;

	for (it = 0; it < ITERATIONS; it++) {
		bool do_alloc = nlive < 32 ||
				(nlive + 64 <= MAXLIVE && rnd(&w->seed) % 2);
		int ret;

		if (do_alloc) {
			__u32 size = rnd(&w->seed) % 512 + 1;
			__u32 cnt = rnd(&w->seed) % 64 + 1, bs = 0;

			ret = pya_alloc(w->fd, size, cnt, batch, &bs);
			if (ret) {
				note_err(w, ret);
				continue;
			}
			if (bs != pya_round(size, 8))
				note_err(w, 1000);
			w->allocs += cnt;
			for (i = 0; i < cnt; i++) {
				pya_fill(w->map, batch[i], bs,
					 ((__u64)w->id << 32) | batch[i]);
				live[nlive] = batch[i];
				live_bs[nlive++] = bs;
			}
		} else {
			__u32 cnt = rnd(&w->seed) % 64 + 1;

			if (cnt > nlive)
				cnt = nlive;
			for (i = 0; i < cnt; i++) {
				unsigned int j = rnd(&w->seed) % nlive;

				if (!pya_check(w->map, live[j], live_bs[j],
					       ((__u64)w->id << 32) | live[j]))
					w->corrupt++;
				batch[i] = live[j];
				live[j] = live[--nlive];
				live_bs[j] = live_bs[nlive];
			}
			ret = pya_free(w->fd, batch, cnt, NULL);
			if (ret)
				note_err(w, ret);
			else
				w->frees += cnt;
		}
	}
	for (i = 0; i < nlive; i++)
		if (!pya_check(w->map, live[i], live_bs[i],
			       ((__u64)w->id << 32) | live[i]))
			w->corrupt++;
	for (i = 0; i < nlive; i += 64) {
		__u32 cnt = nlive - i < 64 ? nlive - i : 64;
		int ret = pya_free(w->fd, live + i, cnt, NULL);

		if (ret)
			note_err(w, ret);
		else
			w->frees += cnt;
	}
	return NULL;
}

TEST_F_TIMEOUT(heap, hammer_alloc_free, 120)
{
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	struct pya_kstats st;
	unsigned long allocs = 0;
	unsigned int i;

	for (i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .fd = self->fd, .info = &self->info,
					.map = self->map, .id = i + 1,
					.seed = 0x9e3779b97f4a7c15ULL * (i + 1) };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, hammer, &w[i]));
	}
	for (i = 0; i < NTHREADS; i++) {
		ASSERT_EQ(0, pthread_join(t[i], NULL));
	}
	for (i = 0; i < NTHREADS; i++) {
		EXPECT_EQ(0, w[i].errors) TH_LOG("thread %u: first error %d",
						 i, w[i].first_err);
		EXPECT_EQ(0, w[i].corrupt) TH_LOG("thread %u", i);
		EXPECT_EQ(w[i].allocs, w[i].frees) TH_LOG("thread %u", i);
		allocs += w[i].allocs;
	}
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(0, pya_check_stats(&st, &self->info));
	EXPECT_EQ(allocs, st.blocks_allocated);
	EXPECT_EQ(allocs, st.blocks_freed);
	EXPECT_LT(0, allocs);
	TH_LOG("%lu blocks allocated and freed by %d threads", allocs,
	       NTHREADS);
}

/* Producer allocates and patterns; consumer checks and frees. */
struct handoff {
	int fd;
	char *map;
	int pipe[2];
	unsigned long errors, corrupt, freed;
};

#define HANDOFF_BATCHES	300

static void *producer(void *arg)
{
	struct handoff *h = arg;
	__u64 b[33];
	unsigned int i, k;

	for (i = 0; i < HANDOFF_BATCHES; i++) {
		__u32 size = (i * 37) % 512 + 1, bs;

		if (pya_alloc(h->fd, size, 32, b + 1, &bs)) {
			h->errors++;
			b[0] = 0;
		} else {
			for (k = 1; k <= 32; k++)
				pya_fill(h->map, b[k], bs, b[k] ^ 0xabc);
			b[0] = bs;
		}
		if (write(h->pipe[1], b, sizeof(b)) != sizeof(b))
			h->errors++;
	}
	close(h->pipe[1]);
	return NULL;
}

static void *consumer(void *arg)
{
	struct handoff *h = arg;
	__u64 b[33];
	unsigned int k;

	while (read(h->pipe[0], b, sizeof(b)) == sizeof(b)) {
		if (!b[0])
			continue;
		for (k = 1; k <= 32; k++)
			if (!pya_check(h->map, b[k], b[0], b[k] ^ 0xabc))
				h->corrupt++;
		if (pya_free(h->fd, b + 1, 32, NULL))
			h->errors++;
		else
			h->freed += 32;
	}
	return NULL;
}

TEST_F_TIMEOUT(heap, cross_thread_free, 120)
{
	struct handoff h = { .fd = self->fd, .map = self->map };
	struct pya_kstats st;
	pthread_t p, c;

	/* A pipe (not a shared array) keeps the handoff simple. */
	ASSERT_EQ(0, pipe(h.pipe));
	ASSERT_EQ(0, pthread_create(&c, NULL, consumer, &h));
	ASSERT_EQ(0, pthread_create(&p, NULL, producer, &h));
	ASSERT_EQ(0, pthread_join(p, NULL));
	ASSERT_EQ(0, pthread_join(c, NULL));
	EXPECT_EQ(0, h.errors);
	EXPECT_EQ(0, h.corrupt);
	EXPECT_EQ(HANDOFF_BATCHES * 32, h.freed);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(0, pya_check_stats(&st, &self->info));
}

/*
 * One thread keeps a few blocks in the first arena and reads them over and
 * over; another fills two more arenas and empties them again, so arenas are
 * created, released and zapped the whole time.  The reader's blocks must
 * stay mapped and intact (a wrong zap would SIGBUS it or show zeroes).
 */
struct churn {
	int fd;
	char *map;
	const struct pyalloc_info *info;
	int stop;
	unsigned long rounds, errors;
};

static void *churner(void *arg)
{
	struct churn *c = arg;
	__u64 n = 2 * (__u64)c->info->pools_per_arena *
		  (c->info->pool_size / 512), i;
	__u64 *offs = malloc(n * sizeof(*offs));
	unsigned int round;

	if (!offs) {
		c->errors++;
		return NULL;
	}
	for (round = 0; round < 12; round++) {
		if (pya_alloc_n(c->fd, 512, n, offs)) {
			c->errors++;
			break;
		}
		for (i = 0; i < n; i += 8)
			pya_fill(c->map, offs[i], 512, round);
		if (pya_free_n(c->fd, offs, n)) {
			c->errors++;
			break;
		}
		c->rounds++;
	}
	free(offs);
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST_F_TIMEOUT(heap, release_while_reading_live_arena, 120)
{
	struct churn c = { .fd = self->fd, .map = self->map,
			   .info = &self->info };
	unsigned long reads = 0, bad = 0;
	struct pya_kstats st;
	__u64 keep[8];
	unsigned int i;
	pthread_t t;

	ASSERT_EQ(0, pya_alloc(self->fd, 512, 8, keep, NULL));
	for (i = 0; i < 8; i++)
		pya_fill(self->map, keep[i], 512, 77);
	ASSERT_EQ(0, pthread_create(&t, NULL, churner, &c));
	while (!__atomic_load_n(&c.stop, __ATOMIC_ACQUIRE)) {
		for (i = 0; i < 8; i++)
			if (!pya_check(self->map, keep[i], 512, 77))
				bad++;
		reads++;
	}
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(0, c.errors);
	EXPECT_EQ(12, c.rounds);
	EXPECT_EQ(0, bad);
	EXPECT_LT(0, reads);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_GE(st.arenas_reclaimed, 1);
	EXPECT_EQ(8, pya_check_stats(&st, &self->info));
}

PYALLOC_TEST_MAIN
