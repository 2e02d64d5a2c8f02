/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The magazines' fast paths, inlined into every entry point (alloc.c for
 * the pya_* API, preload.c for malloc and free): a pop or a push on the
 * calling thread's magazine, no lock, no system call, no call out of line.
 * Whatever they cannot do (an empty or full magazine, a heap other than the
 * thread's last-used one, a pointer outside its window, anything that looks
 * wrong) they decline, and the caller takes the out-of-line path in
 * magazine.c, which does the same thing with every check written out.
 *
 * The thread's way in is pyai_last: its most recently used tcache (the
 * magazines of one heap), or an empty tcache that declines everything.
 * Only the owning thread sets it or frees the tcache it points to
 * (magazine.c), so the fast paths read it without synchronisation; a heap
 * closed by another thread zeroes the tcache's window_size and drains its
 * magazines, which turns the fast paths away from it.
 */
#ifndef PYALLOC_MAGAZINE_H
#define PYALLOC_MAGAZINE_H

#include <string.h>

#include "internal.h"

#define PYAI_TLS_IE __attribute__((tls_model("initial-exec")))

extern struct pyai_tcache pyai_no_tcache;	/* declines everything */
extern __thread struct pyai_tcache *pyai_last PYAI_TLS_IE;
/* The same for the default heap only (pya_malloc() needs no heap test). */
extern __thread struct pyai_tcache *pyai_last_default PYAI_TLS_IE;

/*
 * The first word of a block in a magazine (see pyai_fast_free()).  A
 * constant: a random key, as glibc's tcache has, would cost a load on
 * every free and protect nothing here (the key only decides whether the
 * slow path searches the magazine; a program that overwrites it merely
 * hides its double free from the call-site check, and the kernel still
 * catches it when the magazine drains).  An x86 immediate sign-extends 32
 * bits, so the compare and the store take no register: 0xffffffffa110c8ed,
 * a value programs are unlikely to store (no pointer, a large negative).
 */
#define PYAI_FREED_KEY	0xffffffffa110c8edULL

/*
 * A magazine's top, written by its owner and read racily by statistics
 * (pyai_mag_count()): a volatile store, as the kernel's WRITE_ONCE(),
 * since GCC does not fold an __atomic_store_n() into the address
 * arithmetic around it and would spend instructions recomputing it.
 */
#define PYAI_SET_TOP(m, v)	(*(void **volatile *)&(m)->top = (v))
/* top -= 1 and top += 1, each one instruction on x86-64 (one writer). */
#if defined(__x86_64__) && __SIZEOF_POINTER__ == 8
#define PYAI_POP_TOP(m)		__asm__("subq $8, %0" : "+m"((m)->top))
#define PYAI_PUSH_TOP(m)	__asm__("addq $8, %0" : "+m"((m)->top))
#else
#define PYAI_POP_TOP(m)		PYAI_SET_TOP(m, (m)->top - 1)
#define PYAI_PUSH_TOP(m)	PYAI_SET_TOP(m, (m)->top + 1)
#endif

/* 1 <= @n <= PYA_SMALL_MAX, in one comparison (0 wraps around). */
static inline bool pyai_small_request(size_t n)
{
	return n - 1 < PYA_SMALL_MAX;
}

/*
 * The magazine entry of a small request, class + 1: at byte offset 16 +
 * ((n - 1) * scale rounded down to 16), scale = 16 / granularity.  @scale
 * is tc->scale, or a constant where the caller knows it (the drop-in
 * malloc's heap is always at 16 bytes: 1, a mask).  One multiplication
 * instead of a shift by a variable and a shift back.
 */
static inline struct pyai_mag *pyai_mag_entry(struct pyai_tcache *tc,
					      size_t n, unsigned int scale)
{
	return (struct pyai_mag *)((char *)&tc->mag[1] +
				   (((n - 1) * scale) & ~(size_t)15));
}

/* The class size of a small request @n (the entry's index, scaled). */
static inline size_t pyai_entry_size(struct pyai_tcache *tc,
				     const struct pyai_mag *m,
				     unsigned int shift)
{
	return (size_t)(m - tc->mag) << shift;
}

/*
 * A block of @n bytes (1 <= @n <= PYA_SMALL_MAX) from @tc's magazine, or
 * NULL when it is empty: top[-1] is then the NULL guard below the slots
 * (struct pyai_mag).  The block's first word is cleared: a freed block
 * carries the double-free key there (pyai_fast_free()), and a block handed
 * out must not look freed.
 */
static inline void *pyai_fast_pop(struct pyai_tcache *tc, struct pyai_mag *m)
{
	void *p = m->top[-1];

	if (unlikely(!p))
		return NULL;
	PYAI_POP_TOP(m);
	*(uint64_t *)p = 0;
	PYAI_INC(tc->ctr.mag_hits);
	return p;
}

static inline void *pyai_fast_alloc(struct pyai_tcache *tc, size_t n,
				    unsigned int scale)
{
	return pyai_fast_pop(tc, pyai_mag_entry(tc, n, scale));
}

/*
 * pyai_fast_block(): @p's magazine entry if @p is the start of a block of
 * @tc's heap or of a page that is no class's (an entry of capacity 0, its
 * top and limit at the tcache's guard, which the caller must turn away),
 * else NULL.  pyai_fast_free(): push @p onto
 * that entry if it has room; false sends the call to the slow path, which
 * checks everything again and also handles pointers of other heaps.
 *
 * The block's own checks, each a few instructions on lines already loaded:
 *  - the page-class byte indexes the magazine entries directly; a byte that
 *    names no class finds a capacity-0 entry (PYAI_MAG_ENTRIES);
 *  - the offset in the page must be k * size with block k inside the page:
 *    one multiplication and one comparison (struct pyai_blockcheck);
 *  - double free: a block pushed here gets PYAI_FREED_KEY in its first
 *    word, and pyai_fast_alloc() clears it.  A block that already holds the
 *    key is either in a magazine or the depot now (a double free) or the
 *    program wrote that value there itself; the slow path searches the
 *    magazine and the depot to tell.  This catches a second free at any
 *    depth of the thread's magazine, while the key is intact; a duplicate
 *    whose key the program overwrote, or that another thread freed, is
 *    caught only by the kernel, when both copies have gone back to it
 *    (userspace/README.md, "Errors").
 */
static inline struct pyai_mag *pyai_fast_block(struct pyai_tcache *tc,
					       const void *p)
{
	uint64_t off = (uintptr_t)p - (uintptr_t)tc->base;
	const struct pyai_blockcheck *bc;
	struct pyai_mag *m;
	size_t i;

	/*
	 * A plain load: the thread that closes the heap zeroes window_size,
	 * and a program that frees into a heap it closes meanwhile in another
	 * thread has a race of its own; once the close is ordered before
	 * this free, as it must be, the free sees the zero.
	 */
	if (unlikely(off >= tc->window_size))
		return NULL;
	i = __atomic_load_n(&tc->page_class[off >> PYAI_PAGE_SHIFT],
			    __ATOMIC_RELAXED);
	m = &tc->mag[i];
	/* One copy of m, its block check found from it (internal.h): GCC
	 * would rebuild both from i for every use. */
	__asm__("" : "+r"(m));
	if (!m)
		__builtin_unreachable();
	bc = (const struct pyai_blockcheck *)(m + PYAI_MAG_ENTRIES);
	if (unlikely((off & (PYAI_PAGE_SIZE - 1)) * bc->divmagic > bc->divbound))
		return NULL;
	return m;
}

/* Push the block @p, known to belong to @m, unless @m is full or @p may
 * be in it already (see above). */
static inline bool pyai_fast_push(struct pyai_tcache *tc, struct pyai_mag *m,
				  void *p)
{
	void **top = m->top;

	if (unlikely(top >= m->limit || *(uint64_t *)p == PYAI_FREED_KEY))
		return false;
	*(uint64_t *)p = PYAI_FREED_KEY;
	*top = p;
	PYAI_PUSH_TOP(m);
	PYAI_INC(tc->ctr.free_hits);
	return true;
}

static inline bool pyai_fast_free(struct pyai_tcache *tc, void *p)
{
	struct pyai_mag *m = pyai_fast_block(tc, p);

	if (unlikely(!m))
		return false;
	return pyai_fast_push(tc, m, p);
}

/* calloc() of @n bytes, 1 <= @n <= PYA_SMALL_MAX; NULL when declined. */
static inline void *pyai_fast_calloc(struct pyai_tcache *tc, size_t n,
				     unsigned int scale, unsigned int shift)
{
	struct pyai_mag *m = pyai_mag_entry(tc, n, scale);
	void *p = pyai_fast_pop(tc, m);

	/* The kernel zeroes fresh pages only; a reused block keeps whatever
	 * was last written to it. */
	if (likely(p))
		memset(p, 0, pyai_entry_size(tc, m, shift));
	return p;
}

/*
 * realloc() of @p to @n bytes when both are small and @p is a block of
 * @tc's heap: in place within the class, else a new block, the copy and
 * the old block freed.  NULL when declined, with nothing changed.
 */
static inline void *pyai_fast_realloc(struct pyai_tcache *tc, void *p,
				      size_t n, unsigned int scale,
				      unsigned int shift, const char *fn)
{
	struct pyai_mag *m, *to;
	size_t old;
	void *q;

	/*
	 * An entry of no class has its limit at the guard (internal.h); a
	 * block with the freed key may be free already, which the slow path
	 * finds out (pyai_realloc_check()).
	 */
	if (!pyai_small_request(n) || !(m = pyai_fast_block(tc, p)) ||
	    m->limit == PYAI_GUARD_TOP(tc) || *(uint64_t *)p == PYAI_FREED_KEY)
		return NULL;
	to = pyai_mag_entry(tc, n, scale);
	if (to == m)
		return p;
	q = pyai_fast_pop(tc, to);
	if (unlikely(!q))
		return NULL;
	old = pyai_entry_size(tc, m, shift);
	memcpy(q, p, old < n ? old : n);
	/* @p is a block of @m's class: pyai_fast_block() said so above. */
	if (!pyai_fast_push(tc, m, p))
		pyai_small_free(tc->heap, p, (unsigned int)(m - tc->mag) - 1, fn);
	return q;
}

#endif /* PYALLOC_MAGAZINE_H */
