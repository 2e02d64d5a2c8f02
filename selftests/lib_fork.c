// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libpyalloc and fork().
 *
 * Private heaps (the default heap, and every heap opened without
 * PYA_HEAP_SHARED): the kernel gives the child its own copy at the instant
 * of fork.  Contents are isolated both ways, the forking thread's
 * magazines are the child's own and stay, other threads' cached blocks go
 * back to the child's heap, and all of it works without the atfork
 * handlers too (a raw fork system call).
 *
 * Shared heaps (PYA_HEAP_SHARED): the child shares the heap (same blocks,
 * same memory); the blocks in the magazines it inherited belong to the
 * parent's magazines, so the child drops them and never returns them;
 * everything ends up back in the kernel exactly once.
 */
#include "lib_util.h"

#include <sys/syscall.h>

static int wait_ok(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static pya_heap_t *open_shared(void)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;

	o.flags = PYA_HEAP_SHARED;
	return pya_heap_open(&o);
}

/* --- private heaps ------------------------------------------------------ */

enum { ISO_N = 2000 };

/*
 * The child rewrites, frees and reallocates every inherited block: the
 * parent sees none of it.  Then the parent rewrites its blocks while the
 * child, still alive, checks that it sees the bytes as of the fork.
 */
TEST(private_isolation_both_ways)
{
	static char *b[ISO_N];
	int tochild[2], toparent[2], i;
	char c = 'x';
	pid_t pid;

	for (i = 0; i < ISO_N; i++) {
		b[i] = pya_malloc(1 + i % 512);
		ASSERT_NE(NULL, b[i]);
		lib_fill(b[i], 1 + i % 512, i);
	}
	ASSERT_EQ(0, pipe(tochild));
	ASSERT_EQ(0, pipe(toparent));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Phase 1: the parent rewrites after the fork; we must still
		 * see the old bytes. */
		if (read(tochild[0], &c, 1) != 1)
			_exit(10);
		for (i = 0; i < ISO_N; i++)
			if (lib_check(b[i], 1 + i % 512, i) != SIZE_MAX)
				_exit(11);
		/* Phase 2: rewrite, free, reallocate everything. */
		for (i = 0; i < ISO_N; i++) {
			memset(b[i], 0xee, 1 + i % 512);
			if (i % 3 == 0) {
				pya_free(b[i]);
				b[i] = pya_malloc(1 + (i * 7) % 512);
				if (!b[i])
					_exit(12);
				memset(b[i], 0xdd, 1 + (i * 7) % 512);
			} else if (i % 3 == 1) {
				b[i] = pya_realloc(b[i], 600 + i);
				if (!b[i])
					_exit(13);
			}
		}
		for (i = 0; i < ISO_N; i++)
			pya_free(b[i]);
		pya_heap_flush(NULL);
		if (lib_live_blocks(NULL) != 0)
			_exit(14);
		_exit(0);
	}
	/* Rewrite every block, then let the child check. */
	for (i = 0; i < ISO_N; i++)
		lib_fill(b[i], 1 + i % 512, ISO_N + i);
	ASSERT_EQ(1, write(tochild[1], &c, 1));
	ASSERT_EQ(0, wait_ok(pid));
	for (i = 0; i < ISO_N; i++) {
		ASSERT_EQ(SIZE_MAX, lib_check(b[i], 1 + i % 512, ISO_N + i));
		pya_free(b[i]);
	}
	pya_heap_flush(NULL);
	EXPECT_EQ(0, lib_kernel_blocks(NULL));
}

/* The forking thread's magazines are the child's own: it keeps them and
 * is served from them without an ioctl; its heap has an id of its own. */
TEST(private_child_keeps_magazines)
{
	struct pya_stats before, after;
	void *first;
	pid_t pid;

	first = pya_malloc(32);		/* the magazine now caches the rest */
	ASSERT_NE(NULL, first);
	ASSERT_EQ(0, pya_heap_stats(NULL, &before));
	ASSERT_LT(0, before.classes[3].blocks_cached);
	EXPECT_EQ(0, before.shared);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct pya_stats cs, cs2;
		uint64_t n, i;
		void *p[64];

		if (pya_heap_stats(NULL, &cs))
			_exit(2);
		if (cs.forks_dropped || cs.classes[3].blocks_cached !=
					before.classes[3].blocks_cached)
			_exit(3);
		if (cs.heap_id == before.heap_id)
			_exit(4);
		n = cs.classes[3].blocks_cached;
		if (n > 64)
			n = 64;
		for (i = 0; i < n; i++)
			if (!(p[i] = pya_malloc(32)))
				_exit(5);
		if (pya_heap_stats(NULL, &cs2) || cs2.ioctl_alloc != cs.ioctl_alloc)
			_exit(6);	/* served from the inherited magazine */
		for (i = 0; i < n; i++)
			pya_free(p[i]);
		pya_free(first);
		pya_heap_flush(NULL);
		_exit(lib_kernel_blocks(NULL) == 0 ? 0 : 7);
	}
	ASSERT_EQ(0, wait_ok(pid));
	ASSERT_EQ(0, pya_heap_stats(NULL, &after));
	EXPECT_EQ(before.heap_id, after.heap_id);
	EXPECT_LT(before.forks, after.forks);
	/* The parent's magazine is untouched by the child's use of its own. */
	EXPECT_EQ(before.classes[3].blocks_cached, after.classes[3].blocks_cached);
	pya_free(first);
	pya_heap_flush(NULL);
	EXPECT_EQ(0, lib_kernel_blocks(NULL));
}

struct churn {
	volatile int stop;
	uint64_t id;
	uint64_t rounds;
};

/* A thread that allocates, checks and frees without pause. */
static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	void *p[64];
	uint64_t r = 0;
	int i;

	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		for (i = 0; i < 64; i++) {
			p[i] = pya_malloc(1 + (i * 37 + r) % 512);
			if (!p[i])
				abort();
			lib_fill(p[i], 1 + (i * 37 + r) % 512, c->id + i);
		}
		for (i = 0; i < 64; i++) {
			if (lib_check(p[i], 1 + (i * 37 + r) % 512, c->id + i) !=
			    SIZE_MAX)
				abort();
			pya_free(p[i]);
		}
		r++;
	}
	c->rounds = r;
	return NULL;
}

/*
 * Three threads allocate and free while the main thread forks again and
 * again; each child verifies its own copy of the main thread's blocks and
 * works.  The other threads' cached blocks were given back to the child's
 * heap by the atfork child handler; what they held live at the fork (at
 * most 64 each) stays allocated in the child, as with any malloc.
 */
TEST(private_fork_with_threads_running)
{
	struct churn c[3] = { { .id = 1000 }, { .id = 2000 }, { .id = 3000 } };
	pthread_t t[3];
	char *mine[200];
	int i, k;

	for (i = 0; i < 200; i++) {
		mine[i] = pya_malloc(24 + i);
		ASSERT_NE(NULL, mine[i]);
		lib_fill(mine[i], 24 + i, i);
	}
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, churn_thread, &c[i]));
	for (k = 0; k < 10; k++) {
		pid_t pid = fork();

		ASSERT_LE(0, pid);
		if (pid == 0) {
			struct pya_stats st;
			void *p[500];

			for (i = 0; i < 200; i++) {
				if (lib_check(mine[i], 24 + i, i) != SIZE_MAX)
					_exit(1);
				memset(mine[i], 0, 24 + i);
				pya_free(mine[i]);
			}
			for (i = 0; i < 500; i++)
				if (!(p[i] = pya_malloc(1 + i)))
					_exit(2);
			for (i = 0; i < 500; i++)
				pya_free(p[i]);
			pya_heap_flush(NULL);
			if (pya_heap_stats(NULL, &st) || st.blocks_cached)
				_exit(3);
			_exit(lib_kernel_blocks(NULL) <= 3 * 64 ? 0 : 4);
		}
		ASSERT_EQ(0, wait_ok(pid));
	}
	for (i = 0; i < 3; i++) {
		__atomic_store_n(&c[i].stop, 1, __ATOMIC_RELAXED);
		ASSERT_EQ(0, pthread_join(t[i], NULL));
		EXPECT_LT(0, c[i].rounds);
	}
	for (i = 0; i < 200; i++) {
		ASSERT_EQ(SIZE_MAX, lib_check(mine[i], 24 + i, i));
		pya_free(mine[i]);
	}
	pya_heap_flush(NULL);
	EXPECT_EQ(0, lib_kernel_blocks(NULL));
}

/* A child of a child has its own copy again. */
TEST(private_grandchild)
{
	char *p = pya_malloc(100);
	pid_t pid;

	ASSERT_NE(NULL, p);
	strcpy(p, "parent");
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		pid_t gpid;

		strcpy(p, "child");
		gpid = fork();
		if (gpid < 0)
			_exit(1);
		if (gpid == 0) {
			char *q = pya_malloc(100);

			if (strcmp(p, "child") || !q)
				_exit(2);
			strcpy(p, "grandchild");
			pya_free(q);
			_exit(0);
		}
		if (wait_ok(gpid) != 0)
			_exit(3);
		_exit(strcmp(p, "child") ? 4 : 0);
	}
	ASSERT_EQ(0, wait_ok(pid));
	EXPECT_STREQ("parent", p);
	pya_free(p);
}

static void *stats_loop(void *arg)
{
	struct churn *c = arg;
	struct pya_stats st;

	/* pya_heap_stats() takes the library's lock every time. */
	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		if (pya_heap_stats(NULL, &st))
			abort();
		c->rounds++;
	}
	return NULL;
}

static void *child_thread(void *arg)
{
	void *p[100];
	int i;

	(void)arg;
	for (i = 0; i < 100; i++)
		if (!(p[i] = pya_malloc(16 + i)))
			return (void *)1;
	for (i = 0; i < 100; i++)
		pya_free(p[i]);
	return NULL;
}

/*
 * fork without the atfork handlers (the raw system call, as _Fork() and
 * clone() do): another thread takes the library's lock in a loop, so some
 * children are born with it held by a thread they do not have.  Each child
 * keeps its magazines, creates a thread (which needs the lock) and exits;
 * an alarm turns a deadlock into a failure.
 */
TEST(private_raw_fork_without_handlers)
{
	struct churn c = { 0 };
	char *p = pya_malloc(40);
	pthread_t t;
	int k;

	ASSERT_NE(NULL, p);
	strcpy(p, "parent");
	ASSERT_EQ(0, pthread_create(&t, NULL, stats_loop, &c));
	for (k = 0; k < 50; k++) {
		pid_t pid = syscall(SYS_fork);

		ASSERT_LE(0, pid);
		if (pid == 0) {
			pthread_t ct;
			void *ret;
			char *q;

			alarm(20);
			if (strcmp(p, "parent"))
				_exit(1);
			strcpy(p, "child");
			q = pya_malloc(40);	/* from the inherited magazine */
			if (!q)
				_exit(2);
			pya_free(q);
			if (pthread_create(&ct, NULL, child_thread, NULL) ||
			    pthread_join(ct, &ret) || ret)
				_exit(3);
			_exit(0);
		}
		ASSERT_EQ(0, wait_ok(pid));
	}
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_STREQ("parent", p);
	pya_free(p);
}

/* fork then exec, in a loop: the descriptor is O_CLOEXEC and the program
 * after exec starts clean. */
TEST(private_fork_exec_loop)
{
	int k;

	for (k = 0; k < 20; k++) {
		void *p = pya_malloc(64);
		pid_t pid;

		ASSERT_NE(NULL, p);
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			/* No pyalloc descriptor may survive exec. */
			execl("/bin/sh", "sh", "-c",
			      "for f in /proc/self/fd/*; do "
			      "case $(readlink $f) in *pyalloc*) exit 1;; esac; done; "
			      "exit 0", (char *)NULL);
			_exit(127);
		}
		ASSERT_EQ(0, wait_ok(pid));
		pya_free(p);
	}
}

#ifdef PYA_FAKE_DEVICE
/* A thread of the broken child, whose cache is made after the loss: its
 * malloc fails, and its free must not touch the block (the window faults). */
static void *broken_child_thread(void *p)
{
	errno = 0;
	if (pya_malloc(32) || errno != EIO)
		return (void *)1;
	pya_free(p);
	return NULL;
}

/* The kernel could not copy the heap for the child: the child's heap is
 * lost, its magazines are not used, allocation fails cleanly (EIO), and
 * no free touches a block of its window (every access would fault). */
TEST(private_copy_failed)
{
	void *p = pya_malloc(32), *p2 = pya_malloc(32);
	pid_t pid;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, p2);
	fakedev_fail_fork_copy(1);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct pya_stats st;
		void *q;

		errno = 0;
		q = pya_malloc(32);
		if (q || errno != EIO)
			_exit(1);
		pya_free(p);	/* dropped, not returned: nothing to return to */
		pya_heap_stats(NULL, &st);	/* EIO too */
		{
			pthread_t t;
			void *ret = (void *)1;

			if (pthread_create(&t, NULL, broken_child_thread, p2) ||
			    pthread_join(t, &ret) || ret)
				_exit(2);
		}
		_exit(0);
	}
	ASSERT_EQ(0, wait_ok(pid));
	pya_free(p);
	pya_free(p2);
	pya_heap_flush(NULL);
	EXPECT_EQ(0, lib_kernel_blocks(NULL));
}
#endif

/* --- shared heaps --------------------------------------------------------- */

TEST(shared_child_shares_heap)
{
	pya_heap_t *h = open_shared();
	struct pya_stats st;
	char *p;
	pid_t pid;

	ASSERT_NE(NULL, h);
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	EXPECT_EQ(1, st.shared);
	p = pya_heap_malloc(h, 64);
	ASSERT_NE(NULL, p);
	strcpy(p, "parent");
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Same block, same memory: MAP_SHARED. */
		if (strcmp(p, "parent"))
			_exit(1);
		strcpy(p, "child");
		_exit(0);
	}
	ASSERT_EQ(0, wait_ok(pid));
	EXPECT_STREQ("child", p);
	pya_heap_free(h, p);
	EXPECT_EQ(0, pya_heap_close(h));
}

/*
 * The parent holds blocks in its magazine at fork time.  The child must not
 * hand those out (the parent will) nor free them (the parent will): it
 * allocates only fresh blocks, which never collide with the parent's.
 */
TEST(shared_inherited_magazines_dropped)
{
	enum { CHILD_N = 500, PARENT_N = 100 };
	void *child_blocks[CHILD_N], *mine[PARENT_N], *first;
	pya_heap_t *h = open_shared();
	struct pya_stats st;
	int pfd[2], gofd[2], i, j;
	char go = 'g';
	size_t got = 0;
	ssize_t r;
	pid_t pid;

	ASSERT_NE(NULL, h);
	first = pya_heap_malloc(h, 32);	/* the magazine now caches the rest */
	ASSERT_NE(NULL, first);
	ASSERT_EQ(0, pya_heap_stats(h, &st));
	ASSERT_LT(0, st.classes[3].blocks_cached);
	ASSERT_EQ(0, pipe(pfd));
	ASSERT_EQ(0, pipe(gofd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		void *b[CHILD_N];
		struct pya_stats cs;

		close(pfd[0]);
		close(gofd[1]);
		if (pya_heap_stats(h, &cs) || cs.blocks_cached ||
		    cs.forks_dropped < st.blocks_cached)
			_exit(2);
		for (i = 0; i < CHILD_N; i++) {
			b[i] = pya_heap_malloc(h, 32);
			if (!b[i])
				_exit(3);
			lib_fill(b[i], 32, 1000 + i);
		}
		if (write(pfd[1], b, sizeof(b)) != (ssize_t)sizeof(b))
			_exit(4);
		/*
		 * Hold the blocks until the parent has allocated its own:
		 * once freed, the kernel may rightly hand them to the parent.
		 */
		if (read(gofd[0], &go, 1) != 1)
			_exit(6);
		for (i = 0; i < CHILD_N; i++) {
			if (lib_check(b[i], 32, 1000 + i) != SIZE_MAX)
				_exit(5);
			pya_heap_free(h, b[i]);
		}
		pya_heap_flush(h);	/* exit() runs no thread destructor */
		_exit(0);
	}
	close(pfd[1]);
	close(gofd[0]);
	while (got < sizeof(child_blocks) &&
	       (r = read(pfd[0], (char *)child_blocks + got,
			 sizeof(child_blocks) - got)) > 0)
		got += r;
	close(pfd[0]);
	/* While the child holds its blocks, use what the magazine held. */
	for (i = 0; i < PARENT_N; i++) {
		mine[i] = pya_heap_malloc(h, 32);
		ASSERT_NE(NULL, mine[i]);
		lib_fill(mine[i], 32, i);
	}
	ASSERT_EQ(1, write(gofd[1], &go, 1));
	close(gofd[1]);
	ASSERT_EQ(0, wait_ok(pid));
	ASSERT_EQ(sizeof(child_blocks), got);
	for (i = 0; i < PARENT_N; i++) {
		EXPECT_EQ(SIZE_MAX, lib_check(mine[i], 32, i));
		EXPECT_NE(first, mine[i]);
		for (j = 0; j < CHILD_N; j++)
			ASSERT_NE(mine[i], child_blocks[j]);
	}
	for (i = 0; i < PARENT_N; i++)
		pya_heap_free(h, mine[i]);
	pya_heap_free(h, first);
	/* The kernel got every block back once: nothing left over, and no
	 * double free (that would have aborted). */
	pya_heap_flush(h);
	EXPECT_EQ(0, lib_kernel_blocks(h));
	EXPECT_EQ(0, pya_heap_close(h));
}

struct hold {
	pthread_barrier_t bar;
	pya_heap_t *h;
};

static void *hold_blocks(void *arg)
{
	struct hold *hd = arg;
	void *p = pya_heap_malloc(hd->h, 100);

	pya_heap_free(hd->h, p);	/* a magazine with blocks in it */
	pthread_barrier_wait(&hd->bar);	/* main forks */
	pthread_barrier_wait(&hd->bar);
	return NULL;
}

/* Other threads' caches do not exist in the child: they are forgotten, and
 * the child works normally. */
TEST(shared_fork_with_threads)
{
	struct hold hd;
	pthread_t t;
	int i, joined[2];
	char go = 0;
	pid_t pid;

	hd.h = open_shared();
	ASSERT_NE(NULL, hd.h);
	ASSERT_EQ(0, pipe(joined));
	ASSERT_EQ(0, pthread_barrier_init(&hd.bar, NULL, 2));
	ASSERT_EQ(0, pthread_create(&t, NULL, hold_blocks, &hd));
	pthread_barrier_wait(&hd.bar);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct pya_stats st;
		void *p[1000];

		close(joined[1]);
		for (i = 0; i < 1000; i++)
			if (!(p[i] = pya_heap_malloc(hd.h, 1 + i % 600)))
				_exit(1);
		for (i = 0; i < 1000; i++)
			pya_heap_free(hd.h, p[i]);
		if (pya_heap_stats(hd.h, &st) || st.forks_dropped == 0)
			_exit(2);
		/*
		 * The heap is shared: the kernel's count holds the parent
		 * thread's magazine until that thread exits and flushes it.
		 * Wait for the parent's join, then only this thread's
		 * magazines are left.
		 */
		if (read(joined[0], &go, 1) != 1)
			_exit(4);
		if (lib_live_blocks(hd.h) != 0)
			_exit(3);
		pya_heap_flush(hd.h);
		_exit(0);
	}
	close(joined[0]);
	pthread_barrier_wait(&hd.bar);
	ASSERT_EQ(0, pthread_join(t, NULL));
	ASSERT_EQ(1, write(joined[1], &go, 1));
	close(joined[1]);
	ASSERT_EQ(0, wait_ok(pid));
	pthread_barrier_destroy(&hd.bar);
	/* The thread exited in the parent and flushed; the child flushed what
	 * it allocated; the parent's own magazine is all that is left. */
	pya_heap_flush(hd.h);
	EXPECT_EQ(0, lib_kernel_blocks(hd.h));
	EXPECT_EQ(0, pya_heap_close(hd.h));
}

/* A large block is private to each process after fork, like any
 * MAP_PRIVATE memory; both may free their copy. */
TEST(fork_large_blocks)
{
	char *p = pya_malloc(100000);
	pid_t pid;

	ASSERT_NE(NULL, p);
	strcpy(p, "parent");
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		strcpy(p, "child");
		pya_free(p);
		_exit(0);
	}
	ASSERT_EQ(0, wait_ok(pid));
	EXPECT_STREQ("parent", p);
	pya_free(p);
}

LIB_TEST_MAIN
