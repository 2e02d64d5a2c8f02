// SPDX-License-Identifier: GPL-2.0
/*
 * pyabench: one workload on one allocator, one CSV line on stdout.
 *
 *   pyabench --alloc=pyalloc|pyalloc-debug|system --label=NAME
 *            --workload=steady|growth|prodcons|fixed|larson|wide|mix|mem|frag
 *            [--size=N] [--count=N] [--live=N] [--threads=N]
 *            [--seconds=S] [--settle=S] [--rep=N] [--seed=N] [--header]
 *
 * --label names the allocator in the output; for --alloc=system it must
 * match the malloc the process really has (glibc, or jemalloc, mimalloc,
 * tcmalloc through LD_PRELOAD), which is checked, so a preload that did not
 * take can never be reported under the wrong name.
 *
 * Throughput line:
 *   workload,alloc,rep,ops,seconds,ops_per_sec,ioctls,ioctls_per_1000
 * Memory line (--workload=mem; rss_* for every allocator, heap_* pyalloc's
 * own pool pages, -1 without a pyalloc heap):
 *   size,alloc,rep,count,ideal,rss_peak,rss_after_free,rss_after_release,
 *   rss_settled,settle_s,heap_peak,heap_after_free,heap_after_release,
 *   release,alloc_s,free_s
 * Fragmentation line (--workload=frag):
 *   alloc,rep,count,freed,live_full,live_holes,rss_full,rss_holes,
 *   rss_refill,heap_full,heap_holes,heap_refill,seconds
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

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

/*
 * A system malloc that is pyalloc's drop-in (libpyalloc-malloc.so) has its
 * heap on a descriptor of /dev/pyalloc: found once, read through fdinfo
 * (the kernel's figures) with plain system calls, so reading it neither
 * allocates nor makes an ioctl.
 */
static int preload_fd = -2;

static int find_preload_fd(void)
{
	struct rlimit rl;
	char path[64], link[64];
	int maxfd = 4096;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < 65536)
		maxfd = (int)rl.rlim_cur;
	for (int fd = 0; fd < maxfd; fd++) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (!strcmp(link, "/dev/pyalloc"))
			return fd;
	}
	return -1;
}

/* The sum of fdinfo's "@key:" lines for the drop-in's heap; -1 if none. */
static int64_t preload_field(const char *key)
{
	char path[64], buf[4096];
	size_t klen = strlen(key);
	int64_t sum = -1;
	ssize_t n;
	int fd;

	if (preload_fd == -2)
		preload_fd = find_preload_fd();
	if (preload_fd < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", preload_fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	for (char *line = buf; line && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (!strncmp(line, key, klen) && line[klen] == ':')
			sum = (sum < 0 ? 0 : sum) +
			      (int64_t)strtoull(line + klen + 1, NULL, 10);
	}
	return sum;
}

int64_t bench_heap_bytes(void)
{
	struct pya_stats st;

	if (bench_kind == ALLOC_SYSTEM) {
		int64_t pages = preload_field("pyalloc-pages");

		return pages < 0 ? -1 : pages * 4096;
	}
	if (pya_heap_stats(bench_heap, &st))
		return -1;
	return (int64_t)(st.pages * st.pool_size);
}

uint64_t bench_ioctls(void)
{
	struct pya_stats st;

	if (bench_kind == ALLOC_SYSTEM) {
		int64_t a = preload_field("pyalloc-alloc-ioctls");
		int64_t f = preload_field("pyalloc-free-ioctls");

		return a < 0 || f < 0 ? 0 : (uint64_t)(a + f);
	}
	if (pya_heap_stats(bench_heap, &st)) {
		perror("pyabench: pya_heap_stats");
		exit(1);
	}
	/* The library's allocation and free ioctls; the STATS ioctls the
	 * benchmark itself makes to read this are left out. */
	return st.ioctl_alloc + st.ioctl_free;
}

/* The shared object that defines the process's malloc (the first in the
 * lookup order: LD_PRELOAD's), by label. */
static const struct {
	const char *label, *object;
} known[] = {
	{ "glibc", "libc.so.6" },
	{ "jemalloc", "libjemalloc.so.2" },
	{ "mimalloc", "libmimalloc.so.2" },
	{ "tcmalloc", "libtcmalloc_minimal.so.4" },
	{ "pyalloc-malloc", "libpyalloc-malloc.so" },
};

static int check_label(const char *label)
{
	void *m = dlsym(RTLD_DEFAULT, "malloc");
	const char *have = "?", *name;
	Dl_info di;

	if (m && dladdr(m, &di) && di.dli_fname) {
		name = strrchr(di.dli_fname, '/');
		name = name ? name + 1 : di.dli_fname;
		have = name;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (!strcmp(name, known[i].object))
				have = known[i].label;
	}
	if (strcmp(have, label)) {
		fprintf(stderr,
			"pyabench: --label=%s but this process's malloc is %s (LD_PRELOAD?)\n",
			label, have);
		return -1;
	}
	/* The drop-in serves from glibc, silently, when it has no heap. */
	if (!strcmp(label, "pyalloc-malloc") && bench_heap_bytes() < 0) {
		fprintf(stderr, "pyabench: the drop-in malloc has no pyalloc heap\n");
		return -1;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: pyabench --alloc=pyalloc|pyalloc-debug|system --label=NAME\n"
		"                --workload=steady|growth|prodcons|fixed|larson|wide|mix|mem|frag\n"
		"                [--size=N] [--count=N] [--live=N] [--threads=N]\n"
		"                [--seconds=S] [--settle=S] [--rep=N] [--seed=N] [--header]\n");
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
		{ "settle", required_argument, NULL, 'S' },
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
		case 'S': bp.settle = strtod(optarg, NULL); break;
		case 'r': rep = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'e': bp.seed = strtoull(optarg, NULL, 0) | 1; break;
		case 'h': header = 1; break;
		default: usage();
		}
	}
	if (header) {
		if (workload && !strcmp(workload, "mem"))
			puts("size,alloc,rep,count,ideal,rss_peak,rss_after_free,"
			     "rss_after_release,rss_settled,settle_s,heap_peak,"
			     "heap_after_free,heap_after_release,release,"
			     "alloc_s,free_s");
		else if (workload && !strcmp(workload, "frag"))
			puts("alloc,rep,count,freed,live_full,live_holes,rss_full,"
			     "rss_holes,rss_refill,heap_full,heap_holes,"
			     "heap_refill,seconds");
		else
			puts("workload,alloc,rep,ops,seconds,ops_per_sec,ioctls,"
			     "ioctls_per_1000");
		return 0;
	}
	if (!alloc || !workload || optind != argc || bp.live == 0 ||
	    bp.count == 0 || bp.threads == 0 || bp.fixed > 512 ||
	    !(bp.seconds > 0) || bp.settle < 0)
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
		printf("%zu,%s,%u,%zu,%llu,%llu,%llu,%llu,%llu,%.2f,%lld,%lld,%lld,%s,%.4f,%.4f\n",
		       bp.fixed ? bp.fixed : 24, label, rep, bp.count,
		       (unsigned long long)m.ideal,
		       (unsigned long long)m.rss_peak,
		       (unsigned long long)m.rss_after_free,
		       (unsigned long long)m.rss_after_release,
		       (unsigned long long)m.rss_settled, bp.settle,
		       (long long)m.heap_peak, (long long)m.heap_after_free,
		       (long long)m.heap_after_release,
		       m.release, m.alloc_seconds, m.free_seconds);
	} else if (!strcmp(workload, "frag")) {
		struct frag_result f;

		if (wl_frag(&bp, &f))
			return 1;
		printf("%s,%u,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%lld,%lld,%lld,%.4f\n",
		       label, rep, (unsigned long long)f.count,
		       (unsigned long long)f.freed,
		       (unsigned long long)f.live_full,
		       (unsigned long long)f.live_holes,
		       (unsigned long long)f.rss_full,
		       (unsigned long long)f.rss_holes,
		       (unsigned long long)f.rss_refill,
		       (long long)f.heap_full, (long long)f.heap_holes,
		       (long long)f.heap_refill, f.seconds);
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
		} else if (!strcmp(workload, "wide")) {
			bp.fixed = SIZE_WIDE;
			err = wl_steady(&bp, &r);
		} else if (!strcmp(workload, "mix")) {
			bp.fixed = SIZE_MIX;
			bp.mix = 1;
			err = wl_steady(&bp, &r);
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
