// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The drop-in malloc (libpyalloc-malloc.so), entry point by entry point.
 *
 * This program is linked against the preload (a DT_NEEDED before libc, so
 * its malloc interposes exactly as with LD_PRELOAD) and calls the plain
 * glibc API.  It runs in three places:
 *   - in the VM with the module: small blocks must come from /dev/pyalloc
 *     (their addresses lie in the device's mapping in /proc/self/maps);
 *   - on the host, where the device never exists: the same binary must run
 *     every test on glibc's allocator alone (the fallback);
 *   - on the host against the fake device (tests/host/lib_fakedev.c, built
 *     with PYA_FAKE_DEVICE), whose window is a memfd named "pyalloc".
 * In the VM, fallback_device_absent also hides /dev/pyalloc in a mount
 * namespace and runs the program again.
 */
#define _GNU_SOURCE
/* See pyalloc_util.h: the 6.12 harness is not -Wextra clean. */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic ignored "-Wsign-compare"
/* The misuse is the test: overflowing sizes, an interior free, a pointer
 * compared after realloc() moved or freed it. */
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#include "kselftest_harness.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);

static char self_path[4096];

/* Does @p lie in a mapping of the device (or of the fake device)? */
static int in_device(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	int found = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (!strstr(line, "pyalloc"))
			continue;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi)
			found = 1;
	}
	fclose(f);
	return found;
}

/* Small blocks are expected on the device when it is there. */
static int expect_device(void)
{
#ifdef PYA_FAKE_DEVICE
	const char *v = getenv("PYALLOC_DISABLE");

	return !(v && *v && strcmp(v, "0"));
#else
	return access("/dev/pyalloc", F_OK) == 0;
#endif
}

/* The descriptor of the heap, or -1. */
static int heap_fd(void)
{
	char path[64], target[256];
	int fd;

	for (fd = 0; fd < 4096; fd++) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strstr(target, "/dev/pyalloc") || strstr(target, "/dev/null"))
			if (fd >= 100)	/* ours sits high; see heap_own_fd() */
				return fd;
	}
	return -1;
}

static size_t round16(size_t n)
{
	return n ? (n + 15) & ~(size_t)15 : 16;
}

TEST(small_blocks_from_device)
{
	int dev = expect_device();
	size_t n;

	TH_LOG("device %s", dev ? "expected" : "absent: glibc serves everything");
	for (n = 0; n <= 600; n++) {
		char *p = malloc(n);

		ASSERT_NE(NULL, p);
		if (n > 8)
			EXPECT_EQ(0, (uintptr_t)p % 16);
		EXPECT_LE(n, malloc_usable_size(p));
		if (n <= 512) {
			EXPECT_EQ(dev, in_device(p));
			if (dev)
				EXPECT_EQ(round16(n), malloc_usable_size(p));
		} else {
			EXPECT_EQ(0, in_device(p));
		}
		memset(p, 0xab, malloc_usable_size(p));
		free(p);
	}
}

TEST(malloc_zero)
{
	void *a = malloc(0), *b = malloc(0);

	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	EXPECT_NE(a, b);
	EXPECT_EQ(expect_device(), in_device(a));
	free(a);
	free(b);
	free(NULL);
	EXPECT_EQ(0, malloc_usable_size(NULL));
}

/* Every alignment from 8 bytes to 64 KiB, through every aligned entry
 * point, with sizes on both sides of 512. */
TEST(alignments)
{
	static const size_t sizes[] = { 0, 1, 24, 100, 256, 512, 513, 4000, 70000 };
	size_t align, i;

	for (align = 8; align <= 65536; align *= 2) {
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			size_t n = sizes[i];
			void *p[3] = { 0 };
			int k;

			p[0] = aligned_alloc(align, n);
			p[1] = memalign(align, n);
			ASSERT_EQ(0, posix_memalign(&p[2], align, n));
			for (k = 0; k < 3; k++) {
				ASSERT_NE(NULL, p[k]);
				EXPECT_EQ(0, (uintptr_t)p[k] % align) {
					TH_LOG("align %zu size %zu entry %d: %p",
					       align, n, k, p[k]);
				}
				EXPECT_LE(n, malloc_usable_size(p[k]));
				if (n && (n + align - 1) / align * align <= 512 &&
				    align <= 512)
					EXPECT_EQ(expect_device(), in_device(p[k]));
				memset(p[k], k, n);
			}
			for (k = 0; k < 3; k++)
				free(p[k]);
		}
	}
	/* valloc and pvalloc: page-aligned, from glibc. */
	{
		void *v = valloc(10), *pv = pvalloc(10);

		ASSERT_NE(NULL, v);
		ASSERT_NE(NULL, pv);
		EXPECT_EQ(0, (uintptr_t)v % 4096);
		EXPECT_EQ(0, (uintptr_t)pv % 4096);
		EXPECT_LE(4096, malloc_usable_size(pv));
		free(v);
		free(pv);
	}
}

TEST(posix_memalign_einval)
{
	static const size_t bad[] = { 0, 1, 3, 4, 12, 24, 100, 4097 };
	void *p = (void *)0x1234;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(EINVAL, posix_memalign(&p, bad[i], 16));
		EXPECT_EQ((void *)0x1234, p);	/* untouched */
	}
	EXPECT_EQ(ENOMEM, posix_memalign(&p, 64, SIZE_MAX - 10));
	EXPECT_EQ((void *)0x1234, p);
}

static void fill(unsigned char *p, size_t n, unsigned int seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(seed + i * 7);
}

static int check(const unsigned char *p, size_t n, unsigned int seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed + i * 7))
			return 0;
	return 1;
}

/* realloc across the 512-byte boundary both ways keeps the content. */
TEST(realloc_across_512)
{
	static const size_t steps[] = { 1, 16, 17, 100, 500, 512, 513, 600,
					4000, 100000, 300, 513, 512, 64, 8, 1 };
	unsigned char *p = NULL;
	size_t i, have = 0;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		size_t n = steps[i];
		unsigned char *q = realloc(p, n);

		ASSERT_NE(NULL, q);
		if (have)
			ASSERT_TRUE(check(q, have < n ? have : n, 42)) {
				TH_LOG("step %zu: %zu -> %zu bytes", i, have, n);
			}
		fill(q, n, 42);
		p = q;
		have = n;
	}
	/* The same class stays in place. */
	p = realloc(p, 40);
	ASSERT_NE(NULL, p);
	if (expect_device())
		EXPECT_EQ(p, realloc(p, 48));
	/* glibc: realloc(p, 0) frees p and returns NULL. */
	EXPECT_EQ(NULL, realloc(p, 0));
	p = realloc(NULL, 30);
	ASSERT_NE(NULL, p);
	EXPECT_EQ(NULL, realloc(p, SIZE_MAX - 100));	/* p untouched */
	EXPECT_EQ(ENOMEM, errno);
	fill(p, 30, 1);
	EXPECT_TRUE(check(p, 30, 1));
	free(p);
	/* reallocarray: overflow is ENOMEM, else realloc. */
	errno = 0;
	EXPECT_EQ(NULL, reallocarray(NULL, SIZE_MAX / 2, 3));
	EXPECT_EQ(ENOMEM, errno);
	p = reallocarray(NULL, 10, 10);
	ASSERT_NE(NULL, p);
	free(p);
}

TEST(calloc_zeroes_reused_blocks)
{
	size_t n;

	for (n = 1; n <= 600; n += 37) {
		unsigned char *p = malloc(n), *q;
		size_t i;

		ASSERT_NE(NULL, p);
		memset(p, 0xff, malloc_usable_size(p));
		free(p);
		q = calloc(1, n);	/* the same block, from the magazine */
		ASSERT_NE(NULL, q);
		for (i = 0; i < malloc_usable_size(q); i++)
			ASSERT_EQ(0, q[i]);
		free(q);
	}
	errno = 0;
	EXPECT_EQ(NULL, calloc(SIZE_MAX / 4, 8));
	EXPECT_EQ(ENOMEM, errno);
	errno = 0;
	EXPECT_EQ(NULL, calloc(1ULL << 33, 1ULL << 33));
	EXPECT_EQ(ENOMEM, errno);
}

/* Pointers the preload did not hand out go back to glibc. */
TEST(foreign_pointers)
{
	char *a = __libc_malloc(40), *b = __libc_malloc(4000), *c;

	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	EXPECT_EQ(0, in_device(a));
	strcpy(a, "glibc");
	EXPECT_LE(40, malloc_usable_size(a));
	c = realloc(a, 100);		/* stays glibc's */
	ASSERT_NE(NULL, c);
	EXPECT_STREQ("glibc", c);
	free(c);
	free(b);
	/* strdup, asprintf and friends allocate inside libc: through us. */
	c = strdup("hello");
	ASSERT_NE(NULL, c);
	EXPECT_EQ(expect_device(), in_device(c));
	free(c);
}

static void free_interior(void *arg)
{
	char *volatile p = malloc(64);

	(void)arg;
	free(p + 16);
}

/* Run @fn in a child; it must die of SIGABRT after printing @msg. */
static int dies_with(void (*fn)(void *), const char *msg)
{
	char buf[1024] = "";
	int pfd[2], status;
	ssize_t r;
	pid_t pid;

	if (pipe(pfd))
		return 0;
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 2);
		fn(NULL);
		_exit(0);
	}
	close(pfd[1]);
	r = read(pfd[0], buf, sizeof(buf) - 1);
	buf[r > 0 ? r : 0] = '\0';
	close(pfd[0]);
	waitpid(pid, &status, 0);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
	       strstr(buf, msg);
}

static void double_free(void *arg)
{
	/* volatile: the compiler may drop a malloc/free pair it can see. */
	char *volatile p = malloc(64);

	(void)arg;
	free(p);
	free(p);
}

TEST(invalid_pointer_aborts)
{
	if (!expect_device())
		SKIP(return, "glibc's own checks apply without the device");
	EXPECT_TRUE(dies_with(free_interior, "free(): invalid pointer"));
	EXPECT_TRUE(dies_with(double_free, "free(): double free"));
}

TEST(errno_across_free)
{
	void *p[2000];
	int i;

	for (i = 0; i < 2000; i++)
		ASSERT_NE(NULL, p[i] = malloc(i % 3 ? 32 : 5000));
	/* Enough frees of one class to drain a magazine into the kernel. */
	for (i = 0; i < 2000; i++) {
		errno = 1234;
		free(p[i]);
		ASSERT_EQ(1234, errno);
	}
	errno = 4321;
	free(NULL);
	EXPECT_EQ(4321, errno);
	/* A successful malloc leaves errno alone too. */
	errno = 77;
	p[0] = malloc(24);
	EXPECT_EQ(77, errno);
	free(p[0]);
}

struct churn {
	volatile int stop;
	unsigned int seed;
	unsigned long rounds;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	unsigned char *p[64];
	unsigned long r = 0;
	int i;

	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		for (i = 0; i < 64; i++) {
			size_t n = 1 + (i * 37 + r) % 700;

			p[i] = malloc(n);
			if (!p[i])
				abort();
			fill(p[i], n, c->seed + i);
		}
		for (i = 0; i < 64; i++) {
			if (!check(p[i], 1 + (i * 37 + r) % 700, c->seed + i))
				abort();
			free(p[i]);
		}
		r++;
	}
	c->rounds = r;
	return NULL;
}

/* Fork isolation both ways while three threads allocate and free. */
TEST(fork_isolation_with_threads)
{
	struct churn c[3] = { { .seed = 1 }, { .seed = 2 }, { .seed = 3 } };
	enum { N = 1000 };
	static unsigned char *b[N];
	int i, k, tochild[2], status;
	pthread_t t[3];
	char go = 'g';

	for (i = 0; i < N; i++) {
		ASSERT_NE(NULL, b[i] = malloc(1 + i % 512));
		fill(b[i], 1 + i % 512, i);
	}
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, churn_thread, &c[i]));
	for (k = 0; k < 5; k++) {
		pid_t pid;

		ASSERT_EQ(0, pipe(tochild));
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			/* The parent rewrites after the fork: we keep ours. */
			if (read(tochild[0], &go, 1) != 1)
				_exit(1);
			for (i = 0; i < N; i++)
				if (!check(b[i], 1 + i % 512, i))
					_exit(2);
			/* Then we rewrite and free all of them. */
			for (i = 0; i < N; i++) {
				memset(b[i], 0, 1 + i % 512);
				free(b[i]);
			}
			for (i = 0; i < N; i++)
				if (!(b[i] = malloc(1 + i % 512)))
					_exit(3);
			_exit(0);
		}
		for (i = 0; i < N; i++)
			fill(b[i], 1 + i % 512, k * N + i + 7);
		ASSERT_EQ(1, write(tochild[1], &go, 1));
		close(tochild[0]);
		close(tochild[1]);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			TH_LOG("child status %#x", status);
		}
		for (i = 0; i < N; i++) {
			ASSERT_TRUE(check(b[i], 1 + i % 512, k * N + i + 7));
			fill(b[i], 1 + i % 512, i);
		}
	}
	for (i = 0; i < 3; i++) {
		__atomic_store_n(&c[i].stop, 1, __ATOMIC_RELAXED);
		ASSERT_EQ(0, pthread_join(t[i], NULL));
	}
	for (i = 0; i < N; i++)
		free(b[i]);
}

/*
 * _Fork() runs no atfork handlers (nor does the raw system call): the
 * child still owns its copy of the heap, keeps the forking thread's
 * magazines and allocates, while another thread of the parent churned.
 */
TEST(fork_without_handlers)
{
	struct churn c = { .seed = 9 };
	unsigned char *b[300];
	pthread_t t;
	int i, k, status;

	for (i = 0; i < 300; i++) {
		ASSERT_NE(NULL, b[i] = malloc(1 + i));
		fill(b[i], 1 + i, i);
	}
	ASSERT_EQ(0, pthread_create(&t, NULL, churn_thread, &c));
	for (k = 0; k < 20; k++) {
		pid_t pid = _Fork();

		ASSERT_LE(0, pid);
		if (pid == 0) {
			void *q[500];

			alarm(20);	/* a deadlock fails, never hangs */
			for (i = 0; i < 300; i++) {
				if (!check(b[i], 1 + i, i))
					_exit(1);
				memset(b[i], 0, 1 + i);
				free(b[i]);
			}
			for (i = 0; i < 500; i++)
				if (!(q[i] = malloc(1 + i % 600)))
					_exit(2);
			for (i = 0; i < 500; i++)
				free(q[i]);
			_exit(0);
		}
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			TH_LOG("child status %#x", status);
		}
	}
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
	ASSERT_EQ(0, pthread_join(t, NULL));
	for (i = 0; i < 300; i++) {
		ASSERT_TRUE(check(b[i], 1 + i, i));
		free(b[i]);
	}
}

TEST(fork_exec_loop)
{
	int k, status;

	for (k = 0; k < 30; k++) {
		char *p = malloc(100);
		pid_t pid;

		ASSERT_NE(NULL, p);
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			/* The device descriptor is O_CLOEXEC: none survives. */
			execl("/bin/sh", "sh", "-c",
			      "for f in /proc/self/fd/*; do "
			      "case $(readlink $f) in *pyalloc*) exit 1;; esac; done",
			      (char *)NULL);
			_exit(127);
		}
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		free(p);
	}
	/* system() and popen() spawn with vfork semantics: no fork hooks. */
	EXPECT_EQ(0, system("exit 0"));
}

struct handoff {
	pthread_mutex_t lock;
	void *blocks[4][256];
	int ready;
};

static void *producer(void *arg)
{
	struct handoff *h = arg;
	int me, i;

	pthread_mutex_lock(&h->lock);
	me = h->ready++;
	pthread_mutex_unlock(&h->lock);
	for (i = 0; i < 256; i++) {
		h->blocks[me][i] = malloc(16 + (i * 13) % 480);
		if (!h->blocks[me][i])
			abort();
		fill(h->blocks[me][i], 16, me * 1000 + i);
	}
	return NULL;	/* exits with its magazines flushed */
}

/* Threads exit while others free the blocks they allocated. */
TEST(threads_exit_while_others_free)
{
	struct handoff *h = calloc(1, sizeof(*h));
	pthread_t t[4];
	int round, i, j;

	ASSERT_NE(NULL, h);
	for (round = 0; round < 10; round++) {
		pthread_mutex_init(&h->lock, NULL);
		h->ready = 0;
		for (i = 0; i < 4; i++)
			ASSERT_EQ(0, pthread_create(&t[i], NULL, producer, h));
		for (i = 0; i < 4; i++)
			ASSERT_EQ(0, pthread_join(t[i], NULL));
		for (i = 0; i < 4; i++)
			for (j = 0; j < 256; j++) {
				ASSERT_TRUE(check(h->blocks[i][j], 16, i * 1000 + j));
				free(h->blocks[i][j]);
			}
	}
	free(h);
}

static pthread_key_t late_key;
static int late_ok;

/* A key created after the library's: its destructor runs after the
 * library's own thread-exit hook, and must still be able to allocate. */
static void late_destructor(void *arg)
{
	char *p = malloc(50), *q = calloc(3, 30);

	free(arg);
	if (p && q) {
		strcpy(p, "late");
		q = realloc(q, 200);
		late_ok = q && !q[89] && !strcmp(p, "late");
	}
	free(p);
	free(q);
}

static void *late_thread(void *arg)
{
	(void)arg;
	free(malloc(32));
	pthread_setspecific(late_key, malloc(40));
	return NULL;
}

TEST(destructors_after_thread_exit_hook)
{
	pthread_t t;

	ASSERT_EQ(0, pthread_key_create(&late_key, late_destructor));
	ASSERT_EQ(0, pthread_create(&t, NULL, late_thread, NULL));
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(1, late_ok);
}

static void *dl_thread(void *arg)
{
	(void)arg;
	/* dlsym and dlerror allocate inside libc and ld.so. */
	if (dlsym(RTLD_DEFAULT, "pyalloc_no_such_symbol") || !dlerror())
		return (void *)1;
	return NULL;
}

TEST(dlerror_from_threads)
{
	pthread_t t[4];
	void *ret;
	int i;

	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, dl_thread, NULL));
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, pthread_join(t[i], &ret));
		EXPECT_EQ(NULL, ret);
	}
}

/*
 * The program closes or dup2()s over the device descriptor: the heap is
 * lost, never fed ioctls through another file; small requests fall back to
 * glibc, and blocks already handed out stay valid and may be freed.
 */
static void descriptor_taken(struct __test_metadata *_metadata, int use_close)
{
	char *old[100], *p;
	int fd, i, null;

	if (!expect_device())
		SKIP(return, "no device");
	fd = heap_fd();
	ASSERT_LE(0, fd);
	EXPECT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	for (i = 0; i < 100; i++) {
		old[i] = malloc(200);
		ASSERT_NE(NULL, old[i]);
		fill((unsigned char *)old[i], 200, i);
	}
	if (use_close) {
		ASSERT_EQ(0, close(fd));
	} else {
		null = open("/dev/zero", O_RDWR);
		ASSERT_LE(0, null);
		ASSERT_EQ(fd, dup2(null, fd));
		close(null);
	}
	/* Enough traffic to need the kernel (a refill or a drain). */
	for (i = 0; i < 5000; i++) {
		p = malloc(1 + i % 512);
		ASSERT_NE(NULL, p);
		memset(p, 1, 1 + i % 512);
		free(p);
	}
	for (i = 0; i < 100; i++) {
		ASSERT_TRUE(check((unsigned char *)old[i], 200, i));
		free(old[i]);
	}
	p = malloc(300);
	ASSERT_NE(NULL, p);
	EXPECT_EQ(0, in_device(p));	/* from glibc now */
	free(p);
}

TEST(descriptor_closed)
{
	descriptor_taken(_metadata, 1);
}

TEST(descriptor_dup2_over)
{
	descriptor_taken(_metadata, 0);
}

/* Run this program with @env added, in @mode ("absent" or "limit"). */
static int run_self(const char *mode, const char *env, int hide_dev)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		if (hide_dev) {
			/* A container without the node: /dev is an empty
			 * tmpfs in a mount namespace of our own. */
			if (unshare(CLONE_NEWNS) ||
			    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
			    mount("tmpfs", "/dev", "tmpfs", 0, NULL))
				_exit(4);
		}
		if (env)
			putenv((char *)env);
		execl(self_path, self_path, "--child", mode, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The child's side of the re-executed modes: 0 on success. */
static int child_mode(const char *mode)
{
	void *p[20000];
	int i, outside = 0;

	for (i = 0; i < 20000; i++) {
		p[i] = malloc(200);
		if (!p[i])
			return 1;
		memset(p[i], i, 200);
		outside += !in_device(p[i]);
	}
	for (i = 0; i < 20000; i++)
		free(p[i]);
	if (!strcmp(mode, "absent"))
		return outside == 20000 ? 0 : 2;
	/* "limit": 20000 x 208 bytes is over 1 MiB: some came from the
	 * device, the rest from glibc, silently. */
	return outside > 0 && outside < 20000 ? 0 : 3;
}

/*
 * The fallback tests run this whole program again: on the debug lane's
 * KASAN kernel that takes longer than the harness's default 30 s.
 */
FIXTURE(rerun) {
	int unused;
};

FIXTURE_SETUP(rerun)
{
}

FIXTURE_TEARDOWN(rerun)
{
}

TEST_F_TIMEOUT(rerun, fallback_device_absent, 600)
{
	int rc;

	if (!expect_device()) {
		/* This very run is the fallback: every test above ran on
		 * glibc alone; check the re-executed mode too. */
		EXPECT_EQ(0, run_self("absent", NULL, 0));
		return;
	}
#ifdef PYA_FAKE_DEVICE
	EXPECT_EQ(0, run_self("absent", "PYALLOC_DISABLE=1", 0));
#else
	rc = run_self("absent", NULL, 1);
	if (rc == 4)
		SKIP(return, "cannot hide /dev/pyalloc (mount namespace)");
	EXPECT_EQ(0, rc);
#endif
	(void)rc;
}

TEST_F_TIMEOUT(rerun, fallback_at_heap_limit, 600)
{
	if (!expect_device())
		SKIP(return, "no device");
	EXPECT_EQ(0, run_self("limit", "PYALLOC_LIMIT_MB=1", 0));
}

TEST(introspection)
{
	struct mallinfo2 a, b;
	void *p[1000];
	int i;

	a = mallinfo2();
	for (i = 0; i < 1000; i++)
		ASSERT_NE(NULL, p[i] = malloc(100));
	b = mallinfo2();
	EXPECT_LE(a.uordblks + 1000 * 100, b.uordblks);
	for (i = 0; i < 1000; i++)
		free(p[i]);
	i = malloc_trim(0);
	EXPECT_TRUE(i == 0 || i == 1);
}

int main(int argc, char **argv)
{
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);

	if (n > 0)
		self_path[n] = '\0';
	if (argc == 3 && !strcmp(argv[1], "--child"))
		return child_mode(argv[2]);
	return test_harness_run(argc, argv);
}
