// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libpyalloc-malloc.so: pyalloc as a process's malloc, through LD_PRELOAD
 * (tools/pyalloc-run sets it up).
 *
 * Requests of at most 512 bytes come from one private-across-fork heap on
 * /dev/pyalloc at granularity 16 (every block is 16-byte aligned, the
 * x86-64 ABI's max_align_t, as CPython >= 3.8 does on 64-bit), through the
 * library's per-thread magazines.  Larger requests, and everything the
 * device cannot serve, go to glibc's own allocator through the functions
 * it exports for that (__libc_malloc and family): never dlsym() on an
 * allocation path (dlsym itself allocates), never one mmap() per call.
 *
 * What makes it safe as a process's only allocator:
 *
 *  - Before our constructor runs (ld.so relocating, TLS set-up, other
 *    libraries' constructors), every call goes to glibc: nothing of ours is
 *    initialised inside a malloc() call.  The constructor opens the heap,
 *    then publishes it; from then on a small request uses it.  None of the
 *    library's own structures comes from malloc (meta.c), and a call made
 *    while the library builds a thread's magazines goes straight to the
 *    kernel (magazine.c, pyai_busy): no recursion, no self-deadlock.
 *  - A pointer is ours if it lies in the heap's window; anything else
 *    (allocated by glibc before we took over, or on the large path, or by
 *    ld.so) goes to glibc's free.  free() preserves errno.
 *  - fork(): the kernel gives the child its own copy of the heap at the
 *    instant of fork, whoever forks and however (the raw system call and
 *    _Fork() included); the library's atfork handlers keep its lists
 *    consistent, and without them the child repairs its lock on first use
 *    (heap.c).  The handlers are registered in our constructor, before
 *    those of libraries initialised later, so our prepare handler runs
 *    after theirs (prepare handlers run in reverse order) and they may
 *    still allocate; one that allocates after it is served without a lock.
 *  - The descriptor is O_CLOEXEC, moved to 1000 and up (or the top quarter
 *    of RLIMIT_NOFILE), and checked with fstat() whenever an ioctl on it
 *    fails (any other file refuses our command numbers): a program that
 *    closes or dup2()s over it loses the heap, and no other file acts on
 *    our ioctls; its small requests then go to glibc.
 *  - No device (no module, a container without the node, seccomp), a
 *    module without private heaps, or a heap at its limit: glibc serves the
 *    request, silently unless PYALLOC_VERBOSE=1.
 *  - A thread's cached blocks go back when it exits (pthread key
 *    destructor, magazine.c), the main thread's at exit() (our
 *    destructor); calls made after either are served one block at a time.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "magazine.h"

#define EXPORT __attribute__((visibility("default")))

/* glibc's own allocator, exported by libc.so.6 for exactly this use. */
extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void *__libc_valloc(size_t n);
extern void *__libc_pvalloc(size_t n);

/*
 * The heap, published by the constructor once it is open; NULL before and
 * when there is none.  It is never unpublished: a lost heap's window stays
 * mapped, so frees of its blocks are still recognised (and dropped).
 */
static struct pya_heap *pre_heap;

/*
 * After the heap refused a request (ENOMEM at its limit, or lost), this
 * many of the thread's next small requests go straight to glibc, so a
 * program at the limit does not pay a failed ioctl per malloc.
 */
#define PRE_BACKOFF	1024
static __thread unsigned int pre_backoff __attribute__((tls_model("initial-exec")));

/*
 * glibc's introspection functions, which have no __libc_ alias; looked up
 * once in the constructor (any allocation dlsym makes goes to glibc then,
 * since the heap is not yet published), used only for pointers that are
 * not ours and for glibc's own figures.
 */
static size_t (*glibc_usable_size)(void *);
static int (*glibc_trim)(size_t);
static struct mallinfo2 (*glibc_mallinfo2)(void);
static void (*glibc_stats)(void);

static inline struct pya_heap *heap_get(void)
{
	return __atomic_load_n(&pre_heap, __ATOMIC_ACQUIRE);
}

static inline bool ours(const struct pya_heap *h, const void *p)
{
	return h && pyai_in_window(h, p);
}

/* A small block for @n bytes, or NULL with errno untouched. */
static inline void *small_alloc(struct pya_heap *h, size_t n)
{
	void *p;
	int err;

	if (unlikely(pre_backoff)) {
		pre_backoff--;
		return NULL;
	}
	err = errno;
	p = pyai_small_alloc(h, pyai_class_of(h, n));
	if (unlikely(!p)) {
		pre_backoff = PRE_BACKOFF;
		errno = err;
	}
	return p;
}

/* log2 of the heap's granularity, PYALLOC_GRANULARITY_16: a constant here. */
#define PRE_SHIFT	4
#define PRE_SCALE	(16 >> PRE_SHIFT)

/*
 * The entry points first try magazine.h's inline fast paths on the thread's
 * magazines for our heap (the library's only heap in this object, so the
 * thread's last-used tcache is either that or the empty one, which
 * declines: before the constructor, and in a thread that has not yet
 * allocated).  What they decline goes below.
 */
static __attribute__((noinline)) void *malloc_slow(size_t n)
{
	struct pya_heap *h = heap_get();

	if (likely(h && n <= PYA_SMALL_MAX)) {
		void *p = small_alloc(h, n);

		if (likely(p))
			return p;
	}
	return __libc_malloc(n);
}

EXPORT void *malloc(size_t n)
{
	if (likely(pyai_small_request(n))) {
		void *p = pyai_fast_alloc(pyai_last, n, PRE_SCALE);

		if (likely(p))
			return p;
	}
	return malloc_slow(n);
}

/* Free a block of our window; abort on a pointer that is not a block. */
static void small_free(struct pya_heap *h, void *p, const char *fn)
{
	int c = pyai_block_class(h, p);
	int err = errno;

	if (unlikely(c < 0))
		pyai_invalid_pointer(fn, p);
	pyai_small_free(h, p, c, fn);
	errno = err;
}

static __attribute__((noinline)) void free_slow(void *p)
{
	struct pya_heap *h = heap_get();

	if (likely(ours(h, p)))
		small_free(h, p, "free");
	else if (p)
		__libc_free(p);		/* preserves errno (glibc >= 2.33) */
}

EXPORT void free(void *p)
{
	if (likely(pyai_fast_free(pyai_last, p)))
		return;
	free_slow(p);
}

/*
 * calloc() and realloc() are split like malloc(): what the inline fast path
 * declines goes out of line, so that the fast path saves no registers for
 * the slow one (six pushes and pops a call, a tenth of a calloc).
 */
static __attribute__((noinline)) void *calloc_slow(size_t nmemb, size_t size)
{
	struct pya_heap *h;
	size_t n;

	if (__builtin_mul_overflow(nmemb, size, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	h = heap_get();
	if (h && n <= PYA_SMALL_MAX) {
		void *p = small_alloc(h, n);

		/* The kernel zeroes fresh pages only; a reused block keeps
		 * whatever was last written to it. */
		if (p) {
			memset(p, 0, pyai_class_size(h, pyai_class_of(h, n)));
			return p;
		}
	}
	return __libc_calloc(nmemb, size);
}

EXPORT void *calloc(size_t nmemb, size_t size)
{
	size_t n;

	if (likely(!__builtin_mul_overflow(nmemb, size, &n) &&
		   pyai_small_request(n))) {
		void *p = pyai_fast_calloc(pyai_last, n, PRE_SCALE, PRE_SHIFT);

		if (likely(p))
			return p;
	}
	return calloc_slow(nmemb, size);
}

static __attribute__((noinline)) void *realloc_slow(void *p, size_t n)
{
	struct pya_heap *h;
	size_t old;
	void *q;
	int c;

	if (!p)
		return malloc(n);
	h = heap_get();
	if (!ours(h, p))
		return __libc_realloc(p, n);	/* glibc's block stays glibc's */
	if (n == 0) {
		/* glibc: realloc(p, 0) frees p and returns NULL. */
		small_free(h, p, "realloc");
		return NULL;
	}
	c = pyai_block_class(h, p);
	if (c < 0)
		pyai_invalid_pointer("realloc", p);
	old = pyai_class_size(h, c);
	if (n <= PYA_SMALL_MAX && pyai_class_of(h, n) == (unsigned int)c) {
		pyai_realloc_check(h, p, c, "realloc");
		return p;			/* same class: in place */
	}
	q = malloc(n);
	if (!q)
		return NULL;			/* p untouched */
	memcpy(q, p, old < n ? old : n);
	small_free(h, p, "realloc");
	return q;
}

EXPORT void *realloc(void *p, size_t n)
{
	void *q = pyai_fast_realloc(pyai_last, p, n, PRE_SCALE, PRE_SHIFT,
				       "realloc");

	if (likely(q))
		return q;
	return realloc_slow(p, n);
}

EXPORT void *reallocarray(void *p, size_t nmemb, size_t size)
{
	size_t n;

	if (__builtin_mul_overflow(nmemb, size, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n);
}

/*
 * Blocks are aligned to the largest power of two dividing their size (the
 * kernel puts block k of a pool at k * size from a page boundary), so an
 * alignment up to 512 is met by rounding the size up to a multiple of it.
 * Larger alignments, and alignments that are not powers of two (which
 * glibc's memalign rounds up), go to glibc.
 */
EXPORT void *memalign(size_t align, size_t n)
{
	struct pya_heap *h = heap_get();

	if (h && align && !(align & (align - 1)) && align <= PYA_SMALL_MAX &&
	    n <= PYA_SMALL_MAX) {
		size_t size = n ? (n + align - 1) & ~(align - 1) : align;

		if (size <= PYA_SMALL_MAX) {
			void *p = small_alloc(h, size);

			if (p)
				return p;
		}
	}
	return __libc_memalign(align, n);
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	return memalign(align, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	int err = errno;
	void *p;

	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	p = memalign(align, n);
	if (!p)
		return ENOMEM;
	*out = p;
	errno = err;
	return 0;
}

EXPORT void *valloc(size_t n)
{
	return __libc_valloc(n);
}

EXPORT void *pvalloc(size_t n)
{
	return __libc_pvalloc(n);
}

EXPORT size_t malloc_usable_size(void *p)
{
	struct pya_heap *h = heap_get();
	int c;

	if (!p)
		return 0;
	if (ours(h, p)) {
		c = pyai_block_class(h, p);
		if (c < 0)
			pyai_invalid_pointer("malloc_usable_size", p);
		return pyai_class_size(h, c);
	}
	return glibc_usable_size ? glibc_usable_size(p) : 0;
}

/* malloc_trim(): the calling thread's cached blocks and the heap's spare
 * arena go back to the kernel, then glibc trims its own arenas. */
EXPORT int malloc_trim(size_t pad)
{
	struct pya_heap *h = heap_get();
	struct pyalloc_trim t = { 0 };
	int released = 0;

	if (h && !h->lost) {
		pyai_flush_thread(h);
		if (pyai_heap_ioctl(h, NULL, PYALLOC_IOC_TRIM, &t) == 0 &&
		    t.pages)
			released = 1;
	}
	if (glibc_trim && glibc_trim(pad))
		released = 1;
	return released;
}

/*
 * mallinfo2(): glibc's figures plus the heap's: its pool pages count as
 * the arena, blocks the program holds as allocated space, free blocks and
 * blocks cached in magazines as free space.
 */
EXPORT struct mallinfo2 mallinfo2(void)
{
	struct mallinfo2 mi = { 0 };
	struct pya_heap *h = heap_get();
	struct pya_stats st;
	uint64_t cached = 0;
	unsigned int c;

	if (glibc_mallinfo2)
		mi = glibc_mallinfo2();
	if (h && !h->lost && pya_heap_stats(h, &st) == 0) {
		for (c = 0; c < st.num_classes && c < PYA_MAX_CLASSES; c++)
			cached += st.classes[c].blocks_cached *
				  st.classes[c].block_size;
		mi.arena += st.pages * st.pool_size;
		mi.uordblks += st.bytes_in_use - cached;
		mi.fordblks += st.bytes_free + cached +
			       st.pools_empty * st.pool_size;
	}
	return mi;
}

static void say_stats(const char *why)
{
	struct pya_heap *h = heap_get();
	struct pya_stats st;

	if (!h || pya_heap_stats(h, &st) < 0) {
		pyai_say("pyalloc[%d]: %s: no heap", (int)getpid(), why);
		return;
	}
	pyai_say("pyalloc[%d]: %s: heap %llu on /dev/pyalloc (%s): "
		 "%llu small allocations, %llu frees, %llu bytes in %llu "
		 "blocks in use, %llu pages, %llu ioctls, %llu blocks lost",
		 (int)getpid(), why, (unsigned long long)st.heap_id,
		 st.shared ? "shared" : "private",
		 (unsigned long long)st.small_allocs,
		 (unsigned long long)st.small_frees,
		 (unsigned long long)st.bytes_in_use,
		 (unsigned long long)(st.kernel_blocks_allocated -
				      st.kernel_blocks_freed),
		 (unsigned long long)st.pages,
		 (unsigned long long)st.ioctls,
		 (unsigned long long)st.lost_blocks);
}

/* malloc_stats(): glibc's report, then a line for the heap (stderr). */
EXPORT void malloc_stats(void)
{
	if (glibc_stats)
		glibc_stats();
	say_stats("malloc_stats");
}

__attribute__((constructor)) static void pre_init(void)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;
	struct pya_heap *h;
	const char *v;

	glibc_usable_size = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	glibc_trim = (int (*)(size_t))dlsym(RTLD_NEXT, "malloc_trim");
	glibc_mallinfo2 = (struct mallinfo2 (*)(void))dlsym(RTLD_NEXT, "mallinfo2");
	glibc_stats = (void (*)(void))dlsym(RTLD_NEXT, "malloc_stats");

	v = getenv("PYALLOC_DISABLE");
	if (v && *v && strcmp(v, "0")) {
		pyai_global_init();
		if (pyai_verbose)
			pyai_say("pyalloc[%d]: PYALLOC_DISABLE set: glibc serves every request",
				 (int)getpid());
		return;
	}
	o.granularity = 1U << PRE_SHIFT;
	/* PYALLOC_LIMIT_MB: a lower memory limit for the heap (tests, or a
	 * program that should keep most of its memory swappable). */
	v = getenv("PYALLOC_LIMIT_MB");
	if (v && *v)
		o.mem_limit = strtoull(v, NULL, 10) << 20;
	pyai_env_decay(&o);
	h = pyai_heap_open(&o, PYAI_HEAP_CHECK_FD);
	if (!h) {
		if (pyai_verbose)
			pyai_say("pyalloc[%d]: no heap (%s): glibc serves every request",
				 (int)getpid(),
				 errno == ENODEV ? "/dev/pyalloc is absent: module not loaded?" :
				 errno == EOPNOTSUPP ? "the module has no private heaps" :
				 errno == EPROTO ? "the module speaks another ABI" :
				 errno == EACCES || errno == EPERM ? "/dev/pyalloc not accessible" :
				 "cannot open or map the heap");
		return;
	}
	h->is_default = true;
	if (pyai_verbose)
		pyai_say("pyalloc[%d]: small blocks from /dev/pyalloc, heap %llu "
			 "(private, descriptor %d, window %p..%p)", (int)getpid(),
			 (unsigned long long)h->info.heap_id, h->fd,
			 (void *)h->base, (void *)(h->base + h->window_size));
	__atomic_store_n(&pre_heap, h, __ATOMIC_RELEASE);
}

/*
 * exit(): runs after the program's atexit handlers and C++ static
 * destructors (glibc runs ELF destructors last), and before those of the
 * libraries initialised before us.  The main thread's cached blocks go
 * back; calls made later are served one block at a time.
 */
__attribute__((destructor)) static void pre_fini(void)
{
	if (!heap_get())
		return;
	pyai_retire_thread();
	if (pyai_verbose)
		say_stats("exit");
}
