// SPDX-License-Identifier: GPL-2.0
/*
 * Decay (struct pyalloc_config.decay_ms) and fault-around: a heap with a
 * decay keeps every emptied arena, pages and mappings, and gives back all
 * that stay empty for decay_ms; without one it keeps a single empty arena
 * as pymalloc does; TRIM gives them back at once; a fork copy decays as the
 * original.  The decay also purges the empty pools of arenas still in
 * use (their pages given back).  A pool's first touch maps every carved
 * pool of its arena.
 *
 * Nothing here depends on how fast the machine is: what a decay keeps is
 * checked under a decay of a minute, and what it gives back by polling
 * with a deadline far beyond the decay (the decay is a timer, and a slow
 * or stalled guest runs it late), as lib_api.c does.
 */
#include "pyalloc_util.h"

#include <sys/wait.h>
#include <time.h>

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * Poll @fd's statistics into @st until the heap holds @pages pages and, if
 * @held >= 0, the module holds @held (it lowers pages_held just after the
 * statistics change, outside the heap lock), for at least @ms.  True if it
 * did.
 */
static bool settled(int fd, struct pya_kstats *st, __u64 pages,
		    long long held, long ms)
{
	for (;; ms -= 20) {
		if (pya_stats(fd, st))
			return false;
		if (st->pages == pages &&
		    (held < 0 || pya_param("pages_held") == held))
			return true;
		if (ms <= 0)
			return false;
		sleep_ms(20);
	}
}

static int set_decay(int fd, __u32 ms)
{
	struct pyalloc_config c = { .flags = PYALLOC_CONFIG_DECAY,
				    .decay_ms = ms };

	return pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c);
}

PYA_HEAP_FIXTURE(heap)

/* Four arenas of 512-byte blocks, every page touched. */
static __u64 fill4(struct __test_metadata *_metadata,
		   FIXTURE_DATA(heap) *self, __u64 *off)
{
	__u64 n = 4ULL * self->info.pools_per_arena * 8, i;

	ASSERT_EQ(0, pya_alloc_n(self->fd, 512, n, off));
	for (i = 0; i < n; i += 8)
		self->map[off[i]] = 1;
	return n;
}

TEST_F(heap, decay_keeps_then_gives_back)
{
	static __u64 off[4 * 64 * 8];
	long long held = pya_param("pages_held");
	struct pya_kstats st, st2;
	__u64 n;

	ASSERT_EQ(0, set_decay(self->fd, PYALLOC_MAX_DECAY_MS));
	n = fill4(_metadata, self, off);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	ASSERT_EQ(4, st.arenas_current);
	ASSERT_EQ(0, pya_free_n(self->fd, off, n));
	/* Kept: the arenas, their pages, nothing reclaimed yet. */
	ASSERT_EQ(0, pya_stats(self->fd, &st2));
	EXPECT_EQ(4, st2.arenas_current);
	EXPECT_EQ(st.pages, st2.pages);
	EXPECT_EQ(0, st2.arenas_reclaimed);
	/* A new wave reuses them: no arena created, no page added. */
	n = fill4(_metadata, self, off);
	ASSERT_EQ(0, pya_stats(self->fd, &st2));
	EXPECT_EQ(st.arenas_allocated, st2.arenas_allocated);
	EXPECT_EQ(st.pages, st2.pages);
	ASSERT_EQ(0, pya_free_n(self->fd, off, n));
	/*
	 * Shortened, the decay applies from now: every page goes back within
	 * 1.25 * 500 ms, not at the tick the minute's decay has pending
	 * 15 s away.  10 s leaves a stalled guest 16 times the decay.
	 */
	ASSERT_EQ(0, set_decay(self->fd, 500));
	EXPECT_TRUE(settled(self->fd, &st2, 0, held, 10000));
	EXPECT_EQ(0, st2.arenas_current);
	EXPECT_EQ(4, st2.arenas_reclaimed);
	pya_check_stats(&st2, &self->info);
}

TEST_F(heap, no_decay_keeps_one)
{
	static __u64 off[4 * 64 * 8];
	struct pya_kstats st;
	__u64 n = fill4(_metadata, self, off);

	ASSERT_EQ(0, pya_free_n(self->fd, off, n));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(1, st.arenas_current);
	EXPECT_EQ(3, st.arenas_reclaimed);
}

TEST_F(heap, trim_and_decay_zero_give_back_at_once)
{
	static __u64 off[4 * 64 * 8];
	struct pyalloc_trim tr = { 0 };
	struct pya_kstats st;
	__u64 n;

	ASSERT_EQ(0, set_decay(self->fd, PYALLOC_MAX_DECAY_MS));
	n = fill4(_metadata, self, off);
	ASSERT_EQ(0, pya_free_n(self->fd, off, n));
	ASSERT_EQ(0, pya_ioctl(self->fd, PYALLOC_IOC_TRIM, &tr));
	EXPECT_EQ(4ULL * self->info.pools_per_arena, tr.pages);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(0, st.pages);
	/* Keep again, then switch the decay off: gone at once (the work is
	 * queued now), not at the minute's next tick 15 s away. */
	n = fill4(_metadata, self, off);
	ASSERT_EQ(0, pya_free_n(self->fd, off, n));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	ASSERT_LT(0, st.pages);
	ASSERT_EQ(0, set_decay(self->fd, 0));
	EXPECT_TRUE(settled(self->fd, &st, 0, -1, 10000));
	EXPECT_EQ(-EINVAL, set_decay(self->fd, PYALLOC_MAX_DECAY_MS + 1));
}

/* A private heap with a decay of @decay_ms (0: none), mapped at *@map. */
static int open_private(struct __test_metadata *_metadata, __u32 decay_ms,
			struct pyalloc_info *info, char **map)
{
	struct pyalloc_config c = { .flags = PYALLOC_CONFIG_MODE,
				    .mode = PYALLOC_MODE_PRIVATE };
	int fd = pya_open();

	if (decay_ms) {
		c.flags |= PYALLOC_CONFIG_DECAY;
		c.decay_ms = decay_ms;
	}
	EXPECT_LE(0, fd);
	if (fd < 0)
		return fd;
	EXPECT_EQ(0, pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c));
	EXPECT_EQ(0, pya_info(fd, info));
	*map = pya_map(fd, info);
	EXPECT_NE(MAP_FAILED, *map);
	return *map == MAP_FAILED ? -1 : fd;
}

/*
 * A fork copy of a private heap with kept arenas decays too.  The decay is
 * long enough for the child to see the kept arenas first on a slow guest.
 */
TEST(fork_copy_decays)
{
	static __u64 off[2 * 64 * 8];
	struct pyalloc_info info;
	int fd, status;
	__u64 n, i;
	char *map;
	pid_t pid;

	fd = open_private(_metadata, 3000, &info, &map);
	ASSERT_LE(0, fd);
	n = 2ULL * info.pools_per_arena * 8;
	ASSERT_EQ(0, pya_alloc_n(fd, 512, n, off));
	for (i = 0; i < n; i += 8)
		map[off[i]] = 1;
	ASSERT_EQ(0, pya_free_n(fd, off, n));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct pya_kstats st;

		if (pya_stats(fd, &st) || st.arenas_current != 2)
			_exit(1);
		if (!settled(fd, &st, 0, -1, 30000) || st.arenas_current)
			_exit(2);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, status);
	munmap(map, info.window_size);
	close(fd);
}

/* Resident pages of the VMA at @addr, from /proc/self/smaps. */
static long rss_kb(void *addr)
{
	char line[256], want[32];
	long kb = -1;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	snprintf(want, sizeof(want), "%lx-", (unsigned long)addr);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want)))
			in = true;
		else if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* One touch maps every carved pool of the arena. */
TEST_F(heap, fault_around_maps_the_arena)
{
	__u64 off[256];

	ASSERT_EQ(0, pya_alloc(self->fd, 512, 256, off, NULL));	/* 32 pools */
	EXPECT_EQ(0, rss_kb(self->map));
	self->map[off[0]] = 1;
	EXPECT_EQ(32 * 4, rss_kb(self->map));
	EXPECT_EQ(0, pya_free(self->fd, off, 256, NULL));
}

/*
 * One live block keeps its own pool, not its arena: once the decay has
 * passed, every other pool's page is given back and gone from the mapping.
 */
TEST_F(heap, decay_purges_the_empty_pools_of_a_live_arena)
{
	__u64 n = self->info.pools_per_arena * 8, i;
	static __u64 off[64 * 8];
	struct pya_kstats st;

	ASSERT_GE(64, self->info.pools_per_arena);
	ASSERT_EQ(0, set_decay(self->fd, PYALLOC_MAX_DECAY_MS));
	ASSERT_EQ(0, pya_alloc_n(self->fd, 512, n, off));	/* one arena */
	for (i = 0; i < n; i++)
		self->map[off[i]] = 1;
	EXPECT_EQ((long)self->info.pools_per_arena * 4, rss_kb(self->map));
	ASSERT_EQ(0, pya_free_n(self->fd, off + 1, n - 1));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(self->info.pools_per_arena, st.pages);	/* kept */
	ASSERT_EQ(0, set_decay(self->fd, 200));
	EXPECT_TRUE(settled(self->fd, &st, 1, -1, 10000));
	EXPECT_EQ(1, st.arenas_current);
	EXPECT_EQ(4, rss_kb(self->map));
	pya_check_stats(&st, &self->info);
	EXPECT_EQ(1, self->map[off[0]]);
	ASSERT_EQ(0, pya_free(self->fd, off, 1, NULL));
}

/*
 * A fork copy of a heap with purged pools: the child's copy has no page
 * for them either, and reviving one in the child gives it a zeroed page of
 * its own while the parent's heap stays as it was.
 */
TEST(fork_copy_of_purged_pools)
{
	struct pyalloc_trim tr = { 0 };
	struct pya_kstats before, after;
	struct pyalloc_info info;
	int fd, status;
	__u64 off[3 * 8], i;
	char *map;
	pid_t pid;

	fd = open_private(_metadata, 0, &info, &map);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pya_alloc(fd, 512, 3 * 8, off, NULL));
	for (i = 0; i < 3 * 8; i++)
		map[off[i]] = 7;
	ASSERT_EQ(0, pya_free(fd, off + 8, 2 * 8, NULL));
	ASSERT_EQ(0, pya_ioctl(fd, PYALLOC_IOC_TRIM, &tr));
	ASSERT_EQ(2, tr.pages);
	ASSERT_EQ(0, pya_stats(fd, &before));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct pya_kstats st;
		__u64 got[2 * 8];

		if (pya_stats(fd, &st) || st.pages != 1 || map[off[0]] != 7)
			_exit(1);
		if (pya_alloc(fd, 512, 2 * 8, got, NULL))
			_exit(2);
		for (i = 0; i < 2 * 8; i++)
			if (got[i] / PYA_PAGE >= 3 ||
			    !pya_is_zero(map, got[i], 512))
				_exit(3);
		if (pya_stats(fd, &st) || st.pages != 3)
			_exit(4);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, status);
	ASSERT_EQ(0, pya_stats(fd, &after));
	EXPECT_EQ(before.pages, after.pages);
	EXPECT_EQ(before.blocks_allocated, after.blocks_allocated);
	EXPECT_EQ(before.forks + 1, after.forks);
	EXPECT_EQ(7, map[off[0]]);
	munmap(map, info.window_size);
	close(fd);
}

PYALLOC_TEST_MAIN
