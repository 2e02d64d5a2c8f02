/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fake /dev/pyalloc for the library's host unit tests: it replaces
 * userspace/dev.c and keeps the kernel's contract (uapi/linux/pyalloc.h):
 * all-or-nothing batches, EINVAL + error_index for a bad free, the memory
 * limit, granularity, window size and mode only before the first
 * allocation or mapping, statistics through a user pointer, ABI 2 features.
 *
 * Modes, as in the kernel: a shared heap's state and window live in
 * MAP_SHARED memory with a process-shared lock, so a forked child shares
 * the heap.  A private heap's state and window are MAP_PRIVATE, so fork()
 * itself gives the child its own copy at the instant of fork, as the kernel
 * does; atfork handlers registered before anything else hold every private
 * heap's lock across fork() (the kernel serialises the copy with ioctls in
 * the same way).  The child adopts its copy at its first ioctl (a new heap
 * id), so raw fork system calls work too; a child of a parent that had not
 * mapped the window gets EPERM, and fakedev_fail_fork_copy() makes the next
 * child's copy fail (EIO from every ioctl, window inaccessible).  Freed
 * blocks are poisoned (0x5a) so tests see what a reused block looks like.
 */
#ifndef LIB_FAKEDEV_H
#define LIB_FAKEDEV_H

#include <stdint.h>

/*
 * The window and the memory limit; the instruction-count benchmark builds
 * the stand-in with larger ones (bench/icount/Makefile), so that its Python
 * programs never meet the limit.
 */
#ifndef FAKEDEV_WINDOW
#define FAKEDEV_WINDOW		(16UL << 20)	/* 4096 pool pages */
#endif
#ifndef FAKEDEV_MEM_LIMIT
#define FAKEDEV_MEM_LIMIT	(8UL << 20)
#endif
#define FAKEDEV_ARENA		(256UL << 10)
#define FAKEDEV_POISON		0x5a

/* Make open() fail with @err (0: succeed again). */
void fakedev_set_open_error(int err);
/* Make the next @n ioctls of type @cmd fail with @err. */
void fakedev_fail_ioctl(unsigned long cmd, int err, int n);
/* ioctls served so far, by all fake heaps of this process (and children
 * forked before they ran). */
uint64_t fakedev_ioctl_count(unsigned long cmd);
/* Blocks allocated in the fake heap behind @fd. */
uint64_t fakedev_blocks_in_use(int fd);
/* Make the private copies of the next @n forked children fail. */
void fakedev_fail_fork_copy(int n);
/* Make the next ALLOC answer @off as its first block's offset (a kernel
 * gone wrong: the block it replaces stays allocated). */
void fakedev_bad_alloc_offset(uint64_t off);

#endif
