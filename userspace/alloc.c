// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The public malloc-shaped API.  Every call splits on size: at most
 * PYA_SMALL_MAX bytes go to a heap's magazines (magazine.c), more to the OS
 * (large.c).  Calls that take a pointer split on address: inside a heap's
 * window it is a small block, else it must be a registered large block,
 * else the program handed us a pointer we never gave out and we abort.
 *
 * In the pya_heap_* variants a NULL heap means the default heap.
 */
#include <string.h>

#include "magazine.h"

static struct pya_heap *heap_or_default(struct pya_heap *h)
{
	return h ? h : pyai_default_heap();
}

/*
 * The thread's magazines for @h (NULL: the default heap) if the inline fast
 * paths may serve the call, else the empty tcache, which declines.
 */
static inline struct pyai_tcache *tcache_for(const struct pya_heap *h)
{
	struct pyai_tcache *tc;

	if (!h)
		return pyai_last_default;
	tc = pyai_last;
	return tc->heap == h ? tc : &pyai_no_tcache;
}

static __attribute__((noinline)) void *malloc_slow(struct pya_heap *h,
						   size_t n)
{
	if (n > PYA_SMALL_MAX)
		return pyai_large_alloc(n, 0);
	h = heap_or_default(h);
	if (unlikely(!h))
		return NULL;
	return pyai_small_alloc(h, pyai_class_of(h, n));
}

static inline void *heap_malloc(struct pya_heap *h, size_t n)
{
	struct pyai_tcache *tc = tcache_for(h);

	if (likely(pyai_small_request(n))) {
		void *p = pyai_fast_alloc(tc, n, tc->scale);

		if (likely(p))
			return p;
	}
	return malloc_slow(h, n);
}

void *pya_heap_malloc(pya_heap_t *h, size_t n)
{
	return heap_malloc(h, n);
}

void *pya_malloc(size_t n)
{
	return heap_malloc(NULL, n);
}

/* What heap_calloc()'s inline fast path declines (see realloc_slow()). */
static __attribute__((noinline)) void *calloc_slow(struct pya_heap *h,
						   size_t nmemb, size_t size)
{
	size_t n;
	void *p;

	if (__builtin_mul_overflow(nmemb, size, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	if (n > PYA_SMALL_MAX)
		return pyai_large_alloc(n, 0);	/* fresh pages: already zero */
	h = heap_or_default(h);
	if (unlikely(!h))
		return NULL;
	p = pyai_small_alloc(h, pyai_class_of(h, n));
	/* The kernel zeroes fresh pages only; a reused block keeps whatever
	 * was last written to it. */
	if (p)
		memset(p, 0, pyai_class_size(h, pyai_class_of(h, n)));
	return p;
}

static inline void *heap_calloc(struct pya_heap *h, size_t nmemb,
				size_t size)
{
	struct pyai_tcache *tc = tcache_for(h);
	size_t n;

	if (likely(!__builtin_mul_overflow(nmemb, size, &n) &&
		   pyai_small_request(n))) {
		void *p = pyai_fast_calloc(tc, n, tc->scale, tc->shift);

		if (likely(p))
			return p;
	}
	return calloc_slow(h, nmemb, size);
}

void *pya_heap_calloc(pya_heap_t *h, size_t nmemb, size_t size)
{
	return heap_calloc(h, nmemb, size);
}

void *pya_calloc(size_t nmemb, size_t size)
{
	return heap_calloc(NULL, nmemb, size);
}

/* Free @p, known to lie in @h's window. */
static void small_free_checked(struct pya_heap *h, void *p, const char *fn)
{
	int c = pyai_block_class(h, p);

	if (unlikely(c < 0))
		pyai_invalid_pointer(fn, p);
	pyai_small_free(h, p, c, fn);
}

static __attribute__((noinline)) void free_slow(void *p)
{
	struct pya_heap *h;

	if (!p)
		return;
	h = pyai_heap_of(p);
	if (likely(h))
		small_free_checked(h, p, "pya_free");
	else if (!pyai_large_free(p))
		pyai_invalid_pointer("pya_free", p);
}

/* Any heap's block: the thread's last-used heap inline, the rest here. */
void pya_free(void *p)
{
	if (likely(pyai_fast_free(pyai_last, p)))
		return;
	free_slow(p);
}

void pya_heap_free(pya_heap_t *h, void *p)
{
	if (likely(pyai_fast_free(tcache_for(h), p)))
		return;
	if (!p)
		return;
	h = h ? h : __atomic_load_n(&pyai_default, __ATOMIC_ACQUIRE);
	if (h && pyai_in_window(h, p))
		small_free_checked(h, p, "pya_heap_free");
	else if (pyai_heap_of(p) || !pyai_large_free(p))
		/* Another heap's block, or nobody's. */
		pyai_invalid_pointer("pya_heap_free", p);
}

size_t pya_usable_size(void *p)
{
	struct pya_heap *h;
	size_t len;
	int c;

	if (!p)
		return 0;
	h = pyai_heap_of(p);
	if (h) {
		c = pyai_block_class(h, p);
		if (c < 0)
			pyai_invalid_pointer("pya_usable_size", p);
		return pyai_class_size(h, c);
	}
	len = pyai_large_size(p);
	if (!len)
		pyai_invalid_pointer("pya_usable_size", p);
	return len;
}

static void *realloc_small(struct pya_heap *owner, void *p, size_t n,
			   const char *fn)
{
	int c = pyai_block_class(owner, p);
	size_t old;
	void *q;

	if (c < 0)
		pyai_invalid_pointer(fn, p);
	old = pyai_class_size(owner, c);
	if (n <= PYA_SMALL_MAX) {
		unsigned int nc = pyai_class_of(owner, n);

		if (nc == (unsigned int)c) {
			pyai_realloc_check(owner, p, c, fn);
			return p;
		}
		q = pyai_small_alloc(owner, nc);
	} else {
		q = pyai_large_alloc(n, 0);
	}
	if (!q)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	pyai_small_free(owner, p, c, fn);
	return q;
}

/*
 * What the inline fast path of realloc declines, out of line so that the
 * fast path saves no registers for it (as malloc_slow(), calloc_slow()).
 */
static __attribute__((noinline)) void *realloc_slow(struct pya_heap *h,
						    void *p, size_t n,
						    const char *fn)
{
	struct pya_heap *owner;
	void *q;

	if (!p)
		return heap_malloc(h, n);
	if (n == 0)
		n = 1;		/* like pya_malloc(0): a minimal block */
	owner = pyai_heap_of(p);
	if (owner) {
		if (h && owner != h)
			pyai_invalid_pointer(fn, p);
		return realloc_small(owner, p, n, fn);
	}
	if (!pyai_large_size(p))
		pyai_invalid_pointer(fn, p);
	if (n > PYA_SMALL_MAX)
		return pyai_large_realloc(p, n, fn);
	/* A large block shrinking to a small one moves into the heap. */
	q = heap_malloc(h, n);
	if (!q)
		return NULL;
	memcpy(q, p, n);
	pyai_large_free(p);
	return q;
}

static inline void *do_realloc(struct pya_heap *h, void *p, size_t n,
			       const char *fn)
{
	struct pyai_tcache *tc = tcache_for(h);
	/* Small to small in the thread's last-used heap: inline. */
	void *q = pyai_fast_realloc(tc, p, n, tc->scale, tc->shift, fn);

	if (likely(q))
		return q;
	return realloc_slow(h, p, n, fn);
}

void *pya_heap_realloc(pya_heap_t *h, void *p, size_t n)
{
	return do_realloc(h, p, n, "pya_heap_realloc");
}

void *pya_realloc(void *p, size_t n)
{
	return do_realloc(NULL, p, n, "pya_realloc");
}

/*
 * Blocks are aligned to the largest power of two dividing their size (the
 * kernel puts block k of a pool at k * size from a page boundary), so a
 * small request is rounded up to a multiple of @align and served from that
 * class.  Beyond 512 bytes the block is a page-aligned mapping, over-mapped
 * and trimmed for alignments above a page.
 */
void *pya_heap_aligned_alloc(pya_heap_t *h, size_t align, size_t n)
{
	size_t size;

	if (align == 0 || (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}
	if (n == 0)
		n = 1;
	if (n > SIZE_MAX - align) {
		errno = ENOMEM;
		return NULL;
	}
	size = (n + align - 1) & ~(align - 1);
	if (size > PYA_SMALL_MAX)
		return pyai_large_alloc(n, align);
	return heap_malloc(h, size);
}

void *pya_aligned_alloc(size_t align, size_t n)
{
	return pya_heap_aligned_alloc(NULL, align, n);
}

int pya_heap_flush(pya_heap_t *h)
{
	if (!h)
		h = __atomic_load_n(&pyai_default, __ATOMIC_ACQUIRE);
	if (!h)
		return 0;	/* never opened: nothing cached */
	return pyai_flush_thread(h);
}

/*
 * malloc_trim() for a heap: the calling thread's cached blocks go back, then
 * the kernel releases the empty arena it keeps against thrashing.
 */
int pya_heap_trim(pya_heap_t *h)
{
	struct pyalloc_trim t = { 0 };

	if (!h)
		h = __atomic_load_n(&pyai_default, __ATOMIC_ACQUIRE);
	if (!h)
		return 0;	/* never opened: nothing held */
	if (pyai_flush_thread(h))
		return -1;
	return pyai_heap_ioctl(h, NULL, PYALLOC_IOC_TRIM, &t) ? -1 : 0;
}
