// SPDX-License-Identifier: GPL-2.0
/*
 * forkbench: the cost of fork() for a process whose small objects live in
 * a private pyalloc heap (the kernel copies the heap inside fork), side by
 * side with the same objects from glibc's malloc (the kernel shares the
 * pages copy-on-write).  A benchmark, not a test.
 *
 *   forkbench pyalloc|glibc MIB REPS
 *
 * Fills MIB MiB with 64-byte objects (every one written), then REPS times:
 * fork; the parent times fork() itself; the child times its first write to
 * every object (the copy-on-write faults for glibc, the faults that map the
 * child's copied pages for pyalloc) and reports through a pipe.  Prints one
 * CSV line per repetition: allocator,mib,rep,fork_us,first_write_us.
 * Uses the device directly (no library), as the drop-in malloc does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/pyalloc.h>

#define OBJ	64

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what)
{
	fprintf(stderr, "forkbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* n objects from a private heap of the device; their addresses into obj. */
static void fill_pyalloc(char **obj, size_t n)
{
	struct pyalloc_config cfg = {
		.flags = PYALLOC_CONFIG_MODE | PYALLOC_CONFIG_MEM_LIMIT,
		.mode = PYALLOC_MODE_PRIVATE, .mem_limit = 1ULL << 30,
	};
	struct pyalloc_info info = { 0 };
	uint64_t off[PYALLOC_MAX_BATCH];
	size_t i = 0, k;
	char *base;
	int fd = open("/dev/pyalloc", O_RDWR | O_CLOEXEC);

	if (fd < 0 || ioctl(fd, PYALLOC_IOC_CONFIG, &cfg) ||
	    ioctl(fd, PYALLOC_IOC_INFO, &info))
		die("/dev/pyalloc");
	base = mmap(NULL, info.window_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		die("mmap");
	while (i < n) {
		struct pyalloc_alloc a = {
			.size = OBJ, .count = PYALLOC_MAX_BATCH,
			.offsets = (uint64_t)(uintptr_t)off,
		};

		if (n - i < PYALLOC_MAX_BATCH)
			a.count = n - i;
		if (ioctl(fd, PYALLOC_IOC_ALLOC, &a))
			die("PYALLOC_IOC_ALLOC");
		for (k = 0; k < a.count; k++)
			obj[i++] = base + off[k];
	}
}

static void fill_glibc(char **obj, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		obj[i] = malloc(OBJ);
		if (!obj[i])
			die("malloc");
	}
}

int main(int argc, char **argv)
{
	size_t n, i;
	char **obj;
	int mib, reps, r;

	if (argc != 4) {
		fprintf(stderr, "usage: forkbench pyalloc|glibc MIB REPS\n");
		return 2;
	}
	mib = atoi(argv[2]);
	reps = atoi(argv[3]);
	n = ((size_t)mib << 20) / OBJ;
	obj = mmap(NULL, n * sizeof(*obj), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (obj == MAP_FAILED)
		die("mmap");
	if (!strcmp(argv[1], "pyalloc"))
		fill_pyalloc(obj, n);
	else
		fill_glibc(obj, n);
	for (i = 0; i < n; i++)
		memset(obj[i], (int)i, OBJ);

	for (r = 0; r < reps; r++) {
		double t0, t1, w[2];
		int p[2], status;
		pid_t pid;

		if (pipe(p))
			die("pipe");
		t0 = now_us();
		pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			double s = now_us();

			for (i = 0; i < n; i++)
				obj[i][0]++;
			w[0] = s;
			w[1] = now_us() - s;
			_exit(write(p[1], w, sizeof(w)) == sizeof(w) ? 0 : 1);
		}
		t1 = now_us();
		if (read(p[0], w, sizeof(w)) != sizeof(w) ||
		    waitpid(pid, &status, 0) != pid || status)
			die("child");
		close(p[0]);
		close(p[1]);
		printf("%s,%d,%d,%.0f,%.0f\n", argv[1], mib, r, t1 - t0, w[1]);
		fflush(stdout);
	}
	return 0;
}
