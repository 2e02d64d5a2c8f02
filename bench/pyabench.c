// SPDX-License-Identifier: GPL-2.0
/*
 * pyabench: one workload on one allocator, one CSV line on stdout.
 *
 *   pyabench --alloc=pyalloc|pyalloc-debug|system --label=NAME
 *            --workload=steady|growth|prodcons|fixed|larson|mem
 *            [--size=N] [--count=N] [--live=N] [--threads=N]
 *            [--seconds=S] [--rep=N] [--seed=N] [--header]
 *
 * --label names the allocator in the output; for --alloc=system it must
 * match the malloc the process really has (glibc, or jemalloc, mimalloc,
 * tcmalloc through LD_PRELOAD), which is checked, so a preload that did not
 * take can never be reported under the wrong name.
 *
 * Throughput line:
 *   workload,alloc,rep,ops,seconds,ops_per_sec,ioctls,ioctls_per_1000
 * Memory line (--workload=mem):
 *   size,alloc,rep,count,ideal,peak,after_free,after_release,
 *   rss_peak,rss_after_free,rss_after_release,release,alloc_s,free_s
 */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

enum bench_alloc bench_kind = ALLOC_SYSTEM;
pya_heap_t *bench_heap;

void *bench_oom(size_t n)
{
	fprintf(stderr, "pyabench: allocation of %zu bytes failed: %s\n", n,
		strerror(errno));
	exit(1);
}

void *bench_array(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED)
		bench_oom(bytes);
	return p;
}

void bench_array_free(void *p, size_t bytes)
{
	munmap(p, bytes);
}

uint64_t bench_ioctls(void)
{
	struct pya_stats st;

	if (bench_kind == ALLOC_SYSTEM)
		return 0;
	if (pya_heap_stats(bench_heap, &st)) {
		perror("pyabench: pya_heap_stats");
		exit(1);
	}
	/* The library's allocation and free ioctls; the STATS ioctls the
	 * benchmark itself makes to read this are left out. */
	return st.ioctl_alloc + st.ioctl_free;
}

/* The symbol that tells each allocator apart in a running process. */
static const struct {
	const char *label, *symbol;
} known[] = {
	{ "jemalloc", "mallctl" },
	{ "mimalloc", "mi_collect" },
	{ "tcmalloc", "MallocExtension_ReleaseFreeMemory" },
};

static int check_label(const char *label)
{
	const char *have = "glibc";

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (dlsym(RTLD_DEFAULT, known[i].symbol))
			have = known[i].label;
	if (strcmp(have, label)) {
		fprintf(stderr,
			"pyabench: --label=%s but this process's malloc is %s (LD_PRELOAD?)\n",
			label, have);
		return -1;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: pyabench --alloc=pyalloc|pyalloc-debug|system --label=NAME\n"
		"                --workload=steady|growth|prodcons|fixed|larson|mem\n"
		"                [--size=N] [--count=N] [--live=N] [--threads=N]\n"
		"                [--seconds=S] [--rep=N] [--seed=N] [--header]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "alloc", required_argument, NULL, 'a' },
		{ "label", required_argument, NULL, 'l' },
		{ "workload", required_argument, NULL, 'w' },
		{ "size", required_argument, NULL, 'z' },
		{ "count", required_argument, NULL, 'n' },
		{ "live", required_argument, NULL, 'v' },
		{ "threads", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 's' },
		{ "rep", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 'e' },
		{ "header", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct bench_params bp = {
		.seconds = 1.0, .seed = 0x9E3779B97F4A7C15ULL, .live = 20000,
		.fixed = 0, .count = 100000, .threads = 4,
	};
	const char *alloc = NULL, *label = NULL, *workload = NULL;
	unsigned int rep = 0;
	int c, header = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': alloc = optarg; break;
		case 'l': label = optarg; break;
		case 'w': workload = optarg; break;
		case 'z': bp.fixed = strtoul(optarg, NULL, 0); break;
		case 'n': bp.count = strtoul(optarg, NULL, 0); break;
		case 'v': bp.live = strtoul(optarg, NULL, 0); break;
		case 't': bp.threads = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 's': bp.seconds = strtod(optarg, NULL); break;
		case 'r': rep = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'e': bp.seed = strtoull(optarg, NULL, 0) | 1; break;
		case 'h': header = 1; break;
		default: usage();
		}
	}
	if (header) {
		if (workload && !strcmp(workload, "mem"))
			puts("size,alloc,rep,count,ideal,peak,after_free,after_release,"
			     "rss_peak,rss_after_free,rss_after_release,release,"
			     "alloc_s,free_s");
		else
			puts("workload,alloc,rep,ops,seconds,ops_per_sec,ioctls,"
			     "ioctls_per_1000");
		return 0;
	}
	if (!alloc || !workload || optind != argc || bp.live == 0 ||
	    bp.count == 0 || bp.threads == 0 || bp.fixed > 512 ||
	    !(bp.seconds > 0))
		usage();
	if (!strcmp(alloc, "pyalloc")) {
		bench_kind = ALLOC_PYALLOC;
		bench_heap = pya_default_heap();
	} else if (!strcmp(alloc, "pyalloc-debug")) {
		struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;

		o.flags = PYA_HEAP_DEBUG;
		bench_kind = ALLOC_PYALLOC_DEBUG;
		bench_heap = pya_heap_open(&o);
	} else if (!strcmp(alloc, "system")) {
		bench_kind = ALLOC_SYSTEM;
		if (!label)
			usage();
		if (check_label(label))
			return 1;
	} else {
		usage();
	}
	if (bench_kind != ALLOC_SYSTEM && !bench_heap) {
		fprintf(stderr, "pyabench: cannot open a pyalloc heap: %s\n",
			strerror(errno));
		return 1;
	}
	if (!label)
		label = alloc;
	bp.seed ^= (uint64_t)rep * 0x2545F4914F6CDD1DULL;

	if (!strcmp(workload, "mem")) {
		struct mem_result m;

		if (wl_memory(&bp, &m))
			return 1;
		printf("%zu,%s,%u,%zu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%s,%.4f,%.4f\n",
		       bp.fixed ? bp.fixed : 24, label, rep, bp.count,
		       (unsigned long long)m.ideal,
		       (unsigned long long)m.peak,
		       (unsigned long long)m.after_free,
		       (unsigned long long)m.after_release,
		       (unsigned long long)m.rss_peak,
		       (unsigned long long)m.rss_after_free,
		       (unsigned long long)m.rss_after_release,
		       m.release, m.alloc_seconds, m.free_seconds);
	} else {
		struct bench_result r = { 0 };
		char name[32];
		int err;

		if (!strcmp(workload, "steady")) {
			err = wl_steady(&bp, &r);
		} else if (!strcmp(workload, "fixed")) {
			if (!bp.fixed)
				usage();
			err = wl_steady(&bp, &r);
		} else if (!strcmp(workload, "growth")) {
			err = wl_growth(&bp, &r);
		} else if (!strcmp(workload, "prodcons")) {
			err = wl_prodcons(&bp, &r);
		} else if (!strcmp(workload, "larson")) {
			err = wl_larson(&bp, &r);
		} else {
			usage();
			err = -1;
		}
		if (err)
			return 1;
		if (!strcmp(workload, "fixed"))
			snprintf(name, sizeof(name), "fixed%zu", bp.fixed);
		else
			snprintf(name, sizeof(name), "%s", workload);
		printf("%s,%s,%u,%llu,%.4f,%.0f,%llu,%.3f\n", name, label, rep,
		       (unsigned long long)r.ops, r.seconds,
		       (double)r.ops / r.seconds, (unsigned long long)r.ioctls,
		       r.ops ? 1000.0 * (double)r.ioctls / (double)r.ops : 0.0);
	}
	fflush(stdout);
	return 0;
}
