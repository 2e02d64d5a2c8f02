// SPDX-License-Identifier: GPL-2.0
/*
 * What an unprivileged user can pin.  Pool pages are charged to the
 * opener's user against RLIMIT_MEMLOCK, like io_uring's registered buffers
 * (CAP_IPC_LOCK exempt), and to the module-wide cap total_limit_mb, which
 * binds root too.  One process, many heaps, many processes of one user,
 * forks and shared heaps all draw on the same limit; over it the call fails
 * with ENOMEM and nothing leaks; the counters return to zero.
 *
 * Each case runs in a child that sets RLIMIT_MEMLOCK to LIMIT_PAGES and
 * becomes uid/gid 65534 (which drops CAP_IPC_LOCK); children report through
 * their exit status.
 */
#include "pyalloc_util.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define LIMIT_PAGES	256		/* 1 MiB */
#define NOBODY		65534

static int become_limited(bool drop_privileges)
{
	struct rlimit rl = { LIMIT_PAGES * PYA_PAGE, LIMIT_PAGES * PYA_PAGE };

	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		return -1;
	if (drop_privileges && (setgid(NOBODY) || setuid(NOBODY)))
		return -1;
	return 0;
}

/* Allocate 512-byte blocks (one page per 8) until ENOMEM; pages taken. */
static long fill(int fd, int *err)
{
	__u64 off[8];
	long pages = 0;
	int ret;

	for (;;) {
		ret = pya_alloc(fd, 512, 8, off, NULL);
		if (ret) {
			*err = ret;
			return pages;
		}
		pages++;
	}
}

static int open_private(void)
{
	struct pyalloc_config c = { .flags = PYALLOC_CONFIG_MODE,
				    .mode = PYALLOC_MODE_PRIVATE };
	int fd = pya_open();

	if (fd >= 0 && pya_ioctl(fd, PYALLOC_IOC_CONFIG, &c)) {
		close(fd);
		return -1;
	}
	return fd;
}

static long vm_pinned_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

FIXTURE(memlock) {
	long long pages_before;
};

FIXTURE_SETUP(memlock)
{
	self->pages_before = pya_param("pages_held");
	ASSERT_LE(0, self->pages_before);
	if (getuid() != 0)
		SKIP(return, "needs root to switch to an unprivileged user");
}

FIXTURE_TEARDOWN(memlock)
{
	/* Every case gives everything back. */
	EXPECT_EQ(self->pages_before, pya_param("pages_held"));
}

/* One heap: exactly the limit, then ENOMEM; VmPin shows the pages. */
TEST_F(memlock, one_heap_stops_at_the_limit)
{
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct pya_kstats before, after;
		int fd, err = 0;
		__u64 off;

		if (become_limited(true))
			_exit(1);
		fd = open_private();
		if (fd < 0)
			_exit(2);
		if (fill(fd, &err) != LIMIT_PAGES || err != -ENOMEM)
			_exit(3);
		if (vm_pinned_kb() != LIMIT_PAGES * 4)
			_exit(4);
		/* Nothing changes on the failed call. */
		if (pya_stats(fd, &before) ||
		    pya_alloc(fd, 64, 1, &off, NULL) != -ENOMEM ||
		    pya_stats(fd, &after) ||
		    memcmp(&before, &after, sizeof(before)) ||
		    before.pages != LIMIT_PAGES)
			_exit(5);
		close(fd);
		if (vm_pinned_kb() != 0)
			_exit(6);
		/* All of it is usable again. */
		fd = open_private();
		if (fill(fd, &err) != LIMIT_PAGES)
			_exit(7);
		_exit(0);
	}
	EXPECT_EQ(0, pya_wait_child(pid));
}

/* Many heaps of one process share the one limit. */
TEST_F(memlock, many_heaps_add_up)
{
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		long total = 0;
		int fd[4], i, err = 0;

		if (become_limited(true))
			_exit(1);
		for (i = 0; i < 4; i++) {
			fd[i] = open_private();
			if (fd[i] < 0)
				_exit(2);
			total += fill(fd[i], &err);
			if (err != -ENOMEM)
				_exit(3);
		}
		_exit(total == LIMIT_PAGES ? 0 : 4);
	}
	EXPECT_EQ(0, pya_wait_child(pid));
}

/*
 * Two processes of one user: what one holds, the other cannot have; once
 * the first is gone, the second can.
 */
TEST_F(memlock, processes_of_one_user_add_up)
{
	int held[2], done[2];
	pid_t a, b;
	char c;

	ASSERT_EQ(0, pipe(held));
	ASSERT_EQ(0, pipe(done));
	a = fork();
	ASSERT_LE(0, a);
	if (a == 0) {
		int fd, err = 0;

		if (become_limited(true))
			_exit(1);
		fd = open_private();
		if (fill(fd, &err) != LIMIT_PAGES)
			_exit(3);
		if (write(held[1], "x", 1) != 1 || read(done[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	ASSERT_EQ(1, read(held[0], &c, 1));
	b = fork();
	ASSERT_LE(0, b);
	if (b == 0) {
		int fd, err = 0;

		if (become_limited(true))
			_exit(1);
		fd = open_private();
		if (fill(fd, &err) != 0 || err != -ENOMEM)
			_exit(2);
		_exit(0);
	}
	EXPECT_EQ(0, pya_wait_child(b));
	ASSERT_EQ(1, write(done[1], "x", 1));
	EXPECT_EQ(0, pya_wait_child(a));
	b = fork();
	ASSERT_LE(0, b);
	if (b == 0) {
		int fd, err = 0;

		if (become_limited(true))
			_exit(1);
		fd = open_private();
		_exit(fill(fd, &err) == LIMIT_PAGES ? 0 : 2);
	}
	EXPECT_EQ(0, pya_wait_child(b));
}

/*
 * A fork copy is charged too: a private heap over half the limit cannot
 * be copied, so the child's heap is broken (EIO), and the parent's stays.
 */
TEST_F(memlock, fork_copy_is_charged)
{
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct pyalloc_info info;
		__u64 off[8];
		int fd, i;
		pid_t child;
		char *map;

		if (become_limited(true))
			_exit(1);
		fd = open_private();
		if (fd < 0 || pya_info(fd, &info))
			_exit(2);
		map = pya_map(fd, &info);
		if (map == MAP_FAILED)
			_exit(3);
		for (i = 0; i < LIMIT_PAGES / 2 + 8; i++)
			if (pya_alloc(fd, 512, 8, off, NULL))
				_exit(4);
		child = fork();
		if (child == 0)
			_exit(pya_info(fd, &info) == -EIO ? 0 : 1);
		if (pya_wait_child(child))
			_exit(5);
		/* The parent's heap works, and a small fork copies fine. */
		if (pya_free(fd, off, 8, NULL))
			_exit(6);
		_exit(0);
	}
	EXPECT_EQ(0, pya_wait_child(pid));
}

/*
 * A shared heap is charged to its opener, whoever allocates: passing the
 * descriptor to another process (here: by fork) does not escape the limit.
 */
TEST_F(memlock, shared_heap_charges_its_opener)
{
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd, err = 0;
		pid_t child;

		if (become_limited(true))
			_exit(1);
		fd = pya_open();	/* shared */
		if (fd < 0)
			_exit(2);
		child = fork();
		if (child == 0)
			_exit(fill(fd, &err) == LIMIT_PAGES ? 0 : 1);
		if (pya_wait_child(child))
			_exit(3);
		/* The child's pages are the heap's: none left here. */
		if (fill(fd, &err) != 0 || err != -ENOMEM)
			_exit(4);
		_exit(0);
	}
	EXPECT_EQ(0, pya_wait_child(pid));
}

static int send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 }, c = 'f';
	struct iovec iov = { &c, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))], c;
	struct iovec iov = { &c, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sock, &m, 0) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&m);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/*
 * A shared heap passed over a socket to another user's process: what the
 * receiver allocates is charged to the opener's user, within the opener's
 * limit; the receiver's own heaps are charged to the receiver.
 */
TEST_F(memlock, passed_descriptor_charges_its_opener)
{
	int sv[2], status;
	pid_t a, b;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	a = fork();
	ASSERT_LE(0, a);
	if (a == 0) {
		__u64 off[8];
		int fd, i;
		char c;

		if (become_limited(true))
			_exit(1);
		fd = pya_open();	/* shared */
		for (i = 0; i < LIMIT_PAGES - 56; i++)
			if (fd < 0 || pya_alloc(fd, 512, 8, off, NULL))
				_exit(2);
		if (send_fd(sv[0], fd) || read(sv[0], &c, 1) != 1)
			_exit(3);
		_exit(0);
	}
	b = fork();
	ASSERT_LE(0, b);
	if (b == 0) {
		struct rlimit rl = { LIMIT_PAGES * PYA_PAGE,
				     LIMIT_PAGES * PYA_PAGE };
		int fd, own, err = 0;

		if (setrlimit(RLIMIT_MEMLOCK, &rl) || setgid(NOBODY - 1) ||
		    setuid(NOBODY - 1))
			_exit(1);
		fd = recv_fd(sv[1]);
		if (fd < 0)
			_exit(2);
		/* What is left of the opener's limit, not ours. */
		if (fill(fd, &err) != 56 || err != -ENOMEM)
			_exit(3);
		own = open_private();
		if (fill(own, &err) != LIMIT_PAGES || err != -ENOMEM)
			_exit(4);
		_exit(write(sv[1], "x", 1) == 1 ? 0 : 5);
	}
	ASSERT_EQ(b, waitpid(b, &status, 0));
	EXPECT_EQ(0, status);
	ASSERT_EQ(a, waitpid(a, &status, 0));
	EXPECT_EQ(0, status);
}

/* Root keeps CAP_IPC_LOCK: not bound by the rlimit, but by the module cap. */
TEST_F(memlock, root_bound_by_the_module_cap_only)
{
	long long cap = pya_param("total_limit_mb");
	pid_t pid;
	int status;

	ASSERT_LT(0, cap);
	ASSERT_EQ(0, pya_set_param("total_limit_mb",
				   (self->pages_before >> 8) + 4));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd, err = 0;
		long pages;

		if (become_limited(false))
			_exit(1);
		fd = open_private();
		pages = fill(fd, &err);
		/* Past the rlimit, up to the cap, then ENOMEM. */
		if (pages <= LIMIT_PAGES || err != -ENOMEM)
			_exit(2);
		if (pya_param("pages_held") > pya_param("total_limit_mb") << 8)
			_exit(3);
		_exit(0);
	}
	status = pya_wait_child(pid);
	pya_set_param("total_limit_mb", cap);
	EXPECT_EQ(0, status);
}

/* Limits refuse what they must, and keep their value. */
TEST(params_validated_when_written)
{
	long long heap = pya_param("heap_limit_mb");
	long long win = pya_param("window_mb");
	long long total = pya_param("total_limit_mb");
	struct pyalloc_info info;
	int fd;

	if (getuid() != 0)
		SKIP(return, "needs root");
	EXPECT_EQ(-EINVAL, pya_set_param("heap_limit_mb", 0));
	EXPECT_EQ(-EINVAL, pya_set_param("heap_limit_mb", 1LL << 40));
	EXPECT_EQ(-EINVAL, pya_set_param("window_mb", 0));
	EXPECT_EQ(-EINVAL, pya_set_param("window_mb", 1LL << 40));
	EXPECT_EQ(-EINVAL, pya_set_param("total_limit_mb", 0));
	EXPECT_EQ(heap, pya_param("heap_limit_mb"));
	EXPECT_EQ(win, pya_param("window_mb"));
	EXPECT_EQ(total, pya_param("total_limit_mb"));
	/* The largest window: a heap of it opens and maps nothing wrong. */
	ASSERT_EQ(0, pya_set_param("window_mb", 16LL << 20));
	fd = pya_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pya_info(fd, &info));
	EXPECT_LT(0, info.window_size);
	EXPECT_EQ(0, info.window_size % info.arena_size);
	close(fd);
	ASSERT_EQ(0, pya_set_param("window_mb", win));
}

PYALLOC_TEST_MAIN
