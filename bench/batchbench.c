// SPDX-License-Identifier: GPL-2.0
/*
 * batchbench: what one block costs in the kernel's ALLOC and FREE batches,
 * through the raw ABI (no library, no magazine), in nanoseconds a block.
 *
 *   batchbench [--blocks=N] [--rounds=R] [--batch=B]
 *
 * Every round allocates N blocks of 16..128 bytes (N/8 of each of the
 * eight sizes 16, 32, ..., 128, each size in batches of B) and frees them
 * all again, in batches of B:
 *   - "in order": in the order they were allocated, so that a batch's
 *     blocks share a few pools, as a thread that frees what it just
 *     allocated sends them;
 *   - "scattered": in a random order over the whole heap, so that nearly
 *     every block of a batch is in another pool and arena, as the blocks
 *     CPython's cyclic GC frees reach the kernel.
 * The heap keeps its emptied arenas and pools (decay_ms = 60 s), so from
 * the second round on ALLOC reuses pages and both calls measure the
 * kernel's bookkeeping, the system call and the copies of the offsets;
 * the first round's ALLOC, which also gets and zeroes the pages, is shown
 * apart.  Nothing touches the blocks: no page fault is measured.
 *
 * One CSV line per measure on stdout:
 *   order,call,blocks,batch,rounds,ns_per_block_median,min,max
 * over rounds 2..R (ALLOC's first round: its own line, rounds = 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/pyalloc.h>

#include "rng.h"

#define NSIZES		8
#define MAX_ROUNDS	64

static double now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "batchbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Allocate offs[0, n) as n / NSIZES blocks of each size, in batches. */
static void alloc_all(int fd, uint64_t *offs, uint32_t n, uint32_t batch)
{
	uint32_t per = n / NSIZES, s, i, k;

	for (s = 0; s < NSIZES; s++) {
		for (i = 0; i < per; i += k) {
			struct pyalloc_alloc req = { .size = 16 * (s + 1) };

			k = per - i < batch ? per - i : batch;
			req.count = k;
			req.offsets = (uintptr_t)(offs + s * per + i);
			if (ioctl(fd, PYALLOC_IOC_ALLOC, &req))
				die("PYALLOC_IOC_ALLOC");
		}
	}
}

static void free_all(int fd, uint64_t *offs, uint32_t n, uint32_t batch)
{
	uint32_t i, k;

	for (i = 0; i < n; i += k) {
		struct pyalloc_free req = { 0 };

		k = n - i < batch ? n - i : batch;
		req.count = k;
		req.offsets = (uintptr_t)(offs + i);
		if (ioctl(fd, PYALLOC_IOC_FREE, &req))
			die("PYALLOC_IOC_FREE");
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void report(const char *order, const char *call, uint32_t n,
		   uint32_t batch, double *v, unsigned int count)
{
	qsort(v, count, sizeof(*v), cmp_double);
	printf("%s,%s,%u,%u,%u,%.1f,%.1f,%.1f\n", order, call, n, batch, count,
	       count % 2 ? v[count / 2] : (v[count / 2 - 1] + v[count / 2]) / 2,
	       v[0], v[count - 1]);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: batchbench [--blocks=N] [--rounds=R] [--batch=B]\n"
		"  N blocks of 16..128 B (default 262144, a multiple of %d),\n"
		"  R rounds (2..%d, default 7), batches of B (default the\n"
		"  kernel's most)\n", NSIZES, MAX_ROUNDS);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "blocks", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "batch", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const orders[] = { "in order", "scattered" };
	double first_alloc, t_alloc[2][MAX_ROUNDS], t_free[2][MAX_ROUNDS];
	struct pyalloc_config cfg = {
		.flags = PYALLOC_CONFIG_DECAY,
		.decay_ms = PYALLOC_MAX_DECAY_MS,
	};
	unsigned long n = 262144, rounds = 7, batch = 0;
	struct pyalloc_info info;
	unsigned int o, r;
	uint64_t *offs;
	uint64_t rng = 42;
	int fd, c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		unsigned long v = strtoul(optarg, &end, 10);

		if (*end || !*optarg)
			usage();
		if (c == 'n')
			n = v;
		else if (c == 'r')
			rounds = v;
		else if (c == 'b')
			batch = v;
		else
			usage();
	}
	if (optind != argc || !n || n % NSIZES || n > UINT32_MAX ||
	    rounds < 2 || rounds > MAX_ROUNDS)
		usage();

	fd = open("/dev/pyalloc", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("/dev/pyalloc");
	if (ioctl(fd, PYALLOC_IOC_INFO, &info))
		die("PYALLOC_IOC_INFO");
	if (!batch)
		batch = info.max_batch;
	if (batch > info.max_batch)
		usage();
	if (ioctl(fd, PYALLOC_IOC_CONFIG, &cfg))
		die("PYALLOC_IOC_CONFIG");
	offs = malloc(n * sizeof(*offs));
	if (!offs)
		die("malloc");

	/*
	 * Rounds alternate the two orders, so that drift in the emulator's
	 * speed spreads over both.
	 */
	for (r = 0; r < 2 * rounds; r++) {
		double t0, t1, t2;

		o = r % 2;
		t0 = now_ns();
		alloc_all(fd, offs, (uint32_t)n, (uint32_t)batch);
		t1 = now_ns();
		if (o)		/* outside the timed part */
			rng_shuffle(&rng, offs, (uint32_t)n);
		t2 = now_ns();
		free_all(fd, offs, (uint32_t)n, (uint32_t)batch);
		if (r == 0)
			first_alloc = (t1 - t0) / (double)n;
		else if (r >= 2) {
			t_alloc[o][r / 2 - 1] = (t1 - t0) / (double)n;
			t_free[o][r / 2 - 1] = (now_ns() - t2) / (double)n;
		}
	}
	puts("order,call,blocks,batch,rounds,ns_per_block_median,min,max");
	report("first", "ALLOC", (uint32_t)n, (uint32_t)batch, &first_alloc, 1);
	for (o = 0; o < 2; o++) {
		report(orders[o], "ALLOC", (uint32_t)n, (uint32_t)batch,
		       t_alloc[o], (unsigned int)rounds - 1);
		report(orders[o], "FREE", (uint32_t)n, (uint32_t)batch,
		       t_free[o], (unsigned int)rounds - 1);
	}
	free(offs);
	close(fd);
	return 0;
}
