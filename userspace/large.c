// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Large objects: requests above 512 bytes go straight to the OS, as in the
 * seed and in CPython.  Each is its own private anonymous mapping, so
 * pya_free() is one munmap() and pya_realloc() can grow in place or move
 * without copying (mremap).
 *
 * There is no header in front of the block: the block starts at the
 * mapping (page-aligned), and a registry maps its address to the mapping's
 * length.  The registry is what lets pya_free() tell a large block from a
 * pointer the library never handed out, and abort on the latter instead of
 * unmapping someone else's memory.  It is an open-addressing hash table
 * (linear probing, backward-shift deletion, at most half full) under one
 * mutex: every operation on a large block makes a syscall anyway, which
 * costs far more than the lock.  Large blocks are not counted against any
 * heap's memory limit: they are the OS's memory, not the device's.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

struct large_ent {
	uintptr_t addr;		/* 0: empty */
	size_t len;
};

static pthread_mutex_t large_lock = PTHREAD_MUTEX_INITIALIZER;
static struct large_ent *large_tab;
static size_t large_mask;	/* capacity - 1, capacity a power of two */
static size_t large_count;

/* Process-wide counters, updated under large_lock, read racily. */
static uint64_t large_allocs, large_frees, large_bytes;

static size_t slot_of(uintptr_t addr)
{
	/* Addresses are page-aligned: drop the zero bits, then mix. */
	uint64_t k = (uint64_t)(addr >> PYAI_PAGE_SHIFT) * 0x9E3779B97F4A7C15ULL;

	return (size_t)(k >> 32) & large_mask;
}

static int reg_grow(void)
{
	size_t cap = large_tab ? 2 * (large_mask + 1) : 64;
	struct large_ent *old = large_tab;
	size_t oldcap = old ? large_mask + 1 : 0, i;

	/* Not calloc(): see meta.c. */
	large_tab = pyai_meta_alloc(cap * sizeof(*large_tab));
	if (!large_tab) {
		large_tab = old;
		return -1;
	}
	large_mask = cap - 1;
	for (i = 0; i < oldcap; i++) {
		size_t j;

		if (!old[i].addr)
			continue;
		for (j = slot_of(old[i].addr); large_tab[j].addr;
		     j = (j + 1) & large_mask)
			;
		large_tab[j] = old[i];
	}
	pyai_meta_free(old, oldcap * sizeof(*old));
	return 0;
}

/* Under large_lock. */
static int reg_insert(uintptr_t addr, size_t len)
{
	size_t j;

	if ((large_count + 1) * 2 > (large_tab ? large_mask + 1 : 0) &&
	    reg_grow() < 0)
		return -1;
	for (j = slot_of(addr); large_tab[j].addr; j = (j + 1) & large_mask)
		;
	large_tab[j].addr = addr;
	large_tab[j].len = len;
	large_count++;
	large_allocs++;
	large_bytes += len;
	return 0;
}

/* Under large_lock: index of @addr, or SIZE_MAX. */
static size_t reg_find(uintptr_t addr)
{
	size_t j;

	if (!large_tab || !addr)
		return SIZE_MAX;
	for (j = slot_of(addr); large_tab[j].addr; j = (j + 1) & large_mask)
		if (large_tab[j].addr == addr)
			return j;
	return SIZE_MAX;
}

/* Under large_lock: delete slot @j, shifting back the entries that linear
 * probing pushed past it so no lookup stops early at the hole. */
static void reg_delete(size_t j)
{
	size_t i = j, k;

	large_bytes -= large_tab[j].len;
	large_frees++;
	large_count--;
	for (;;) {
		large_tab[i].addr = 0;
		for (k = (i + 1) & large_mask;; k = (k + 1) & large_mask) {
			size_t home;

			if (!large_tab[k].addr)
				return;
			home = slot_of(large_tab[k].addr);
			/* Can entry k move to hole i?  Only if its home slot
			 * is not cyclically within (i, k]. */
			if (i <= k ? (home <= i || home > k)
				   : (home <= i && home > k))
				break;
		}
		large_tab[i] = large_tab[k];
		i = k;
	}
}

static size_t round_page(size_t n)
{
	return (n + PYAI_PAGE_SIZE - 1) & ~(PYAI_PAGE_SIZE - 1);
}

void *pyai_large_alloc(size_t n, size_t align)
{
	size_t len, extra = 0;
	char *p;
	int err;

	if (n > SIZE_MAX / 2 - PYAI_PAGE_SIZE ||
	    (align > PYAI_PAGE_SIZE && align > SIZE_MAX / 4)) {
		errno = ENOMEM;
		return NULL;
	}
	len = round_page(n);
	if (align > PYAI_PAGE_SIZE)
		extra = align - PYAI_PAGE_SIZE;
	p = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	if (extra) {
		/* Over-map, then trim the head and tail so the block starts
		 * at the mapping and the registry stays header-free. */
		size_t head = ((uintptr_t)p + align - 1) / align * align -
			      (uintptr_t)p;

		if (head)
			munmap(p, head);
		if (extra - head)
			munmap(p + head + len, extra - head);
		p += head;
	}
	pthread_mutex_lock(&large_lock);
	if (reg_insert((uintptr_t)p, len) < 0) {
		pthread_mutex_unlock(&large_lock);
		err = ENOMEM;
		munmap(p, len);
		errno = err;
		return NULL;
	}
	pthread_mutex_unlock(&large_lock);
	return p;
}

bool pyai_large_free(void *p)
{
	size_t j, len;

	pthread_mutex_lock(&large_lock);
	j = reg_find((uintptr_t)p);
	if (j == SIZE_MAX) {
		pthread_mutex_unlock(&large_lock);
		return false;
	}
	len = large_tab[j].len;
	reg_delete(j);
	pthread_mutex_unlock(&large_lock);
	munmap(p, len);
	return true;
}

size_t pyai_large_size(const void *p)
{
	size_t j, len = 0;

	pthread_mutex_lock(&large_lock);
	j = reg_find((uintptr_t)p);
	if (j != SIZE_MAX)
		len = large_tab[j].len;
	pthread_mutex_unlock(&large_lock);
	return len;
}

/*
 * Resize a large block to @n > 512 bytes with mremap(): in place when the
 * address space after it is free, else moved by remapping its pages (no
 * copy).  On failure the block is untouched.
 */
void *pyai_large_realloc(void *p, size_t n, const char *fn)
{
	size_t j, len, newlen;
	void *q;

	if (n > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	newlen = round_page(n);
	pthread_mutex_lock(&large_lock);
	j = reg_find((uintptr_t)p);
	if (j == SIZE_MAX) {
		pthread_mutex_unlock(&large_lock);
		pyai_invalid_pointer(fn, p);
	}
	len = large_tab[j].len;
	if (newlen == len) {
		pthread_mutex_unlock(&large_lock);
		return p;
	}
	/* Make sure the table can take the new entry before touching
	 * the mapping, so nothing can fail after mremap(). */
	if ((large_count + 1) * 2 > large_mask + 1 && reg_grow() < 0) {
		pthread_mutex_unlock(&large_lock);
		errno = ENOMEM;
		return NULL;
	}
	j = reg_find((uintptr_t)p);
	q = mremap(p, len, newlen, MREMAP_MAYMOVE);
	if (q == MAP_FAILED) {
		pthread_mutex_unlock(&large_lock);
		errno = ENOMEM;
		return NULL;
	}
	reg_delete(j);
	reg_insert((uintptr_t)q, newlen);
	/* A resize is not an allocation plus a free in the counters. */
	large_allocs--;
	large_frees--;
	pthread_mutex_unlock(&large_lock);
	return q;
}

void pyai_large_fork_prepare(void)
{
	pthread_mutex_lock(&large_lock);
}

void pyai_large_fork_parent(void)
{
	pthread_mutex_unlock(&large_lock);
}

/* The child has private copies of every large block and of the registry. */
void pyai_large_fork_child(void)
{
	pthread_mutex_init(&large_lock, NULL);
}

void pyai_large_stats(struct pya_stats *st)
{
	pthread_mutex_lock(&large_lock);
	st->large_allocs = large_allocs;
	st->large_frees = large_frees;
	st->large_live = large_count;
	st->large_live_bytes = large_bytes;
	pthread_mutex_unlock(&large_lock);
}
