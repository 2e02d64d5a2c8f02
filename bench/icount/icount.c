// SPDX-License-Identifier: GPL-2.0
/*
 * icount: the workload of the instruction-count benchmark (issue 11), run
 * under callgrind by bench/icount/run.sh.  One binary for every allocator:
 *
 *   icount --alloc=pyalloc|system|noop --row=ROW [--pairs=N] [--live=N]
 *
 *   --alloc=pyalloc  libpyalloc's API (pya_malloc, pya_free, pya_realloc,
 *                    pya_calloc) on its default heap, the library linked
 *                    as a user links it (here over a host stand-in of the
 *                    device, tests/host/lib_fakedev.c)
 *   --alloc=system   malloc, free, realloc, calloc: glibc's, or whatever
 *                    LD_PRELOAD put first (jemalloc, mimalloc, tcmalloc,
 *                    libpyalloc-malloc.so)
 *   --alloc=noop     functions that return a static buffer and do nothing
 *                    else: the harness's own cost, subtracted from every
 *                    other row
 *
 * Rows (every one keeps --live objects, 4096 by default; an iteration
 * picks a random one, frees it and allocates its replacement, a "pair"):
 *   steady     sizes uniform in 1..512
 *   fixed16, fixed48, fixed512: one size
 *   mix        sizes 1..512; a third of the pairs are realloc() of the
 *              object to a new size, a third free() + calloc(1, size),
 *              a third free() + malloc()
 *
 * Every new object has its first byte written.  The objects are made and
 * a warm-up of --pairs pairs is run first, so the measured --pairs pairs
 * see a steady state; callgrind collects only inside measure() (started
 * with --collect-atstart=no, toggled here by client requests), so the
 * count is the measured loop and nothing else.  The line printed names
 * the malloc the process really has (the shared object that defines
 * malloc), which run.sh checks against the label it expected.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <valgrind/callgrind.h>

#include <pyalloc.h>

#include "../rng.h"

enum row { R_STEADY, R_FIXED, R_MIX };

/*
 * The allocator under test, called through these pointers whatever it is:
 * the harness runs the very same instructions for every allocator, and
 * the no-op row's count is subtracted from every other.
 */
static struct {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
} ops;

/* The no-op allocator: real calls (never inlined nor analysed across), so
 * the subtraction removes the harness and leaves the allocator's work. */
static _Alignas(64) unsigned char noop_buf[512];

__attribute__((noipa)) static void *noop_malloc(size_t n)
{
	(void)n;
	return noop_buf;
}

__attribute__((noipa)) static void noop_free(void *p)
{
	(void)p;
}

__attribute__((noipa)) static void *noop_calloc(size_t k, size_t n)
{
	(void)k;
	(void)n;
	return noop_buf;
}

__attribute__((noipa)) static void *noop_realloc(void *p, size_t n)
{
	(void)p;
	(void)n;
	return noop_buf;
}

static void oom(size_t n)
{
	fprintf(stderr, "icount: allocation of %zu bytes failed\n", n);
	exit(1);
}

struct state {
	void **slot;
	uint32_t live;
	size_t fixed;		/* 0: uniform 1..512 */
	enum row row;
	uint64_t seed;
};

static inline size_t pick_size(struct state *st)
{
	return st->fixed ? st->fixed : 1 + rng_below(&st->seed, 512);
}

/* @n pairs; noinline so callgrind's per-function table shows it apart. */
__attribute__((noinline)) static void run_pairs(struct state *st, uint64_t n)
{
	void **slot = st->slot;

	for (uint64_t i = 0; i < n; i++) {
		uint32_t j = rng_below(&st->seed, st->live);
		size_t size = pick_size(st);
		void *p;

		if (st->row == R_MIX) {
			switch (rng_below(&st->seed, 3)) {
			case 0:
				p = ops.realloc(slot[j], size);
				break;
			case 1:
				ops.free(slot[j]);
				p = ops.calloc(1, size);
				break;
			default:
				ops.free(slot[j]);
				p = ops.malloc(size);
			}
		} else {
			ops.free(slot[j]);
			p = ops.malloc(size);
		}
		if (!p)
			oom(size);
		*(volatile unsigned char *)p = (unsigned char)i;
		slot[j] = p;
	}
}

__attribute__((noinline)) static void measure(struct state *st, uint64_t n)
{
	CALLGRIND_TOGGLE_COLLECT;
	run_pairs(st, n);
	CALLGRIND_TOGGLE_COLLECT;
}

/* The shared object that defines the malloc this process calls: the first
 * definition in the lookup order, the one LD_PRELOAD puts first. */
static const char *malloc_owner(void)
{
	void *m = dlsym(RTLD_DEFAULT, "malloc");
	Dl_info di;
	const char *s;

	if (!m || !dladdr(m, &di) || !di.dli_fname)
		return "?";
	s = strrchr(di.dli_fname, '/');
	return s ? s + 1 : di.dli_fname;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: icount --alloc=pyalloc|system|noop\n"
		"              --row=steady|fixed16|fixed48|fixed512|mix\n"
		"              [--pairs=N] [--live=N] [--seed=N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "alloc", required_argument, NULL, 'a' },
		{ "row", required_argument, NULL, 'r' },
		{ "pairs", required_argument, NULL, 'n' },
		{ "live", required_argument, NULL, 'v' },
		{ "seed", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 }
	};
	const char *alloc = NULL, *row = NULL;
	struct state st = { .live = 4096, .seed = 0x9E3779B97F4A7C15ULL };
	uint64_t pairs = 200000;
	int c, system_malloc = 0;
	size_t bytes;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': alloc = optarg; break;
		case 'r': row = optarg; break;
		case 'n': pairs = strtoull(optarg, NULL, 0); break;
		case 'v': st.live = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'e': st.seed = strtoull(optarg, NULL, 0) | 1; break;
		default: usage();
		}
	}
	if (!alloc || !row || optind != argc || !st.live || !pairs)
		usage();
	if (!strcmp(alloc, "pyalloc")) {
		ops.malloc = pya_malloc;
		ops.free = pya_free;
		ops.calloc = pya_calloc;
		ops.realloc = pya_realloc;
	} else if (!strcmp(alloc, "system")) {
		ops.malloc = malloc;
		ops.free = free;
		ops.calloc = calloc;
		ops.realloc = realloc;
		system_malloc = 1;
	} else if (!strcmp(alloc, "noop")) {
		ops.malloc = noop_malloc;
		ops.free = noop_free;
		ops.calloc = noop_calloc;
		ops.realloc = noop_realloc;
	} else {
		usage();
	}
	if (!strcmp(row, "steady")) {
		st.row = R_STEADY;
	} else if (!strcmp(row, "mix")) {
		st.row = R_MIX;
	} else if (!strncmp(row, "fixed", 5)) {
		st.row = R_FIXED;
		st.fixed = strtoul(row + 5, NULL, 10);
		if (st.fixed < 1 || st.fixed > 512)
			usage();
	} else {
		usage();
	}

	/* The slot array from mmap: never from (nor counted against) the
	 * allocator under test. */
	bytes = st.live * sizeof(void *);
	st.slot = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (st.slot == MAP_FAILED)
		oom(bytes);
	for (uint32_t i = 0; i < st.live; i++) {
		size_t size = pick_size(&st);

		st.slot[i] = ops.malloc(size);
		if (!st.slot[i])
			oom(size);
		*(volatile unsigned char *)st.slot[i] = (unsigned char)i;
	}
	run_pairs(&st, pairs);		/* warm-up: reach the steady state */
	measure(&st, pairs);
	for (uint32_t i = 0; i < st.live; i++)
		ops.free(st.slot[i]);
	printf("alloc=%s row=%s pairs=%llu live=%u malloc_from=%s\n", alloc,
	       row, (unsigned long long)pairs, st.live,
	       system_malloc ? malloc_owner() : alloc);
	return 0;
}
