/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by the libpyalloc tests (selftests/lib_*.c).
 *
 * The same programs run in two places:
 *   - in the VM, linked with userspace/libpyalloc.a against the real module
 *     (selftests/Makefile); they exit with KSFT_SKIP when /dev/pyalloc is
 *     missing;
 *   - on the host, by `make -C userspace host-test`, linked with the
 *     library's sources and the fake device of tests/host/lib_fakedev.c
 *     under ASan and UBSan (PYA_FAKE_DEVICE is defined).
 * Each TEST runs in its own forked process (the harness does that), so each
 * starts with a library that has not opened its default heap yet.
 */
#ifndef LIB_UTIL_H
#define LIB_UTIL_H

/* See pyalloc_util.h: the 6.12 harness is not -Wextra clean. */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wclobbered"
#pragma GCC diagnostic ignored "-Wsign-compare"

#include "kselftest_harness.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pyalloc.h>

#ifdef PYA_FAKE_DEVICE
#include <linux/pyalloc.h>
#include "lib_fakedev.h"
#endif

/* Block size for @n at granularity @g, as the library promises. */
static inline size_t lib_round(size_t n, size_t g)
{
	if (n == 0)
		n = 1;
	return (n + g - 1) / g * g;
}

/* A byte pattern derived from a block's id, so that a block overwritten by
 * another (two live blocks overlapping) or handed out twice is noticed. */
static inline uint8_t lib_pat(uint64_t id, size_t i)
{
	uint64_t x = id * 0x9E3779B97F4A7C15ULL + (i >> 3) * 0xBF58476D1CE4E5B9ULL;

	return (uint8_t)((x >> 29) ^ (x >> 47) ^ i);
}

static inline void lib_fill(void *p, size_t n, uint64_t id)
{
	uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = lib_pat(id, i);
}

/* Index of the first wrong byte, or SIZE_MAX. */
static inline size_t lib_check(const void *p, size_t n, uint64_t id)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != lib_pat(id, i))
			return i;
	return SIZE_MAX;
}

/* Kernel's count of blocks handed out by @h minus those in magazines: the
 * blocks the program really holds. */
static inline int64_t lib_live_blocks(pya_heap_t *h)
{
	struct pya_stats st;
	int64_t n = 0;
	unsigned int c;

	if (pya_heap_stats(h, &st))
		return -1;
	for (c = 0; c < st.num_classes; c++)
		n += (int64_t)st.classes[c].blocks_in_use;
	return n - (int64_t)st.blocks_cached;
}

static inline int64_t lib_kernel_blocks(pya_heap_t *h)
{
	struct pya_stats st;
	int64_t n = 0;
	unsigned int c;

	if (pya_heap_stats(h, &st))
		return -1;
	for (c = 0; c < st.num_classes; c++)
		n += (int64_t)st.classes[c].blocks_in_use;
	return n;
}

/*
 * Run @fn(@arg) in a child with stderr captured; expect it to die of
 * SIGABRT having printed @msg.  This is how the "stops the program with a
 * clear message" promises are tested.
 */
#define EXPECT_ABORT(fn, arg, msg) lib_expect_abort(_metadata, fn, arg, msg)
static inline void lib_expect_abort(struct __test_metadata *_metadata,
				    void (*fn)(void *), void *arg,
				    const char *msg)
{
	char buf[4096];
	size_t len = 0;
	int pfd[2], status;
	ssize_t r;
	pid_t pid;

	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(pfd[0]);
		dup2(pfd[1], STDERR_FILENO);
		fn(arg);
		_exit(0);
	}
	close(pfd[1]);
	while (len < sizeof(buf) - 1 &&
	       (r = read(pfd[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += r;
	buf[len] = '\0';
	close(pfd[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) {
		TH_LOG("child status %#x, stderr: %s", status, buf);
	}
	EXPECT_NE(NULL, strstr(buf, msg)) {
		TH_LOG("expected \"%s\" in stderr: %s", msg, buf);
	}
}

static inline int lib_device_present(void)
{
#ifdef PYA_FAKE_DEVICE
	return 1;
#else
	return access("/dev/pyalloc", F_OK) == 0;
#endif
}

/* main(): skip the whole program when the module is not loaded. */
#define LIB_TEST_MAIN							\
	int main(int argc, char **argv)					\
	{								\
		if (!lib_device_present()) {				\
			ksft_print_header();				\
			ksft_exit_skip("/dev/pyalloc not present\n");	\
		}							\
		return test_harness_run(argc, argv);			\
	}

#endif /* LIB_UTIL_H */
