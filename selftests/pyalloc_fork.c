// SPDX-License-Identifier: GPL-2.0
/*
 * fork(): the child inherits the heap (the same open file) and its mapping
 * (MAP_SHARED).  It sees the parent's data, may free the parent's blocks and
 * allocate its own, and the parent sees both.  An arena released by the
 * parent is unmapped from the child's copy of the mapping as well.  The heap
 * lives on while either process holds it.
 *
 * Children report through their exit status (0 = all good, else the number
 * of the failed check); they never use the harness's ASSERT/EXPECT.
 */
#include "pyalloc_util.h"

#include <signal.h>

PYA_HEAP_FIXTURE(heap)

static void sync_send(int fd)
{
	char c = 'x';

	if (write(fd, &c, 1) != 1)
		_exit(90);
}

static void sync_wait(int fd)
{
	char c;

	if (read(fd, &c, 1) != 1)
		_exit(91);
}

TEST_F(heap, child_sees_parent_data)
{
	__u64 offs[32];
	unsigned int n;
	pid_t pid;

	ASSERT_EQ(0, pya_alloc(self->fd, 100, 32, offs, NULL));
	for (n = 0; n < 32; n++)
		pya_fill(self->map, offs[n], 104, n);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		for (n = 0; n < 32; n++)
			if (!pya_check(self->map, offs[n], 104, n))
				_exit(1);
		_exit(0);
	}
	EXPECT_EQ(0, pya_wait_child(pid));
}

/* Writes after the fork, in either direction, are shared. */
TEST_F(heap, writes_shared_both_ways)
{
	int p2c[2], c2p[2];
	__u64 off[2];
	pid_t pid;

	ASSERT_EQ(0, pya_alloc(self->fd, 512, 2, off, NULL));
	ASSERT_EQ(0, pipe(p2c));
	ASSERT_EQ(0, pipe(c2p));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		pya_fill(self->map, off[1], 512, 22);
		sync_send(c2p[1]);
		sync_wait(p2c[0]);
		_exit(pya_check(self->map, off[0], 512, 11) ? 0 : 1);
	}
	sync_wait(c2p[0]);
	EXPECT_TRUE(pya_check(self->map, off[1], 512, 22));
	pya_fill(self->map, off[0], 512, 11);
	sync_send(p2c[1]);
	EXPECT_EQ(0, pya_wait_child(pid));
}

TEST_F(heap, child_frees_parent_block)
{
	struct pya_kstats st;
	__u64 offs[4];
	pid_t pid;

	ASSERT_EQ(0, pya_alloc(self->fd, 33, 4, offs, NULL));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(pya_free(self->fd, &offs[2], 1, NULL) ? 1 : 0);
	ASSERT_EQ(0, pya_wait_child(pid));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(3, st.cls[4].blocks_in_use);
	EXPECT_EQ(1, st.blocks_freed);
	EXPECT_EQ(1, st.free_calls);
	/* It is gone for the parent too. */
	EXPECT_EQ(-EINVAL, pya_free(self->fd, &offs[2], 1, NULL));
	EXPECT_EQ(0, pya_free(self->fd, offs, 2, NULL));
}

TEST_F(heap, child_allocates)
{
	struct pya_kstats st;
	int c2p[2];
	__u64 offs[8];
	unsigned int n;
	pid_t pid;

	ASSERT_EQ(0, pipe(c2p));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (pya_alloc(self->fd, 200, 8, offs, NULL))
			_exit(1);
		for (n = 0; n < 8; n++)
			pya_fill(self->map, offs[n], 200, 7);
		if (write(c2p[1], offs, sizeof(offs)) != sizeof(offs))
			_exit(2);
		_exit(0);
	}
	ASSERT_EQ(sizeof(offs), read(c2p[0], offs, sizeof(offs)));
	ASSERT_EQ(0, pya_wait_child(pid));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(8, st.cls[200 / 8 - 1].blocks_in_use);
	for (n = 0; n < 8; n++) {
		EXPECT_TRUE(pya_check(self->map, offs[n], 200, 7));
	}
	/* The child's blocks outlive the child; the parent frees them. */
	EXPECT_EQ(0, pya_free(self->fd, offs, 8, NULL));
}

/*
 * The child touched all three arenas (its page tables map them); the
 * parent frees everything; the child's next touch of a released arena must
 * fault and get SIGBUS, not reach a freed page.
 */
TEST_F(heap, release_unmaps_child_mapping)
{
	const __u64 as = self->info.arena_size;
	const __u64 n = 3 * (__u64)self->info.pools_per_arena *
			(self->info.pool_size / 512);
	struct pya_kstats st;
	int p2c[2], c2p[2];
	__u64 *offs, i;
	pid_t pid;

	offs = malloc(n * sizeof(*offs));
	ASSERT_NE(NULL, offs);
	ASSERT_EQ(0, pya_alloc_n(self->fd, 512, n, offs));
	for (i = 0; i < n; i++)
		pya_fill(self->map, offs[i], 512, 5);
	ASSERT_EQ(0, pipe(p2c));
	ASSERT_EQ(0, pipe(c2p));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		for (i = 0; i < n; i++)
			if (!pya_check(self->map, offs[i], 512, 5))
				_exit(1);
		sync_send(c2p[1]);
		sync_wait(p2c[0]);
		for (i = 0; i < 3; i++)
			(void)*(volatile char *)(self->map + i * as + as / 2);
		_exit(2);	/* no SIGBUS in any released slot */
	}
	sync_wait(c2p[0]);
	ASSERT_EQ(0, pya_free_n(self->fd, offs, n));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	ASSERT_GE(st.arenas_reclaimed, 2);
	sync_send(p2c[1]);
	EXPECT_EQ(1000 + SIGBUS, pya_wait_child(pid));
	free(offs);
}

/*
 * The parent closes its fd and unmaps: the child's inherited fd and mapping
 * keep the heap alive and usable; the heap goes when the child exits.
 */
TEST(heap_lives_in_child_after_parent_closes)
{
	long long heaps0 = pya_param("heaps"), held0 = pya_param("pages_held");
	struct pyalloc_info info;
	int p2c[2], fd;
	__u64 offs[8];
	unsigned int n;
	char *map;
	pid_t pid;

	ASSERT_LE(0, heaps0);
	fd = pya_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pya_info(fd, &info));
	map = pya_map(fd, &info);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, pya_alloc(fd, 64, 8, offs, NULL));
	for (n = 0; n < 8; n++)
		pya_fill(map, offs[n], 64, 8);
	ASSERT_EQ(0, pipe(p2c));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		__u64 more[8];

		sync_wait(p2c[0]);
		for (n = 0; n < 8; n++)
			if (!pya_check(map, offs[n], 64, 8))
				_exit(1);
		if (pya_free(fd, offs, 8, NULL))
			_exit(2);
		if (pya_alloc(fd, 64, 8, more, NULL))
			_exit(3);
		for (n = 0; n < 8; n++)
			pya_fill(map, more[n], 64, 9);
		for (n = 0; n < 8; n++)
			if (!pya_check(map, more[n], 64, 9))
				_exit(4);
		_exit(0);
	}
	munmap(map, info.window_size);
	close(fd);
	EXPECT_EQ(heaps0 + 1, pya_param("heaps"));
	sync_send(p2c[1]);
	EXPECT_EQ(0, pya_wait_child(pid));
	EXPECT_EQ(heaps0, pya_param("heaps"));
	EXPECT_EQ(held0, pya_param("pages_held"));
}

PYALLOC_TEST_MAIN
