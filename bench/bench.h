/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pyabench: the allocator benchmark (issue 5).  Shared declarations.
 *
 *   pyabench.c    command line, output, the allocator under test
 *   workloads.c   the throughput workloads (steady, growth, prodcons,
 *                 fixed, larson)
 *   memory.c      resident memory for N live objects, and release
 *
 * The allocator is chosen per process: --alloc=pyalloc (libpyalloc's
 * default heap, magazines), --alloc=pyalloc-debug (a PYA_HEAP_DEBUG heap:
 * one ioctl per operation) or --alloc=system (whatever malloc() the
 * process has: glibc, or the library in LD_PRELOAD).  The workloads call
 * bench_malloc()/bench_free(), which switch on that choice with direct
 * calls, so every allocator pays the same (tiny) dispatch cost.
 */
#ifndef PYABENCH_H
#define PYABENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <pyalloc.h>

enum bench_alloc { ALLOC_SYSTEM, ALLOC_PYALLOC, ALLOC_PYALLOC_DEBUG };

extern enum bench_alloc bench_kind;
extern pya_heap_t *bench_heap;		/* the heap under test (pyalloc*) */

static inline void *bench_malloc(size_t n)
{
	switch (bench_kind) {
	case ALLOC_PYALLOC:
		return pya_malloc(n);
	case ALLOC_PYALLOC_DEBUG:
		return pya_heap_malloc(bench_heap, n);
	default:
		return malloc(n);
	}
}

static inline void bench_free(void *p)
{
	switch (bench_kind) {
	case ALLOC_PYALLOC:
		pya_free(p);
		break;
	case ALLOC_PYALLOC_DEBUG:
		pya_heap_free(bench_heap, p);
		break;
	default:
		free(p);
	}
}

/* Allocation failure is fatal: a benchmark that silently skips work lies. */
void *bench_oom(size_t n);

static inline void *bench_alloc(size_t n)
{
	void *p = bench_malloc(n);

	return p ? p : bench_oom(n);
}

/* xorshift64*: fast, and identical for every allocator. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n) without a division. */
static inline uint32_t rng_below(uint64_t *s, uint32_t n)
{
	return (uint32_t)(((rng_next(s) >> 32) * (uint64_t)n) >> 32);
}

/* A request size uniform in 8..512, or @fixed when it is not 0. */
static inline size_t rng_size(uint64_t *s, size_t fixed)
{
	return fixed ? fixed : 8 + rng_below(s, 505);
}

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Memory for the benchmark's own arrays: straight from mmap, pre-faulted,
 * so it never goes through (nor is counted against) the allocator. */
void *bench_array(size_t bytes);
void bench_array_free(void *p, size_t bytes);

/* ioctls the library issued for allocation and freeing so far (0 for
 * system allocators). */
uint64_t bench_ioctls(void);

struct bench_params {
	double seconds;		/* timed phase of a throughput workload */
	uint64_t seed;
	size_t live;		/* working set (steady, fixed) */
	size_t fixed;		/* object size for fixed, 0 = random */
	size_t count;		/* growth: objects per round; mem: objects */
	unsigned int threads;	/* larson */
};

struct bench_result {
	uint64_t ops;		/* mallocs + frees in the timed phase */
	double seconds;
	uint64_t ioctls;	/* in the timed phase */
};

int wl_steady(const struct bench_params *bp, struct bench_result *r);
int wl_growth(const struct bench_params *bp, struct bench_result *r);
int wl_prodcons(const struct bench_params *bp, struct bench_result *r);
int wl_larson(const struct bench_params *bp, struct bench_result *r);

struct mem_result {
	uint64_t ideal;		/* class size x N */
	/* Primary measure: pool pages of the heap (pyalloc) or resident set
	 * growth (others), in bytes, over the baseline. */
	uint64_t peak, after_free, after_release;
	/* Resident set growth for every allocator (a cross-check for pyalloc,
	 * whose pool pages are mapped shared). */
	uint64_t rss_peak, rss_after_free, rss_after_release;
	const char *release;	/* what "release" called */
	double alloc_seconds, free_seconds;
};

int wl_memory(const struct bench_params *bp, struct mem_result *r);

#endif /* PYABENCH_H */
