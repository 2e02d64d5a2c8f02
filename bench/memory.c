// SPDX-License-Identifier: GPL-2.0
/*
 * Resident memory for bp->count live objects of bp->fixed bytes, and how
 * much of it goes back to the kernel once they are all freed.
 *
 * Measures, in bytes:
 *   pyalloc:  the heap's pool pages as the kernel counts them
 *             (pya_stats.pages * pool_size: PYALLOC_IOC_STATS), which is
 *             exactly the memory the heap holds, from the empty heap
 *             (no baseline to subtract); the library's own
 *             overhead (one byte per window page, magazines) is in the
 *             resident set, reported alongside
 *   others:   resident set growth (/proc/self/statm) over a baseline
 *             taken after one warm-up malloc/free
 * at the peak, after freeing everything, and after an explicit release:
 * pya_heap_trim() (the thread's magazines and the kept empty arena),
 * malloc_trim(0) (glibc),
 * mallctl("arena.4096.purge") (jemalloc), mi_collect(true) (mimalloc),
 * MallocExtension_ReleaseFreeMemory() (tcmalloc).
 */
#include <dlfcn.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static uint64_t rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t heap_bytes(void)
{
	struct pya_stats st;

	if (bench_kind == ALLOC_SYSTEM)
		return rss_bytes();
	if (pya_heap_stats(bench_heap, &st))
		return 0;
	return st.pages * st.pool_size;
}

/* Ask the allocator to give its free memory back; returns what it called. */
static const char *release(void)
{
	int (*mallctl)(const char *, void *, size_t *, void *, size_t);
	void (*mi_collect)(bool);
	void (*tc_release)(void);

	if (bench_kind != ALLOC_SYSTEM) {
		/* Flushes the thread's magazines, then releases the empty
		 * arena the kernel keeps against thrashing. */
		pya_heap_trim(bench_heap);
		return "pya_heap_trim";
	}
	*(void **)&mallctl = dlsym(RTLD_DEFAULT, "mallctl");
	*(void **)&mi_collect = dlsym(RTLD_DEFAULT, "mi_collect");
	*(void **)&tc_release = dlsym(RTLD_DEFAULT,
				      "MallocExtension_ReleaseFreeMemory");
	if (mallctl) {
		/* MALLCTL_ARENAS_ALL is 4096 in jemalloc 5. */
		mallctl("arena.4096.purge", NULL, NULL, NULL, 0);
		return "mallctl(arena.all.purge)";
	}
	if (mi_collect) {
		mi_collect(true);
		return "mi_collect(true)";
	}
	if (tc_release) {
		tc_release();
		return "MallocExtension_ReleaseFreeMemory";
	}
	malloc_trim(0);
	return "malloc_trim(0)";
}

static uint64_t over(uint64_t v, uint64_t base)
{
	return v > base ? v - base : 0;
}

int wl_memory(const struct bench_params *bp, struct mem_result *r)
{
	size_t n = bp->count, size = bp->fixed ? bp->fixed : 24, i;
	size_t cls = (size + 7) & ~(size_t)7;
	void **slot = bench_array(n * sizeof(*slot));
	uint64_t base, rbase;
	double t0, t1, t2;

	bench_free(bench_alloc(size));
	/* A pyalloc heap starts empty: count every page it holds. */
	base = bench_kind == ALLOC_SYSTEM ? heap_bytes() : 0;
	rbase = rss_bytes();
	t0 = now_s();
	for (i = 0; i < n; i++) {
		slot[i] = bench_alloc(size);
		memset(slot[i], (int)i, size);
	}
	t1 = now_s();
	r->peak = over(heap_bytes(), base);
	r->rss_peak = over(rss_bytes(), rbase);
	for (i = 0; i < n; i++)
		bench_free(slot[i]);
	t2 = now_s();
	r->after_free = over(heap_bytes(), base);
	r->rss_after_free = over(rss_bytes(), rbase);
	r->release = release();
	r->after_release = over(heap_bytes(), base);
	r->rss_after_release = over(rss_bytes(), rbase);
	r->ideal = (uint64_t)cls * n;
	r->alloc_seconds = t1 - t0;
	r->free_seconds = t2 - t1;
	bench_array_free(slot, n * sizeof(*slot));
	return 0;
}
