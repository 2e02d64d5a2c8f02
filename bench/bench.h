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

#include "rng.h"

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

static inline void *bench_calloc(size_t k, size_t n)
{
	switch (bench_kind) {
	case ALLOC_PYALLOC:
		return pya_calloc(k, n);
	case ALLOC_PYALLOC_DEBUG:
		return pya_heap_calloc(bench_heap, k, n);
	default:
		return calloc(k, n);
	}
}

static inline void *bench_realloc(void *p, size_t n)
{
	switch (bench_kind) {
	case ALLOC_PYALLOC:
		return pya_realloc(p, n);
	case ALLOC_PYALLOC_DEBUG:
		return pya_heap_realloc(bench_heap, p, n);
	default:
		return realloc(p, n);
	}
}

/* Allocation failure is fatal: a benchmark that silently skips work lies. */
void *bench_oom(size_t n);

static inline void *bench_alloc(size_t n)
{
	void *p = bench_malloc(n);

	return p ? p : bench_oom(n);
}

/* Request sizes (bench_params.fixed): a fixed size when above 0, else
 * one of these distributions. */
#define SIZE_SMALL	0	/* uniform in 8..512 */
#define SIZE_WIDE	((size_t)-1)	/* log-uniform in 8..65536: each
					 * power-of-two band equally often */
#define SIZE_MIX	((size_t)-2)	/* uniform in 8..1024: across
					 * pyalloc's 512-byte limit */

static inline size_t rng_size(uint64_t *s, size_t fixed)
{
	if (fixed == SIZE_SMALL)
		return 8 + rng_below(s, 505);
	if (fixed == SIZE_WIDE) {
		/* 2^(3 + 13u), u uniform in [0, 1): band, then within it. */
		uint32_t b = 3 + rng_below(s, 13);

		return ((size_t)1 << b) + rng_below(s, 1u << b);
	}
	if (fixed == SIZE_MIX)
		return 8 + rng_below(s, 1017);
	return fixed;
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

/* ioctls the library issued for allocation and freeing so far: the
 * library's counters, or for a system malloc that is pyalloc's drop-in
 * the kernel's (fdinfo); 0 for other allocators. */
uint64_t bench_ioctls(void);
/* The pool pages (in bytes) of the process's pyalloc heap, from the
 * library or fdinfo; -1 when it has none. */
int64_t bench_heap_bytes(void);

struct bench_params {
	double seconds;		/* timed phase of a throughput workload */
	uint64_t seed;
	size_t live;		/* working set (steady, fixed) */
	size_t fixed;		/* object size, or SIZE_SMALL/WIDE/MIX */
	int mix;		/* steady: a third realloc, a third calloc */
	size_t count;		/* growth: objects per round; mem: objects */
	unsigned int threads;	/* larson */
	double settle;		/* mem: seconds to wait after the frees */
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

/*
 * Memory figures, in bytes over a baseline taken after one warm-up
 * malloc/free.  The instrument for every allocator is the resident set
 * (/proc/self/statm); a pyalloc heap's own count of its pool pages (the
 * kernel's, through PYALLOC_IOC_STATS or the descriptor's fdinfo) is
 * reported beside it, -1 where there is no pyalloc heap.
 */
struct mem_result {
	uint64_t ideal;		/* class size x N */
	uint64_t rss_peak, rss_after_free, rss_after_release;
	/* bp->settle seconds after the frees: a decay (jemalloc's, or the
	 * device's decay_ms) has had time to give pages back. */
	uint64_t rss_settled;
	int64_t heap_peak, heap_after_free, heap_after_release;
	const char *release;	/* what "release" called */
	double alloc_seconds, free_seconds;
};

/* Fragmentation: bp->count objects of sizes 8..512, a random 90% freed,
 * then as many allocated again. */
struct frag_result {
	uint64_t count, freed;
	uint64_t live_full, live_holes;	/* requested bytes live */
	uint64_t rss_full, rss_holes, rss_refill;
	int64_t heap_full, heap_holes, heap_refill;
	double seconds;
};

int wl_memory(const struct bench_params *bp, struct mem_result *r);
int wl_frag(const struct bench_params *bp, struct frag_result *r);

#endif /* PYABENCH_H */
