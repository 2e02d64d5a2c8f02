// SPDX-License-Identifier: GPL-2.0
/*
 * Small objects in a crashing program's core dump.  The window is no longer
 * VM_DONTDUMP, but it is a MAP_SHARED mapping of a device file, which the
 * kernel's default coredump_filter (0x33) leaves out like any shared file
 * mapping; bit 3 (file-backed shared mappings) puts it in:
 *
 *	echo 0x3b > /proc/<pid>/coredump_filter	(inherited by children)
 *
 * A child writes a marker into a block of a private heap (a small window,
 * so that the dump does not walk 4 GiB of unbacked offsets) and aborts,
 * once with each filter; the core holds the marker only with bit 3.
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

/* Abort with a marker in a block; the core file's path, or "" if none. */
static pid_t crash_with_marker(const char *filter)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct pyalloc_config c = {
			.flags = PYALLOC_CONFIG_MODE | PYALLOC_CONFIG_WINDOW_SIZE,
			.mode = PYALLOC_MODE_PRIVATE, .window_size = 4 << 20,
		};
		struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
		struct pyalloc_info info;
		int hfd = pya_open(), ffd;
		__u64 off;
		char *map;

		ffd = open("/proc/self/coredump_filter", O_WRONLY);
		if (ffd < 0 || write(ffd, filter, strlen(filter)) < 0)
			_exit(3);
		close(ffd);
		if (hfd < 0 || pya_ioctl(hfd, PYALLOC_IOC_CONFIG, &c) ||
		    pya_info(hfd, &info) || setrlimit(RLIMIT_CORE, &rl))
			_exit(1);
		map = pya_map(hfd, &info);
		if (map == MAP_FAILED || pya_alloc(hfd, 64, 1, &off, NULL))
			_exit(2);
		decode(map + off, MARKER_ENC);
		abort();
	}
	return pid;
}

TEST(blocks_in_core_dumps_with_shared_filter)
{
	static const char * const filters[] = { "0x33", "0x3b" };
	char old[256] = "", path[64], marker[sizeof(MARKER_ENC)];
	unsigned int i;
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
	for (i = 0; i < 2; i++) {
		pid = crash_with_marker(filters[i]);
		ASSERT_LE(0, pid);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("status %#x", status);
		EXPECT_EQ(SIGABRT, WTERMSIG(status));
		EXPECT_TRUE(WCOREDUMP(status));
		snprintf(path, sizeof(path), CORE_DIR "/core.%d", pid);
		/*
		 * Decoded only now and wiped after: a copy in our memory would
		 * be inherited by the next child and show in its core.
		 */
		decode(marker, MARKER_ENC);
		/* Default filter: left out like any shared file mapping. */
		EXPECT_EQ(i == 1, file_has(path, marker))
			TH_LOG("filter %s, core %s", filters[i], path);
		explicit_bzero(marker, sizeof(marker));
		unlink(path);
	}
	pwrite(fd, old, n, 0);
	close(fd);
}

PYALLOC_TEST_MAIN
