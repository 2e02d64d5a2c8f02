// SPDX-License-Identifier: GPL-2.0
/*
 * Nothing waits on a heap unkillably.  A process whose threads free and
 * re-allocate a large heap (every free releases arenas: unmapping and
 * freeing hundreds of pages) while other threads fault on the window and
 * call ioctls is killed with SIGKILL at random moments: it must die, every
 * time, and the module must give every page back.  Released arenas are
 * unmapped and freed outside the heap lock (kmod/heap.c), waits are
 * mutex_lock_killable(), and long loops reschedule.  On the debug kernel the
 * hung-task detector watches the same run.
 */
#include "pyalloc_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define HEAP_MB		32
#define NBLK		(HEAP_MB * 1024 * 1024 / 512)

struct victim {
	int fd;
	struct pyalloc_info info;
	char *map;
	__u64 *off;
};

/* Free everything in full batches, then take it all back and touch it. */
static void *releaser(void *arg)
{
	struct victim *v = arg;
	__u64 i;

	for (;;) {
		if (pya_free_n(v->fd, v->off, NBLK) ||
		    pya_alloc_n(v->fd, 512, NBLK, v->off))
			_exit(3);
		for (i = 0; i < NBLK; i += 8)
			v->map[v->off[i]] = 1;
	}
	return NULL;
}

static __thread sigjmp_buf bus_jmp;

/* A block freed under the waiter's feet raises SIGBUS: expected. */
static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

/* Fault anywhere in the window and call ioctls: waits on the heap lock. */
static void *waiter(void *arg)
{
	struct victim *v = arg;
	struct pyalloc_info info;
	unsigned int seed = 1;

	for (;;) {
		pya_info(v->fd, &info);
		if (sigsetjmp(bus_jmp, 1))
			continue;
		/* A page of a block: the fault takes the heap lock. */
		(void)*(volatile char *)(v->map + v->off[rand_r(&seed) % NBLK]);
	}
	return NULL;
}

static void victim_main(int ready)
{
	static struct victim v;
	pthread_t t;
	int i;

	v.fd = pya_open();
	if (v.fd < 0 || pya_info(v.fd, &v.info))
		_exit(1);
	v.map = pya_map(v.fd, &v.info);
	v.off = calloc(NBLK, sizeof(*v.off));
	if (v.map == MAP_FAILED || !v.off || pya_alloc_n(v.fd, 512, NBLK, v.off))
		_exit(2);
	signal(SIGBUS, on_sigbus);
	if (pthread_create(&t, NULL, releaser, &v))
		_exit(4);
	for (i = 0; i < 3; i++)
		if (pthread_create(&t, NULL, waiter, &v))
			_exit(4);
	if (write(ready, "x", 1) != 1)
		_exit(5);
	for (;;)
		pause();
}

FIXTURE(kill) {
	int unused;
};

FIXTURE_SETUP(kill)
{
}

FIXTURE_TEARDOWN(kill)
{
}

TEST_F_TIMEOUT(kill, sigkill_while_freeing_a_large_heap, 300)
{
	long long pages = pya_param("pages_held");
	unsigned int round;

	ASSERT_LE(0, pages);
	for (round = 0; round < 5; round++) {
		struct timespec delay = { 0, 100000000L * (round + 1) };
		int p[2], status;
		char c;
		pid_t pid;

		ASSERT_EQ(0, pipe(p));
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			close(p[0]);
			victim_main(p[1]);
		}
		close(p[1]);
		ASSERT_EQ(1, read(p[0], &c, 1)) TH_LOG("the victim did not start");
		close(p[0]);
		nanosleep(&delay, NULL);
		ASSERT_EQ(0, kill(pid, SIGKILL));
		/* The harness timeout catches a victim that never dies. */
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
			TH_LOG("round %u: status %#x", round, status);
		EXPECT_EQ(pages, pya_param("pages_held"));
	}
}

PYALLOC_TEST_MAIN
