// SPDX-License-Identifier: GPL-2.0
/*
 * Small objects appear in a crashing program's core dump, as any malloc's
 * memory does: the window is not VM_DONTDUMP.  A child writes a marker into
 * a block of a private heap (a small window, so that the dump does not walk
 * 4 GiB of unbacked offsets) and aborts; the core file holds the marker.
 */
#include "pyalloc_util.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PATTERN_FILE	"/proc/sys/kernel/core_pattern"
#define CORE_DIR	"/tmp/pyalloc-core"
/*
 * The marker, each byte plus one, so that the text itself (in .rodata,
 * which the dump may include) never matches; only the block holds it.
 */
#define MARKER_ENC	"qzbmmpd.dpsf.nbslfs.6g4b:d28"

static void decode(char *dst, const char *enc)
{
	while (*enc)
		*dst++ = (char)(*enc++ - 1);
	*dst = '\0';
}

static bool file_has(const char *path, const char *needle)
{
	size_t n = strlen(needle), len = 0, cap = 1 << 20;
	char *buf = malloc(cap);
	bool found = false;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || !buf)
		goto out;
	/* Read in overlapping chunks: a marker may straddle two. */
	while ((r = read(fd, buf + len, cap - len)) > 0) {
		len += r;
		if (memmem(buf, len, needle, n)) {
			found = true;
			break;
		}
		if (len > n) {
			memmove(buf, buf + len - n, n);
			len = n;
		}
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return found;
}

TEST(blocks_are_in_core_dumps)
{
	char old[256] = "", path[64], marker[sizeof(MARKER_ENC)];
	struct pyalloc_info info;
	int fd, status;
	ssize_t n;
	pid_t pid;

	if (getuid() != 0)
		SKIP(return, "needs root to set core_pattern");
	fd = open(PATTERN_FILE, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	n = read(fd, old, sizeof(old) - 1);
	ASSERT_LT(0, n);
	mkdir(CORE_DIR, 0700);
	ASSERT_EQ((ssize_t)strlen(CORE_DIR "/core.%p"),
		  pwrite(fd, CORE_DIR "/core.%p", strlen(CORE_DIR "/core.%p"),
			 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct pyalloc_config c = {
			.flags = PYALLOC_CONFIG_MODE | PYALLOC_CONFIG_WINDOW_SIZE,
			.mode = PYALLOC_MODE_PRIVATE, .window_size = 4 << 20,
		};
		struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
		int hfd = pya_open();
		__u64 off;
		char *map;

		if (hfd < 0 || pya_ioctl(hfd, PYALLOC_IOC_CONFIG, &c) ||
		    pya_info(hfd, &info) || setrlimit(RLIMIT_CORE, &rl))
			_exit(1);
		map = pya_map(hfd, &info);
		if (map == MAP_FAILED || pya_alloc(hfd, 64, 1, &off, NULL))
			_exit(2);
		decode(map + off, MARKER_ENC);
		abort();
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	pwrite(fd, old, n, 0);
	close(fd);
	ASSERT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGABRT, WTERMSIG(status));
	EXPECT_TRUE(WCOREDUMP(status));
	snprintf(path, sizeof(path), CORE_DIR "/core.%d", pid);
	decode(marker, MARKER_ENC);
	EXPECT_TRUE(file_has(path, marker)) TH_LOG("no marker in %s", path);
	unlink(path);
}

PYALLOC_TEST_MAIN
