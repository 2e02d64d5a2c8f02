// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Memory for the library's own structures: heaps, per-thread state and
 * magazines, the large-block registry.
 *
 * None of it comes from malloc().  The library is also a process's malloc
 * (libpyalloc-malloc.so, preload.c): a thread's first allocation creates
 * its magazines, and if those came from malloc() the call would recurse
 * into itself, or deadlock on a lock it already holds.  Every structure is
 * therefore its own private anonymous mapping.  They are few (one per
 * thread and heap) and live long, so a syscall each is cheap next to the
 * ioctls that fill the magazines; pages are touched only where used.
 */
#include <sys/mman.h>

#include "internal.h"

static size_t meta_round(size_t len)
{
	return (len + PYAI_PAGE_SIZE - 1) & ~(PYAI_PAGE_SIZE - 1);
}

/* Zeroed memory of at least @len bytes, or NULL with errno ENOMEM. */
void *pyai_meta_alloc(size_t len)
{
	void *p = mmap(NULL, meta_round(len), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

void pyai_meta_free(void *p, size_t len)
{
	if (p)
		munmap(p, meta_round(len));
}
