// SPDX-License-Identifier: GPL-2.0
/*
 * The throughput workloads.  Each runs for a fixed time (bp->seconds, the
 * clock read every few thousand operations) and counts mallocs + frees, so
 * a slow allocator (debug mode) does less work instead of taking longer,
 * and the whole benchmark has a predictable duration.  Every new object has
 * its first word written, as a program would.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define CHECK_EVERY	1024	/* iterations between clock reads */

static inline void touch(void *p, uint64_t v)
{
	*(volatile uint64_t *)p = v;
}

/* (a) steady state, (d) fixed sizes, (f) wide sizes: a working set of
 * bp->live objects; each iteration frees a random one and allocates its
 * replacement.  (g) mix (bp->mix): a third of the iterations realloc() the
 * object to a new size, a third free() it and calloc() the replacement. */
int wl_steady(const struct bench_params *bp, struct bench_result *r)
{
	size_t live = bp->live, i;
	void **slot = bench_array(live * sizeof(*slot));
	uint64_t s = bp->seed, ops = 0, io0;
	double t0, t1, end;

	for (i = 0; i < live; i++) {
		slot[i] = bench_alloc(rng_size(&s, bp->fixed));
		touch(slot[i], i);
	}
	io0 = bench_ioctls();
	t0 = now_s();
	end = t0 + bp->seconds;
	do {
		for (unsigned int k = 0; k < CHECK_EVERY; k++) {
			uint32_t j = rng_below(&s, (uint32_t)live);
			void *p;

			if (bp->mix) {
				size_t n = rng_size(&s, bp->fixed);

				switch (rng_below(&s, 3)) {
				case 0:
					p = bench_realloc(slot[j], n);
					break;
				case 1:
					bench_free(slot[j]);
					p = bench_calloc(1, n);
					break;
				default:
					bench_free(slot[j]);
					p = bench_malloc(n);
				}
				if (!p)
					bench_oom(n);
			} else {
				bench_free(slot[j]);
				p = bench_alloc(rng_size(&s, bp->fixed));
			}
			touch(p, k);
			slot[j] = p;
		}
		/* A realloc counts as a free and a malloc. */
		ops += 2 * CHECK_EVERY;
		t1 = now_s();
	} while (t1 < end);
	r->ops = ops;
	r->seconds = t1 - t0;
	r->ioctls = bench_ioctls() - io0;
	for (i = 0; i < live; i++)
		bench_free(slot[i]);
	bench_array_free(slot, live * sizeof(*slot));
	return 0;
}

/* (b) growth: rounds of bp->count allocations, then as many frees (in
 * allocation order), so arenas are created and given back every round. */
int wl_growth(const struct bench_params *bp, struct bench_result *r)
{
	size_t n = bp->count, i;
	void **slot = bench_array(n * sizeof(*slot));
	uint64_t s = bp->seed, ops = 0, io0;
	double t0, t1, end;

	io0 = bench_ioctls();
	t0 = now_s();
	end = t0 + bp->seconds;
	do {
		for (i = 0; i < n; i++) {
			slot[i] = bench_alloc(rng_size(&s, bp->fixed));
			touch(slot[i], i);
		}
		for (i = 0; i < n; i++)
			bench_free(slot[i]);
		ops += 2 * n;
		t1 = now_s();
	} while (t1 < end);
	r->ops = ops;
	r->seconds = t1 - t0;
	r->ioctls = bench_ioctls() - io0;
	bench_array_free(slot, n * sizeof(*slot));
	return 0;
}

/*
 * (c) producer/consumer (xmalloc-test's shape): one thread allocates and
 * hands every object through a single-producer single-consumer ring to a
 * second thread, which frees it.  Every free is cross-thread.
 */
#define RING	4096	/* power of two */

struct ring {
	_Alignas(64) _Atomic uint64_t head;	/* written by the producer */
	_Alignas(64) _Atomic uint64_t tail;	/* written by the consumer */
	_Alignas(64) _Atomic bool done;
	uint64_t produced;
	const struct bench_params *bp;
	double end;
	void *slot[RING];
};

static void *producer(void *arg)
{
	struct ring *q = arg;
	uint64_t s = q->bp->seed, head = 0, tail = 0, n = 0;

	for (;;) {
		for (unsigned int k = 0; k < CHECK_EVERY; k++) {
			void *p = bench_alloc(rng_size(&s, q->bp->fixed));

			touch(p, k);
			while (head - tail == RING) {
				tail = atomic_load_explicit(&q->tail,
							    memory_order_acquire);
				if (head - tail == RING)
					sched_yield();
			}
			q->slot[head & (RING - 1)] = p;
			head++;
			/* Publish in small batches: fewer shared-line writes. */
			if ((head & 31) == 0)
				atomic_store_explicit(&q->head, head,
						      memory_order_release);
		}
		n += CHECK_EVERY;
		if (now_s() >= q->end)
			break;
	}
	atomic_store_explicit(&q->head, head, memory_order_release);
	q->produced = n;
	atomic_store_explicit(&q->done, true, memory_order_release);
	return NULL;
}

static void *consumer(void *arg)
{
	struct ring *q = arg;
	uint64_t tail = 0, head = 0;

	for (;;) {
		if (tail == head) {
			bool done = atomic_load_explicit(&q->done,
							 memory_order_acquire);

			head = atomic_load_explicit(&q->head,
						    memory_order_acquire);
			if (tail == head) {
				if (done)
					break;
				sched_yield();
				continue;
			}
		}
		bench_free(q->slot[tail & (RING - 1)]);
		tail++;
		if ((tail & 31) == 0)
			atomic_store_explicit(&q->tail, tail,
					      memory_order_release);
	}
	atomic_store_explicit(&q->tail, tail, memory_order_release);
	return NULL;
}

int wl_prodcons(const struct bench_params *bp, struct bench_result *r)
{
	struct ring *q = bench_array(sizeof(*q));
	pthread_t tp, tc;
	uint64_t io0;
	double t0, t1;
	int err;

	q->bp = bp;
	io0 = bench_ioctls();
	t0 = now_s();
	q->end = t0 + bp->seconds;
	err = pthread_create(&tc, NULL, consumer, q);
	if (!err)
		err = pthread_create(&tp, NULL, producer, q);
	if (err) {
		fprintf(stderr, "pyabench: pthread_create: %s\n", strerror(err));
		return -1;
	}
	pthread_join(tp, NULL);
	pthread_join(tc, NULL);
	t1 = now_s();
	r->ops = 2 * q->produced;
	r->seconds = t1 - t0;
	r->ioctls = bench_ioctls() - io0;
	bench_array_free(q, sizeof(*q));
	return 0;
}

/*
 * (e) larson-like server: bp->threads chains run at once.  A chain owns an
 * array of LARSON_SLOTS objects; its thread replaces random objects
 * (random lifetimes) for LARSON_ROUNDS iterations, then starts a successor
 * thread that inherits the array and exits, so objects allocated by one
 * thread are freed by the next.  Every eighth iteration also swaps one of
 * its objects with a shared mailbox slot, handing objects between the
 * chains that are alive at the same time.
 */
#define LARSON_SLOTS	1000
#define LARSON_ROUNDS	10000
#define MAILBOX		256

struct larson_shared {
	const struct bench_params *bp;
	double end;
	_Atomic bool stop;
	_Atomic uint64_t ops;
	_Atomic unsigned int chains_done;
	_Atomic(void *) mailbox[MAILBOX];
};

struct larson_chain {
	struct larson_shared *sh;
	void *slot[LARSON_SLOTS];
	uint64_t seed;
	pthread_t prev;		/* the predecessor, joined by its successor */
	bool has_prev;
	pthread_t last;		/* the chain's final thread */
	int err;
};

static void *larson_thread(void *arg)
{
	struct larson_chain *c = arg;
	struct larson_shared *sh = c->sh;
	size_t fixed = sh->bp->fixed;
	uint64_t s = c->seed, ops = 0;
	pthread_t next;
	bool stop = false;
	int err;

	if (c->has_prev)
		pthread_join(c->prev, NULL);
	for (unsigned int it = 0; it < LARSON_ROUNDS && !stop; it += CHECK_EVERY) {
		for (unsigned int k = 0; k < CHECK_EVERY; k++) {
			uint32_t j = rng_below(&s, LARSON_SLOTS);
			void *p;

			if ((k & 7) == 0) {
				uint32_t m = rng_below(&s, MAILBOX);

				c->slot[j] = atomic_exchange_explicit(
					&sh->mailbox[m], c->slot[j],
					memory_order_acq_rel);
				j = rng_below(&s, LARSON_SLOTS);
			}
			bench_free(c->slot[j]);
			p = bench_alloc(rng_size(&s, fixed));
			touch(p, k);
			c->slot[j] = p;
		}
		ops += 2 * CHECK_EVERY;
		if (atomic_load_explicit(&sh->stop, memory_order_relaxed))
			stop = true;
		else if (now_s() >= sh->end) {
			atomic_store(&sh->stop, true);
			stop = true;
		}
	}
	atomic_fetch_add(&sh->ops, ops);
	c->seed = s;
	if (!stop) {
		c->prev = pthread_self();
		c->has_prev = true;
		err = pthread_create(&next, NULL, larson_thread, c);
		if (!err)
			return NULL;
		c->err = err;
		atomic_store(&sh->stop, true);
	}
	c->last = pthread_self();
	atomic_fetch_add(&sh->chains_done, 1);
	return NULL;
}

int wl_larson(const struct bench_params *bp, struct bench_result *r)
{
	unsigned int nt = bp->threads, i;
	struct larson_shared *sh = bench_array(sizeof(*sh));
	struct larson_chain *c = bench_array(nt * sizeof(*c));
	uint64_t s = bp->seed, io0;
	double t0, t1;
	pthread_t t;
	int err = 0;

	sh->bp = bp;
	for (i = 0; i < nt; i++) {
		c[i].sh = sh;
		c[i].seed = rng_next(&s) | 1;
		for (size_t j = 0; j < LARSON_SLOTS; j++) {
			c[i].slot[j] = bench_alloc(rng_size(&s, bp->fixed));
			touch(c[i].slot[j], j);
		}
	}
	io0 = bench_ioctls();
	t0 = now_s();
	sh->end = t0 + bp->seconds;
	for (i = 0; i < nt; i++) {
		err = pthread_create(&t, NULL, larson_thread, &c[i]);
		if (err) {
			fprintf(stderr, "pyabench: pthread_create: %s\n",
				strerror(err));
			atomic_store(&sh->stop, true);
			nt = i;
			break;
		}
	}
	while (atomic_load(&sh->chains_done) < nt) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
	}
	/* The final threads are still exiting (pyalloc flushes magazines in
	 * a thread-exit destructor): join them before reading the counters. */
	for (i = 0; i < nt; i++) {
		pthread_join(c[i].last, NULL);
		if (c[i].err)
			err = c[i].err;
	}
	t1 = now_s();
	r->ops = atomic_load(&sh->ops);
	r->seconds = t1 - t0;
	r->ioctls = bench_ioctls() - io0;
	for (i = 0; i < bp->threads; i++)
		for (size_t j = 0; j < LARSON_SLOTS; j++)
			bench_free(c[i].slot[j]);
	for (i = 0; i < MAILBOX; i++)
		bench_free(atomic_load(&sh->mailbox[i]));
	bench_array_free(c, bp->threads * sizeof(*c));
	bench_array_free(sh, sizeof(*sh));
	if (err) {
		fprintf(stderr, "pyabench: larson: %s\n", strerror(err));
		return -1;
	}
	return 0;
}
