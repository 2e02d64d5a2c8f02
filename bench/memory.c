// SPDX-License-Identifier: GPL-2.0
/*
 * Resident memory for bp->count live objects of bp->fixed bytes, how much
 * of it goes back to the kernel once they are all freed (wl_memory), and
 * fragmentation (wl_frag).
 *
 * One instrument for every allocator: resident set growth
 * (/proc/self/statm) over a baseline taken after one warm-up malloc/free,
 * in bytes.  Before the baseline every page of the process's code is
 * mapped (map_code()): the kernel maps a file's pages 64 KiB at a time
 * (fault-around), so the first call into a part of libc not used before,
 * memset's say, added 0, 64 or 128 KiB of libc's text to the "heap" growth
 * depending on where address space randomisation put libc.  A pyalloc heap's own count of its pool pages (the kernel's:
 * PYALLOC_IOC_STATS through the library, or fdinfo for the drop-in malloc)
 * is reported beside it, never instead of it; the resident set adds the
 * library's class table and magazines to it.
 *
 * wl_memory measures at the peak, after freeing everything, bp->settle
 * seconds later (a decay has had time to act), and after an explicit
 * release: pya_heap_trim() (the thread's magazines and the kept empty
 * arena), malloc_trim(0) (glibc, and the drop-in's, which trims its heap),
 * mallctl("arena.4096.purge") (jemalloc), mi_collect(true) (mimalloc),
 * MallocExtension_ReleaseFreeMemory() (tcmalloc).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
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

/*
 * Map every page of the process's executable file mappings (libc, the
 * allocator's library, this program) by reading one byte of each, so that
 * code faulted in after the baseline does not count as memory the
 * allocator holds.  The same for every allocator; stdio here allocates
 * before the baseline is taken.
 */
static void map_code(void)
{
	char line[512], perms[8];
	unsigned long lo, hi, a;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
		    perms[0] != 'r' || perms[2] != 'x' || !strchr(line, '/'))
			continue;
		for (a = lo; a < hi; a += 4096)
			(void)*(volatile const char *)a;
	}
	fclose(f);
}

static uint64_t over(uint64_t v, uint64_t base)
{
	return v > base ? v - base : 0;
}

static int64_t heap_over(int64_t v, int64_t base)
{
	if (v < 0)
		return -1;
	return v > base ? v - base : 0;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts))
		;
}

int wl_memory(const struct bench_params *bp, struct mem_result *r)
{
	size_t n = bp->count, size = bp->fixed ? bp->fixed : 24, i;
	size_t cls = (size + 7) & ~(size_t)7;
	void **slot = bench_array(n * sizeof(*slot));
	uint64_t rbase;
	int64_t hbase;
	double t0, t1, t2;

	map_code();
	bench_free(bench_alloc(size));
	rbase = rss_bytes();
	/* A library heap starts empty: every page it holds counts.  The
	 * drop-in's heap served the process's start-up already. */
	hbase = bench_kind == ALLOC_SYSTEM ? bench_heap_bytes() : 0;
	t0 = now_s();
	for (i = 0; i < n; i++) {
		slot[i] = bench_alloc(size);
		memset(slot[i], (int)i, size);
	}
	t1 = now_s();
	r->rss_peak = over(rss_bytes(), rbase);
	r->heap_peak = heap_over(bench_heap_bytes(), hbase);
	for (i = 0; i < n; i++)
		bench_free(slot[i]);
	t2 = now_s();
	r->rss_after_free = over(rss_bytes(), rbase);
	r->heap_after_free = heap_over(bench_heap_bytes(), hbase);
	if (bp->settle > 0)
		sleep_s(bp->settle);
	r->rss_settled = over(rss_bytes(), rbase);
	r->release = release();
	r->rss_after_release = over(rss_bytes(), rbase);
	r->heap_after_release = heap_over(bench_heap_bytes(), hbase);
	r->ideal = (uint64_t)cls * n;
	r->alloc_seconds = t1 - t0;
	r->free_seconds = t2 - t1;
	bench_array_free(slot, n * sizeof(*slot));
	return 0;
}

/*
 * Fragmentation: fill with bp->count objects of sizes 8..512 (the first
 * word of each written), free a random 90% of them, then allocate as many
 * again.  A heap that reuses its holes stays at its first peak; one whose
 * freed memory is scattered over every page cannot give it back at the
 * middle measure.
 */
int wl_frag(const struct bench_params *bp, struct frag_result *r)
{
	size_t n = bp->count, i;
	void **slot = bench_array(n * sizeof(*slot));
	uint32_t *size = bench_array(n * sizeof(*size));
	uint32_t *order = bench_array(n * sizeof(*order));
	uint64_t s = bp->seed, rbase, live = 0;
	size_t nfree = n - n / 10;
	int64_t hbase;
	double t0;

	map_code();
	bench_free(bench_alloc(64));
	rbase = rss_bytes();
	hbase = bench_kind == ALLOC_SYSTEM ? bench_heap_bytes() : 0;
	t0 = now_s();
	for (i = 0; i < n; i++) {
		size[i] = (uint32_t)rng_size(&s, SIZE_SMALL);
		slot[i] = bench_alloc(size[i]);
		*(volatile uint64_t *)slot[i] = i;
		live += size[i];
		order[i] = (uint32_t)i;
	}
	r->live_full = live;
	r->rss_full = over(rss_bytes(), rbase);
	r->heap_full = heap_over(bench_heap_bytes(), hbase);
	/* A random 90%: the first nfree of a Fisher-Yates shuffle. */
	for (i = 0; i < nfree; i++) {
		size_t j = i + rng_below(&s, (uint32_t)(n - i));
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
		bench_free(slot[order[i]]);
		live -= size[order[i]];
		slot[order[i]] = NULL;
	}
	r->live_holes = live;
	r->rss_holes = over(rss_bytes(), rbase);
	r->heap_holes = heap_over(bench_heap_bytes(), hbase);
	for (i = 0; i < nfree; i++) {
		uint32_t k = order[i];

		size[k] = (uint32_t)rng_size(&s, SIZE_SMALL);
		slot[k] = bench_alloc(size[k]);
		*(volatile uint64_t *)slot[k] = k;
	}
	r->rss_refill = over(rss_bytes(), rbase);
	r->heap_refill = heap_over(bench_heap_bytes(), hbase);
	r->seconds = now_s() - t0;
	r->count = n;
	r->freed = nfree;
	for (i = 0; i < n; i++)
		bench_free(slot[i]);
	bench_array_free(order, n * sizeof(*order));
	bench_array_free(size, n * sizeof(*size));
	bench_array_free(slot, n * sizeof(*slot));
	return 0;
}
