// SPDX-License-Identifier: GPL-2.0
/*
 * Private-across-fork heaps (PYALLOC_MODE_PRIVATE): at fork() the child gets
 * its own copy of the heap, taken inside fork: the same blocks at the same
 * offsets, the same statistics, the parent's contents as of the fork, at
 * the same address.  Nothing either process writes, frees or allocates is
 * visible to the other.  Also: the mode and window configuration rules, a
 * grandchild, fork+exec and exit releasing the child's heap, vfork and
 * posix_spawn (no copy), a fork while threads allocate, a child without a
 * heap of its own (EPERM) and a child whose copy cannot be made (EIO,
 * SIGBUS, the parent untouched).
 *
 * Children report through their exit status (0 = all good, else the number
 * of the failed check); they never use the harness's ASSERT/EXPECT.
 */
#include "pyalloc_util.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

extern char **environ;

#define NBLK	2000

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

static int set_private(int fd)
{
	struct pyalloc_config c = { .flags = PYALLOC_CONFIG_MODE,
				    .mode = PYALLOC_MODE_PRIVATE };

	return pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c);
}

/* A private heap, mapped, with NBLK blocks of mixed sizes filled. */
FIXTURE(priv) {
	int fd;
	struct pyalloc_info info;
	char *map;
	__u64 off[NBLK];
	__u32 bs[NBLK];
};

FIXTURE_SETUP(priv)
{
	unsigned int i;

	self->map = MAP_FAILED;
	self->fd = pya_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, set_private(self->fd));
	ASSERT_EQ(0, pya_info(self->fd, &self->info));
	ASSERT_EQ(PYALLOC_MODE_PRIVATE, self->info.mode);
	self->map = pya_map(self->fd, &self->info);
	ASSERT_NE(MAP_FAILED, self->map);
	for (i = 0; i < NBLK; i += 100) {
		__u32 size = 8 + (i * 37) % 505;
		unsigned int k;

		ASSERT_EQ(0, pya_alloc(self->fd, size, 100, &self->off[i],
				       NULL));
		for (k = i; k < i + 100; k++) {
			self->bs[k] = pya_round(size, 8);
			pya_fill(self->map, self->off[k], self->bs[k], 1);
		}
	}
}

FIXTURE_TEARDOWN(priv)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, self->info.window_size);
	if (self->fd >= 0)
		close(self->fd);
}

static bool all_hold(char *map, const __u64 *off, const __u32 *bs,
		     unsigned int n, __u64 seed)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (!pya_check(map, off[i], bs[i], seed))
			return false;
	return true;
}

static void fill_all(char *map, const __u64 *off, const __u32 *bs,
		     unsigned int n, __u64 seed)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		pya_fill(map, off[i], bs[i], seed);
}

/* The child's view: every block, every byte, and the same statistics. */
static int child_rewrites_frees_reallocates(FIXTURE_DATA(priv) *self,
					    const struct pya_kstats *before)
{
	static __u64 again[NBLK];
	struct pya_kstats st;
	struct pyalloc_info info;
	unsigned int i;

	if (!all_hold(self->map, self->off, self->bs, NBLK, 1))
		return 1;
	if (pya_stats(self->fd, &st))
		return 2;
	/* Same statistics but for the heap's own id and fork count. */
	st.heap_id = before->heap_id;
	st.forks = before->forks;
	if (memcmp(&st, before, sizeof(st)))
		return 3;
	if (pya_info(self->fd, &info) || info.heap_id == self->info.heap_id ||
	    info.mode != PYALLOC_MODE_PRIVATE)
		return 4;
	fill_all(self->map, self->off, self->bs, NBLK, 2);
	for (i = 0; i < NBLK; i += 100)
		if (pya_free(self->fd, &self->off[i], 100, NULL))
			return 5;
	/* Freed here: a second free fails in the child's heap. */
	if (pya_free(self->fd, self->off, 1, NULL) != -EINVAL)
		return 6;
	for (i = 0; i < NBLK; i += 100)
		if (pya_alloc(self->fd, self->bs[i], 100, &again[i], NULL))
			return 7;
	fill_all(self->map, again, self->bs, NBLK, 3);
	if (!all_hold(self->map, again, self->bs, NBLK, 3))
		return 8;
	return 0;
}

TEST_F(priv, child_changes_invisible_to_parent)
{
	struct pya_kstats before, after;
	pid_t pid;

	ASSERT_EQ(0, pya_stats(self->fd, &before));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(child_rewrites_frees_reallocates(self, &before));
	ASSERT_EQ(0, pya_wait_child(pid));
	EXPECT_TRUE(all_hold(self->map, self->off, self->bs, NBLK, 1));
	ASSERT_EQ(0, pya_stats(self->fd, &after));
	EXPECT_EQ(1, after.forks);
	after.forks = before.forks;
	EXPECT_EQ(0, memcmp(&before, &after, sizeof(before)));
	/* Every block is still the parent's to free, once. */
	EXPECT_EQ(0, pya_free_n(self->fd, self->off, NBLK));
	EXPECT_EQ(-EINVAL, pya_free(self->fd, self->off, 1, NULL));
}

TEST_F(priv, parent_changes_invisible_to_child)
{
	int go[2], done[2];
	unsigned int i;
	pid_t pid;

	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(done));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		sync_wait(go[0]);
		if (!all_hold(self->map, self->off, self->bs, NBLK, 1))
			_exit(1);
		/* The parent's frees did not free the child's blocks. */
		if (pya_free_n(self->fd, self->off, NBLK))
			_exit(2);
		_exit(0);
	}
	fill_all(self->map, self->off, self->bs, NBLK, 7);
	for (i = 0; i < NBLK; i += 100)
		ASSERT_EQ(0, pya_free(self->fd, &self->off[i], 100, NULL));
	sync_send(go[1]);
	EXPECT_EQ(0, pya_wait_child(pid));
}

/* Three threads allocate, write and free their own blocks throughout. */
struct churn {
	int fd;
	char *map;
	volatile int stop;
	unsigned long rounds;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	__u64 off[64];
	unsigned int i;

	while (!c->stop) {
		if (pya_alloc(c->fd, 48, 64, off, NULL))
			break;
		for (i = 0; i < 64; i++)
			pya_fill(c->map, off[i], 48, 99);
		if (pya_free(c->fd, off, 64, NULL))
			break;
		__atomic_add_fetch(&c->rounds, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

TEST_F(priv, fork_while_threads_allocate)
{
	struct churn c = { .fd = self->fd, .map = self->map };
	pthread_t t[3];
	unsigned int i, f;

	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, churn_thread, &c));
	for (f = 0; f < 10; f++) {
		pid_t pid = fork();

		ASSERT_LE(0, pid);
		if (pid == 0) {
			struct pya_kstats st;
			__u64 off[16];

			/* The stable blocks are intact; the heap works. */
			if (!all_hold(self->map, self->off, self->bs, NBLK, 1))
				_exit(1);
			if (pya_alloc(self->fd, 48, 16, off, NULL))
				_exit(2);
			fill_all(self->map, off,
				 (__u32[16]){ [0 ... 15] = 48 }, 16, 5);
			if (pya_free_n(self->fd, self->off, NBLK) ||
			    pya_free(self->fd, off, 16, NULL))
				_exit(3);
			/* Whatever the threads held at the fork is held. */
			if (pya_stats(self->fd, &st) ||
			    st.blocks_allocated - st.blocks_freed > 3 * 64)
				_exit(4);
			_exit(0);
		}
		EXPECT_EQ(0, pya_wait_child(pid)) TH_LOG("fork %u", f);
		fill_all(self->map, self->off, self->bs, NBLK, 1);
	}
	c.stop = 1;
	for (i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	EXPECT_LT(0, c.rounds);
	EXPECT_TRUE(all_hold(self->map, self->off, self->bs, NBLK, 1));
	EXPECT_EQ(0, pya_free_n(self->fd, self->off, NBLK));
}

TEST_F(priv, grandchild_has_its_own_copy)
{
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		pid_t gc;

		fill_all(self->map, self->off, self->bs, NBLK, 2);
		gc = fork();
		if (gc < 0)
			_exit(1);
		if (gc == 0) {
			if (!all_hold(self->map, self->off, self->bs, NBLK, 2))
				_exit(2);
			fill_all(self->map, self->off, self->bs, NBLK, 3);
			if (pya_free_n(self->fd, self->off, NBLK))
				_exit(3);
			_exit(0);
		}
		if (pya_wait_child(gc))
			_exit(4);
		if (!all_hold(self->map, self->off, self->bs, NBLK, 2))
			_exit(5);
		if (pya_free_n(self->fd, self->off, NBLK))
			_exit(6);
		_exit(0);
	}
	EXPECT_EQ(0, pya_wait_child(pid));
	EXPECT_TRUE(all_hold(self->map, self->off, self->bs, NBLK, 1));
}

/*
 * A child's heap lives with its process: it appears at fork and is gone,
 * pages included, when the child exits or execs.
 */
TEST_F(priv, exit_and_exec_release_the_copy)
{
	long long heaps = pya_param("heaps"), pages = pya_param("pages_held");
	int go[2];
	unsigned int i;
	pid_t pid;

	ASSERT_LT(0, heaps);
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		sync_wait(go[0]);
		_exit(0);
	}
	EXPECT_EQ(heaps + 1, pya_param("heaps"));
	EXPECT_EQ(2 * pages, pya_param("pages_held"));
	sync_send(go[1]);
	EXPECT_EQ(0, pya_wait_child(pid));
	EXPECT_EQ(heaps, pya_param("heaps"));
	EXPECT_EQ(pages, pya_param("pages_held"));

	for (i = 0; i < 30; i++) {
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			execl("/bin/sh", "sh", "-c", "exit 0", (char *)NULL);
			_exit(127);
		}
		ASSERT_EQ(0, pya_wait_child(pid));
		ASSERT_EQ(heaps, pya_param("heaps")) TH_LOG("round %u", i);
		ASSERT_EQ(pages, pya_param("pages_held"));
	}
	/* The descriptor kept across exec (no O_CLOEXEC): no heap there. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char arg[32];
		int fd = dup(self->fd);

		snprintf(arg, sizeof(arg), "%d", fd);
		execl("/proc/self/exe", "pyalloc_private", "--probe-fd", arg,
		      (char *)NULL);
		_exit(127);
	}
	EXPECT_EQ(0, pya_wait_child(pid));
	EXPECT_EQ(heaps, pya_param("heaps"));
}

/* vfork and posix_spawn share the parent's memory until exec: no copy. */
TEST_F(priv, vfork_and_spawn_make_no_copy)
{
	long long heaps = pya_param("heaps"), pages = pya_param("pages_held");
	char *argv[] = { "sh", "-c", "exit 0", NULL };
	pid_t pid;

	pid = vfork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(0);
	EXPECT_EQ(0, pya_wait_child(pid));
	ASSERT_EQ(0, posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ));
	EXPECT_EQ(0, pya_wait_child(pid));
	EXPECT_EQ(heaps, pya_param("heaps"));
	EXPECT_EQ(pages, pya_param("pages_held"));
	EXPECT_TRUE(all_hold(self->map, self->off, self->bs, NBLK, 1));
}

/*
 * The copy cannot be made (the module-wide cap leaves no room for it): the
 * child's heap is broken (EIO, SIGBUS) and the parent's is untouched.
 */
TEST_F(priv, failed_copy_breaks_only_the_child)
{
	long long cap = pya_param("total_limit_mb");
	struct pya_kstats before, after;
	static __u64 extra[8 * 1024];
	long long pages, room;
	pid_t pid;

	ASSERT_LT(0, cap);
	/* At least 4 MiB held, so that the cap's 1 MiB steps can fit between. */
	ASSERT_EQ(0, pya_alloc_n(self->fd, 512, 8 * 1024, extra));
	pages = pya_param("pages_held");
	room = (pages * PYA_PAGE >> 20) + 1;
	ASSERT_LT(room, 2 * pages * PYA_PAGE >> 20);
	ASSERT_EQ(0, pya_stats(self->fd, &before));
	/* Room for what is held and a bit, not for a second copy. */
	ASSERT_EQ(0, pya_set_param("total_limit_mb", room));
	pid = fork();
	if (pid == 0) {
		struct pyalloc_info info;
		__u64 off;

		if (pya_info(self->fd, &info) != -EIO)
			_exit(1);
		if (pya_alloc(self->fd, 8, 1, &off, NULL) != -EIO)
			_exit(2);
		if (pya_free(self->fd, self->off, 1, NULL) != -EIO)
			_exit(3);
		/* Touching the window: SIGBUS, never the parent's page. */
		*(volatile char *)(self->map + self->off[0]) = 1;
		_exit(4);
	}
	pya_set_param("total_limit_mb", cap);
	ASSERT_LE(0, pid);
	EXPECT_EQ(1000 + SIGBUS, pya_wait_child(pid));
	EXPECT_TRUE(all_hold(self->map, self->off, self->bs, NBLK, 1));
	ASSERT_EQ(0, pya_stats(self->fd, &after));
	EXPECT_EQ(0, memcmp(&before, &after, sizeof(before)));
	EXPECT_EQ(pages, pya_param("pages_held"));
	EXPECT_EQ(0, pya_free_n(self->fd, self->off, NBLK));
	EXPECT_EQ(0, pya_free_n(self->fd, extra, 8 * 1024));
}

/* Mode and window: before the first allocation or mapping only. */
TEST(mode_and_window_config)
{
	struct pyalloc_config c = { .flags = PYALLOC_CONFIG_MODE };
	struct pyalloc_info info;
	struct pya_kstats st;
	int fd = pya_open();
	__u64 off;
	void *map;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pya_info(fd, &info));
	EXPECT_EQ(PYALLOC_MODE_SHARED, info.mode);
	EXPECT_TRUE(info.features & PYALLOC_FEATURE_PRIVATE);
	EXPECT_TRUE(info.features & PYALLOC_FEATURE_WINDOW_SIZE);
	EXPECT_TRUE(info.features & PYALLOC_FEATURE_CLASS_STATS);
	EXPECT_TRUE(info.features & PYALLOC_FEATURE_DECAY);
	EXPECT_TRUE(info.features & PYALLOC_FEATURE_PURGE);
	EXPECT_NE(0, info.heap_id);
	c.mode = 2;
	EXPECT_EQ(-EINVAL, pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c));
	c.mode = PYALLOC_MODE_PRIVATE;
	c.flags = PYALLOC_CONFIG_MODE | PYALLOC_CONFIG_DECAY;
	c.decay_ms = PYALLOC_MAX_DECAY_MS + 1;
	EXPECT_EQ(-EINVAL, pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c));
	ASSERT_EQ(0, pya_info(fd, &info));
	EXPECT_EQ(PYALLOC_MODE_SHARED, info.mode);
	c.decay_ms = 0;
	/* Window: a multiple of the arena size, at most window_mb. */
	c.flags = PYALLOC_CONFIG_WINDOW_SIZE;
	c.window_size = info.arena_size + 4096;
	EXPECT_EQ(-EINVAL, pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c));
	c.window_size = 0;
	EXPECT_EQ(-EINVAL, pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c));
	c.window_size = info.window_size + info.arena_size;
	EXPECT_EQ(-EPERM, pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c));
	/* Both at once, as a 32-bit process would: 64 MiB, private. */
	c.flags = PYALLOC_CONFIG_WINDOW_SIZE | PYALLOC_CONFIG_MODE;
	c.window_size = 64ULL << 20;
	ASSERT_EQ(0, pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c));
	ASSERT_EQ(0, pya_info(fd, &info));
	EXPECT_EQ(64ULL << 20, info.window_size);
	EXPECT_EQ(PYALLOC_MODE_PRIVATE, info.mode);
	ASSERT_EQ(0, pya_stats(fd, &st));
	EXPECT_EQ(PYALLOC_MODE_PRIVATE, st.mode);
	EXPECT_EQ(info.heap_id, st.heap_id);
	/* The window is what can be mapped. */
	EXPECT_EQ(MAP_FAILED, mmap(NULL, info.window_size + 4096,
				   PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	map = pya_map(fd, &info);
	ASSERT_NE(MAP_FAILED, map);
	c.flags = PYALLOC_CONFIG_MODE;
	c.mode = PYALLOC_MODE_SHARED;
	EXPECT_EQ(-EBUSY, pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c));
	c.flags = PYALLOC_CONFIG_WINDOW_SIZE;
	c.window_size = 32ULL << 20;
	EXPECT_EQ(-EBUSY, pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c));
	munmap(map, info.window_size);
	close(fd);

	/* An allocation freezes them as well. */
	fd = pya_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pya_alloc(fd, 8, 1, &off, NULL));
	c.flags = PYALLOC_CONFIG_MODE;
	c.mode = PYALLOC_MODE_PRIVATE;
	EXPECT_EQ(-EBUSY, pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c));
	ASSERT_EQ(0, pya_info(fd, &info));
	EXPECT_EQ(PYALLOC_MODE_SHARED, info.mode);
	close(fd);
}

/*
 * A process with no heap of its own in a private file: it inherited the
 * descriptor from a parent that had not mapped it, so no copy was taken at
 * fork.  EPERM for ioctls and mmap; the parent's heap is untouched.
 */
TEST(no_heap_of_its_own_eperm)
{
	struct pyalloc_info info;
	__u64 off[4];
	int fd = pya_open();
	pid_t pid;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, set_private(fd));
	ASSERT_EQ(0, pya_alloc(fd, 64, 4, off, NULL));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (pya_info(fd, &info) != -EPERM)
			_exit(1);
		if (pya_free(fd, off, 4, NULL) != -EPERM)
			_exit(2);
		if (mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED,
			 fd, 0) != MAP_FAILED || errno != EPERM)
			_exit(3);
		_exit(0);
	}
	EXPECT_EQ(0, pya_wait_child(pid));
	EXPECT_EQ(0, pya_free(fd, off, 4, NULL));
	close(fd);
}

/*
 * A mapping split in two (mprotect) is still one heap: both halves fork
 * into the same copy.
 */
TEST_F(priv, split_mapping_forks_into_one_copy)
{
	long long heaps = pya_param("heaps");
	pid_t pid;

	ASSERT_EQ(0, mprotect(self->map + self->info.arena_size, 4096,
			      PROT_READ));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (pya_param("heaps") != heaps + 1)
			_exit(1);
		if (!all_hold(self->map, self->off, self->bs, NBLK, 1))
			_exit(2);
		if (pya_free_n(self->fd, self->off, NBLK))
			_exit(3);
		_exit(0);
	}
	EXPECT_EQ(0, pya_wait_child(pid));
	EXPECT_EQ(heaps, pya_param("heaps"));
	ASSERT_EQ(0, mprotect(self->map + self->info.arena_size, 4096,
			      PROT_READ | PROT_WRITE));
}

/* Run with --probe-fd N after exec: the inherited descriptor has no heap. */
static int probe_fd(const char *arg)
{
	struct pyalloc_info info;
	int fd = atoi(arg);

	return pya_info(fd, &info) == -EPERM ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--probe-fd"))
		return probe_fd(argv[2]);
	if (access(PYALLOC_DEV, F_OK)) {
		ksft_print_header();
		ksft_exit_skip("%s not present\n", PYALLOC_DEV);
	}
	return test_harness_run(argc, argv);
}
