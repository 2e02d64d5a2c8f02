// SPDX-License-Identifier: GPL-2.0
/*
 * pyalloc-holder: open a heap of /dev/pyalloc, fill it, and hold it until
 * SIGTERM, for the VM test of pyallocstat (tools/tests/pyallocstat_vm.py).
 *
 *   pyalloc-holder [-P] [-f] [-g 16] [-c SIZE:COUNT] OUT SIZE:COUNT...
 *
 *   -P           private mode (PYALLOC_MODE_PRIVATE); default shared
 *   -f           fork once the blocks are allocated; the child holds too
 *   -g 16        granularity 16
 *   -c SIZE:COUNT  the child (with -f) allocates these blocks of its own
 *                (private mode: in its own copy of the heap)
 *   OUT          each process appends one JSON line with the kernel's
 *                figures for its heap (PYALLOC_IOC_INFO and _STATS), taken
 *                once it is done: what pyallocstat must show
 *
 * Every block is written to, so its page is faulted in.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/pyalloc.h>

static int fd = -1;
static char *base;

static void die(const char *what)
{
	fprintf(stderr, "pyalloc-holder[%d]: %s: %s\n", (int)getpid(), what,
		strerror(errno));
	exit(1);
}

static void alloc_blocks(const char *spec)
{
	unsigned int size, count, n, i;
	uint64_t off[PYALLOC_MAX_BATCH];
	struct pyalloc_alloc a;

	if (sscanf(spec, "%u:%u", &size, &count) != 2) {
		fprintf(stderr, "pyalloc-holder: bad SIZE:COUNT '%s'\n", spec);
		exit(2);
	}
	while (count) {
		n = count < PYALLOC_MAX_BATCH ? count : PYALLOC_MAX_BATCH;
		memset(&a, 0, sizeof(a));
		a.size = size;
		a.count = n;
		a.offsets = (uintptr_t)off;
		if (ioctl(fd, PYALLOC_IOC_ALLOC, &a))
			die("PYALLOC_IOC_ALLOC");
		for (i = 0; i < n; i++)
			memset(base + off[i], 0xa5, a.block_size);
		count -= n;
	}
}

/* One JSON line with this process's view of its heap. */
static void report(const char *out)
{
	struct pyalloc_class_stats cls[PYALLOC_MAX_CLASSES];
	struct pyalloc_stats st;
	struct pyalloc_info info;
	uint64_t in_use = 0, nfree = 0;
	char line[8192];
	int len, ofd;
	unsigned int c;

	memset(&info, 0, sizeof(info));
	if (ioctl(fd, PYALLOC_IOC_INFO, &info))
		die("PYALLOC_IOC_INFO");
	memset(&st, 0, sizeof(st));
	st.classes = (uintptr_t)cls;
	st.classes_count = PYALLOC_MAX_CLASSES;
	if (ioctl(fd, PYALLOC_IOC_STATS, &st))
		die("PYALLOC_IOC_STATS");
	len = snprintf(line, sizeof(line),
		       "{\"pid\": %d, \"id\": %llu, \"mode\": \"%s\", "
		       "\"granularity\": %u, \"window_bytes\": %llu, "
		       "\"pages\": %llu, \"arenas\": %llu, "
		       "\"bytes_in_use\": %llu, \"bytes_free\": %llu, "
		       "\"limit_bytes\": %llu, \"alloc_ioctls\": %llu, "
		       "\"free_ioctls\": %llu, \"forks\": %llu, \"classes\": [",
		       (int)getpid(), (unsigned long long)st.heap_id,
		       st.mode == PYALLOC_MODE_PRIVATE ? "private" : "shared",
		       st.granularity, (unsigned long long)info.window_size,
		       (unsigned long long)st.pages,
		       (unsigned long long)st.arenas_current,
		       (unsigned long long)st.bytes_in_use,
		       (unsigned long long)st.bytes_free,
		       (unsigned long long)st.mem_limit,
		       (unsigned long long)st.alloc_calls,
		       (unsigned long long)st.free_calls,
		       (unsigned long long)st.forks);
	for (c = 0; c < st.classes_count; c++) {
		in_use += cls[c].blocks_in_use;
		nfree += cls[c].blocks_free;
		if (!cls[c].pools)
			continue;
		len += snprintf(line + len, sizeof(line) - len,
				"%s[%u, %u, %u, %llu, %llu]",
				line[len - 1] == '[' ? "" : ", ", c,
				cls[c].block_size, cls[c].pools,
				(unsigned long long)cls[c].blocks_in_use,
				(unsigned long long)cls[c].blocks_free);
	}
	len += snprintf(line + len, sizeof(line) - len,
			"], \"blocks_in_use\": %llu, \"blocks_free\": %llu}\n",
			(unsigned long long)in_use, (unsigned long long)nfree);
	if (len >= (int)sizeof(line)) {
		fprintf(stderr, "pyalloc-holder: report too long\n");
		exit(1);
	}
	/* One write with O_APPEND: lines of parent and child never mix. */
	ofd = open(out, O_WRONLY | O_APPEND | O_CREAT, 0666);
	if (ofd < 0 || write(ofd, line, len) != len || close(ofd))
		die(out);
}

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

int main(int argc, char **argv)
{
	struct pyalloc_config cfg;
	struct pyalloc_info info;
	const char *child_spec = NULL;
	int opt, private = 0, do_fork = 0, gran = 0, i;
	pid_t child = 0;

	while ((opt = getopt(argc, argv, "Pfg:c:")) != -1) {
		switch (opt) {
		case 'P': private = 1; break;
		case 'f': do_fork = 1; break;
		case 'g': gran = atoi(optarg); break;
		case 'c': child_spec = optarg; break;
		default: return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: pyalloc-holder [-P] [-f] [-g 16] [-c SIZE:COUNT] OUT SIZE:COUNT...\n");
		return 2;
	}
	signal(SIGTERM, on_term);
	fd = open("/dev/pyalloc", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("/dev/pyalloc");
	memset(&cfg, 0, sizeof(cfg));
	if (private) {
		cfg.flags |= PYALLOC_CONFIG_MODE;
		cfg.mode = PYALLOC_MODE_PRIVATE;
	}
	if (gran) {
		cfg.flags |= PYALLOC_CONFIG_GRANULARITY;
		cfg.granularity = gran;
	}
	if (cfg.flags && ioctl(fd, PYALLOC_IOC_CONFIG, &cfg))
		die("PYALLOC_IOC_CONFIG");
	memset(&info, 0, sizeof(info));
	if (ioctl(fd, PYALLOC_IOC_INFO, &info))
		die("PYALLOC_IOC_INFO");
	base = mmap(NULL, info.window_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, 0);
	if (base == MAP_FAILED)
		die("mmap");
	for (i = optind + 1; i < argc; i++)
		alloc_blocks(argv[i]);
	if (do_fork) {
		child = fork();
		if (child < 0)
			die("fork");
		if (child == 0 && child_spec)
			alloc_blocks(child_spec);
	}
	report(argv[optind]);
	for (;;)
		pause();
}
