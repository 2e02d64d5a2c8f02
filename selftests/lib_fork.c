// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libpyalloc and fork(): the child shares the heap (same blocks, same
 * memory); the blocks in the magazines it inherited belong to the parent's
 * magazines, so the child drops them and never returns them; everything
 * ends up back in the kernel exactly once.
 */
#include "lib_util.h"

TEST(child_shares_heap)
{
	char *p = pya_malloc(64);
	int status;
	pid_t pid;

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
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_STREQ("child", p);
	pya_free(p);
}

/*
 * The parent holds blocks in its magazine at fork time.  The child must not
 * hand those out (the parent will) nor free them (the parent will): it
 * allocates only fresh blocks, which never collide with the parent's.
 */
TEST(inherited_magazines_dropped)
{
	enum { CHILD_N = 500, PARENT_N = 100 };
	void *child_blocks[CHILD_N], *mine[PARENT_N], *first;
	struct pya_stats st;
	int pfd[2], gofd[2], status, i, j;
	char go = 'g';
	size_t got = 0;
	ssize_t r;
	pid_t pid;

	first = pya_malloc(32);		/* the magazine now caches the rest */
	ASSERT_NE(NULL, first);
	ASSERT_EQ(0, pya_heap_stats(NULL, &st));
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
		if (pya_heap_stats(NULL, &cs) || cs.blocks_cached ||
		    cs.forks_dropped < st.blocks_cached)
			_exit(2);
		for (i = 0; i < CHILD_N; i++) {
			b[i] = pya_malloc(32);
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
			pya_free(b[i]);
		}
		pya_heap_flush(NULL);	/* exit() runs no thread destructor */
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
		mine[i] = pya_malloc(32);
		ASSERT_NE(NULL, mine[i]);
		lib_fill(mine[i], 32, i);
	}
	ASSERT_EQ(1, write(gofd[1], &go, 1));
	close(gofd[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	ASSERT_EQ(sizeof(child_blocks), got);
	for (i = 0; i < PARENT_N; i++) {
		EXPECT_EQ(SIZE_MAX, lib_check(mine[i], 32, i));
		EXPECT_NE(first, mine[i]);
		for (j = 0; j < CHILD_N; j++)
			ASSERT_NE(mine[i], child_blocks[j]);
	}
	for (i = 0; i < PARENT_N; i++)
		pya_free(mine[i]);
	pya_free(first);
	/* The kernel got every block back once: nothing left over, and no
	 * double free (that would have aborted). */
	pya_heap_flush(NULL);
	EXPECT_EQ(0, lib_kernel_blocks(NULL));
}

static void *hold_blocks(void *arg)
{
	pthread_barrier_t *bar = arg;
	void *p = pya_malloc(100);

	pya_free(p);			/* a magazine with blocks in it */
	pthread_barrier_wait(bar);	/* main forks */
	pthread_barrier_wait(bar);
	return NULL;
}

/* Other threads' caches do not exist in the child: they are forgotten, and
 * the child works normally. */
TEST(fork_with_threads)
{
	pthread_barrier_t bar;
	pthread_t t;
	int status, i;
	pid_t pid;

	ASSERT_EQ(0, pthread_barrier_init(&bar, NULL, 2));
	ASSERT_EQ(0, pthread_create(&t, NULL, hold_blocks, &bar));
	pthread_barrier_wait(&bar);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct pya_stats st;
		void *p[1000];

		for (i = 0; i < 1000; i++)
			if (!(p[i] = pya_malloc(1 + i % 600)))
				_exit(1);
		for (i = 0; i < 1000; i++)
			pya_free(p[i]);
		if (pya_heap_stats(NULL, &st) || st.forks_dropped == 0)
			_exit(2);
		/* Only this thread's magazines are left. */
		if (lib_live_blocks(NULL) != 0)
			_exit(3);
		pya_heap_flush(NULL);
		_exit(0);
	}
	pthread_barrier_wait(&bar);
	ASSERT_EQ(0, pthread_join(t, NULL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	pthread_barrier_destroy(&bar);
	/* The thread exited in the parent and flushed; the child flushed what
	 * it allocated; the parent's own magazine is all that is left. */
	pya_heap_flush(NULL);
	EXPECT_EQ(0, lib_kernel_blocks(NULL));
}

/* A large block is private to each process after fork, like any
 * MAP_PRIVATE memory; both may free their copy. */
TEST(fork_large_blocks)
{
	char *p = pya_malloc(100000);
	int status;
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
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_STREQ("parent", p);
	pya_free(p);
}

LIB_TEST_MAIN
