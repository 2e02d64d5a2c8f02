/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libpyalloc internals, shared by the library's source files.
 *
 * Map of the library (one file per concern):
 *   dev.c       the only code that makes syscalls on /dev/pyalloc
 *   heap.c      heap open/close, the default heap, the table of open heaps
 *               and finding which heap a pointer belongs to
 *   magazine.c  per-thread, per-class magazines: fast paths, refill, drain,
 *               thread exit and fork()
 *   large.c     requests above 512 bytes: mmap, and a registry of them
 *   meta.c      the library's own metadata: pages from mmap, never malloc
 *   alloc.c     the public malloc-shaped API, dispatching small/large
 *   preload.c   libpyalloc-malloc.so only: malloc, free, ... for LD_PRELOAD
 *   stats.c     statistics and the sys._debugmallocstats()-style table
 *   fatal.c     the "invalid pointer" abort
 *
 * Internal symbols are prefixed pyai_ and have hidden visibility; the
 * shared library exports only pya_* (libpyalloc.map), and the static
 * archive is one relocatable object with its hidden symbols localized.
 */
#ifndef PYALLOC_INTERNAL_H
#define PYALLOC_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/pyalloc.h>

#include "pyalloc.h"

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

#define PYAI_PAGE_SHIFT	12
#define PYAI_PAGE_SIZE	(1UL << PYAI_PAGE_SHIFT)

/*
 * Magazine geometry.  A thread's magazine for class c starts at 2 * B(c)
 * blocks; an empty magazine is refilled with B(c) blocks by one
 * PYALLOC_IOC_ALLOC, a full one gives back all but B(c), its oldest, with
 * one PYALLOC_IOC_FREE.  After either, the magazine holds B(c), so a
 * workload whose live count per class does a random walk needs about B(c)^2
 * operations before the next ioctl: B >= 16 already meets the goal of one
 * ioctl per 256 operations; we use
 *
 *	B(c) = clamp(PYAI_MAG_BYTES / size(c), PYAI_MAG_BATCH_MIN, PYAI_MAG_BATCH_MAX)
 *
 * i.e. 64 blocks up to 256-byte classes, then down to 32 blocks of 512
 * bytes: a class that is used in mixed use only hoards at most 2 * 16 KiB
 * per thread and heap.  Two refinements (magazine.c, trip_done()):
 *  - streaks: a refill right after a refill, or a drain right after a
 *    drain, moves the whole magazine, and trips to the kernel (streaks, and
 *    any but a class's first) double the magazine, up to
 *
 *	M(c) = B(c) * 2^k, the largest with M(c) <= PYAI_MAG_STREAK_BYTES /
 *	       size(c) and M(c) <= PYALLOC_MAX_BATCH, but at least 2 * B(c)
 *
 *    (512 blocks, the kernel's batch limit, up to 256-byte classes and for
 *    the 512-byte one; 264 to 496 for the others, where B(c) is no power
 *    of two), so a wave of N allocations or frees costs about
 *    log2 + N / M(c) system calls instead of N / B(c), and waves of
 *    N <= M(c) - B(c) settle in the magazine and make none; a streak that
 *    meets the depot while other threads use the heap brings the magazine
 *    back to 2 * B(c);
 *  - the heap's depot, which holds up to 2 * B(c) more per class, is tried
 *    first.
 * So a thread holds at most M(c) blocks of class c (6.3 MiB if it filled
 * every class of a granularity-8 heap, 3.2 MiB at 16), and the depot
 * 2 * B(c).
 */
/*
 * Tcaches of exited threads a heap keeps for the threads that start next
 * (magazine.c): a server that replaces its threads then maps and faults in
 * no new tcache.
 */
#define PYAI_SPARE_TCACHES	8

#define PYAI_MAG_BATCH_MAX	64
#define PYAI_MAG_BATCH_MIN	32
#define PYAI_MAG_BYTES		16384
#define PYAI_MAG_STREAK_BYTES	262144

/* Counters of one thread's use of one heap (or of a heap's direct path). */
struct pyai_counters {
	uint64_t mag_hits;	/* allocations served by a magazine */
	uint64_t mag_misses;	/* allocations that refilled one */
	uint64_t free_hits;	/* frees absorbed by a magazine */
	uint64_t free_drains;	/* frees that drained a full one */
	uint64_t direct_allocs;	/* one-block ioctls: debug mode, ... */
	uint64_t direct_frees;
	uint64_t ioctl_alloc;
	uint64_t ioctl_free;
	uint64_t ioctl_other;
	uint64_t forks_dropped;
	uint64_t lost_blocks;	/* freed into a heap that is gone (lost) */
};

/*
 * Counters are written by one thread (their owner) and read by stats from
 * any thread: relaxed atomics keep that race defined and compile to plain
 * loads and stores; the increment is not an atomic RMW, which it need not be.
 */
#define PYAI_LOAD(x)	__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define PYAI_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define PYAI_BUMP(x, n)	PYAI_STORE(x, PYAI_LOAD(x) + (n))
/* For counters shared by threads (the heap's direct path). */
#define PYAI_ADD(x, n)	__atomic_fetch_add(&(x), (n), __ATOMIC_RELAXED)
/*
 * The fast paths' counters: on x86-64 one unlocked add to memory, a single
 * instruction whose store a racing reader sees whole (the owner is the
 * only writer, so no increment is lost); PYAI_BUMP's load and store are
 * three.
 */
#if defined(__x86_64__)
#define PYAI_INC(x)	__asm__("addq $1, %0" : "+m"(x))
#else
#define PYAI_INC(x)	PYAI_BUMP(x, 1)
#endif

/*
 * One magazine: 16 bytes, so that a class's entry is its index times 16,
 * which for a 16-byte granularity is the request size rounded down.
 *
 * A stack of blocks in a slot array of the tcache's own mapping: the
 * blocks are base[0] (oldest) .. top[-1] (newest), base being
 * tcache.mbase[] of the entry.  Pointers rather than a count, so that a
 * pop is one load of top[-1] and a push one store at top: the word below
 * each slot array is a NULL guard, which a pop of an empty magazine reads
 * (no block is NULL), and a push checks top against limit.  Entries of no
 * class point top and limit at the tcache's own guard (tcache.guard): empty
 * and full at once.  top is written by the owner only (and racily read by
 * statistics); limit changes with the streaks (magazine.c).
 */
struct pyai_mag {
	void **top;
	void **limit;		/* base + capacity: 2 * B(c) .. M(c) */
};

/*
 * Block starts, beside each magazine entry: an offset o in the page is
 * k * size for a block k that fits in the page iff o * divmagic (mod 2^64)
 * <= divbound.  With divmagic = M = floor((2^64 - 1) / size) + 1, o * M mod
 * 2^64 is below M exactly when size divides o (Lemire, Kaser and Kurz,
 * "Faster remainder by direct computation", 2019), and for o = k * size it
 * equals k * e, e = size * M - 2^64 < size.  So divbound = (blocks per
 * page - 1) * e tests "a multiple, and not past the last block" at once
 * (e = 0 for powers of two, whose every multiple below 4096 is a block).
 * Entries that are no class are zero: they pass, and their magazine's
 * capacity 0 turns the caller away.
 */
struct pyai_blockcheck {
	uint64_t divmagic;
	uint64_t divbound;
};

struct pyai_thread;

/*
 * Entries of struct pyai_tcache.mag: entry i is class i - 1, indexed by the
 * page-class byte itself (class + 1).  Entry 0 (a page that never served a
 * block) and the entries past the last class (a corrupted byte) are
 * magazines of capacity 0, which every fast path finds empty and full:
 * a byte the program may have overwritten sends the call to the slow
 * path's checks without a bounds test on the fast one.
 */
#define PYAI_MAG_ENTRIES	256

/*
 * One thread's magazines for one heap.  With the thread's pointer to its
 * last-used tcache (magazine.h) a malloc reads one magazine entry and the
 * line of the fields after check[]; a free also the entry's block check.
 */
struct pyai_tcache {
	/* First, so that an entry's address is the tcache's plus 16 * i. */
	struct pyai_mag mag[PYAI_MAG_ENTRIES];
	struct pyai_blockcheck check[PYAI_MAG_ENTRIES];
	char *base;			/* the heap's window */
	uint64_t window_size;		/* 0 once the heap is closed */
	const uint8_t *page_class;	/* the heap's table */
	unsigned int shift;		/* log2(granularity) */
	/* 16 / granularity: a request's entry offset is ((n - 1) * scale)
	 * rounded down to 16, one multiplication (magazine.h). */
	unsigned int scale;
	bool is_default;		/* the heap of pya_malloc() / malloc() */
	struct pya_heap *heap;		/* NULL once the heap is closed */
	struct pyai_counters ctr;
	struct pyai_thread *owner;
	struct pyai_tcache *next;	/* on heap->caches or ->spares, under
					 * pyai_lock */
	struct pyai_tcache **pprev;
	size_t map_len;			/* bytes of this tcache's mapping */
	/* Per magazine entry, the last trip to the kernel or depot:
	 * PYAI_TRIP_* (magazine.c, streaks). */
	uint8_t last_trip[PYAI_MAG_ENTRIES];
	/* Per entry, the bottom of its slot array (see struct pyai_mag). */
	void **mbase[PYAI_MAG_ENTRIES];
	/* What the entries of no class point at: a NULL word. */
	void *guard;
	/*
	 * The slot arrays of every class, laid out back to back.  They live
	 * in the same mapping as the tcache rather than in malloc()ed arrays:
	 * the library is also the process's malloc (preload.c), and a
	 * magazine whose slots came from malloc would recurse into itself.
	 */
	void *slots[];
};

/* magazine.h finds an entry's block check from its magazine entry. */
_Static_assert(offsetof(struct pyai_tcache, check) ==
	       offsetof(struct pyai_tcache, mag) +
	       PYAI_MAG_ENTRIES * sizeof(struct pyai_mag) &&
	       sizeof(struct pyai_mag) == sizeof(struct pyai_blockcheck),
	       "check[] must follow mag[] entry for entry");

/* last_trip[]: the kind of the last trip, and three flags (magazine.c). */
#define PYAI_TRIP_KIND		3
#define PYAI_TRIP_REFILL	1
#define PYAI_TRIP_DRAIN		2
#define PYAI_TRIP_STREAK	4	/* it followed one of its kind */
#define PYAI_TRIP_KERNEL	8	/* the kernel took or gave blocks */
#define PYAI_TRIP_DEPOT		16	/* the depot took or gave blocks */

/* Where the entries of no class point, top and limit (struct pyai_mag). */
#define PYAI_GUARD_TOP(tc)	(&(tc)->guard + 1)

/* Class @c's magazine in @tc. */
static inline struct pyai_mag *pyai_mag_of(struct pyai_tcache *tc,
					   unsigned int c)
{
	return &tc->mag[c + 1];
}

/* The blocks of @m, its count and capacity (slow paths, statistics). */
static inline void **pyai_mag_slots(const struct pyai_tcache *tc,
				    const struct pyai_mag *m)
{
	return tc->mbase[m - tc->mag];
}

static inline uint32_t pyai_mag_count(const struct pyai_tcache *tc,
				      const struct pyai_mag *m)
{
	return (uint32_t)(__atomic_load_n(&m->top, __ATOMIC_RELAXED) -
			  pyai_mag_slots(tc, m));
}

static inline void pyai_mag_set_count(struct pyai_tcache *tc,
				      struct pyai_mag *m, uint32_t n)
{
	__atomic_store_n(&m->top, pyai_mag_slots(tc, m) + n, __ATOMIC_RELAXED);
}

static inline uint32_t pyai_mag_cap(const struct pyai_tcache *tc,
				    const struct pyai_mag *m)
{
	return (uint32_t)(m->limit - pyai_mag_slots(tc, m));
}

static inline void pyai_mag_set_cap(struct pyai_tcache *tc,
				    struct pyai_mag *m, uint32_t cap)
{
	m->limit = pyai_mag_slots(tc, m) + cap;
}

/*
 * The depot of one class of one heap (magazine.c): up to PYAI_DEPOT_BATCHES
 * * B(c) blocks that a thread's full magazine, or an exiting thread, left
 * for another thread's empty magazine.
 */
#define PYAI_DEPOT_BATCHES	2

struct pyai_depot {
	int lock;		/* a spinlock: held for one memcpy of a batch */
	uint32_t count;		/* blocks held */
	void **slots;		/* PYAI_DEPOT_BATCHES * B(c), in depot_map */
};

/* Per-thread state, reached through one initial-exec TLS pointer. */
struct pyai_thread {
	struct pyai_tcache *cache[PYA_MAX_HEAPS];	/* by heap slot */
	struct pyai_thread *next;	/* on pyai_threads, under pyai_lock */
	struct pyai_thread **pprev;
};

struct pya_heap {
	char *base;			/* the mapped window */
	uint64_t window_size;
	/*
	 * Class of every pool page, indexed by offset >> 12: class + 1, or 0
	 * if the library never handed out a block from that page.  The kernel
	 * keeps pool metadata out of reach, so this is how pya_free() and
	 * pya_usable_size() learn a block's size.  A page holds one class as
	 * long as it has a live block (and a block in a magazine is live to
	 * the kernel), so the entry is written when a block is handed to the
	 * library and is right for every block the program may still own.
	 * One byte per page of window, MAP_SHARED|MAP_NORESERVE so it costs
	 * memory only where touched and stays coherent with a fork()ed child,
	 * which shares the heap.
	 */
	uint8_t *page_class;
	unsigned int shift;		/* log2(granularity) */
	unsigned int nclasses;
	unsigned int flags;		/* PYA_HEAP_* and PYAI_HEAP_* */
	int fd;
	int slot;			/* index in the heap table */
	bool is_default;
	bool private_mode;		/* PYALLOC_MODE_PRIVATE */
	/*
	 * 0, or the errno that made the heap unusable: EIO in a forked child
	 * whose copy the kernel could not make, EPERM when the process has no
	 * heap of its own in the file, EBADF when the program closed or
	 * replaced the descriptor.  A lost heap allocates nothing more; blocks
	 * freed into it are dropped untouched.  The window stays mapped: after
	 * EBADF the blocks the program holds keep their contents; after EIO
	 * or EPERM every access to them faults (SIGBUS), so nothing of the
	 * library may touch a block then (tcache window_size 0, see
	 * pyai_tcache_lost()).
	 */
	int lost;
	/* PYAI_HEAP_CHECK_FD: what the descriptor must still be. */
	uint64_t fd_dev, fd_ino, fd_rdev;
	uint32_t slots_off[PYA_MAX_CLASSES];	/* class c's slots in a tcache */
	uint32_t slots_total;
	uint32_t batch[PYA_MAX_CLASSES];	/* B(c) */
	uint32_t maxcap[PYA_MAX_CLASSES];	/* M(c), see above */
	uint32_t limit[PYA_MAX_CLASSES];	/* blocks per page * size */
	uint64_t divmagic[PYA_MAX_CLASSES];	/* divisibility test, see heap.c */
	struct pyalloc_info info;
	struct pyai_depot depot[PYA_MAX_CLASSES];
	void *depot_map;		/* the depots' slots (meta.c) */
	size_t depot_len;
	struct pyai_tcache *caches;	/* live thread caches, under pyai_lock */
	unsigned int ncaches;		/* how many; read racily (magazine.c) */
	/* Exited threads' tcaches, empty, kept for new threads (magazine.c):
	 * on ->next, at most PYAI_SPARE_TCACHES, under pyai_lock. */
	struct pyai_tcache *spares;
	unsigned int nspares;
	struct pyai_counters retired;	/* exited threads, direct path (atomic) */
};

/*
 * Internal heap flags, above the public PYA_HEAP_* bits.
 * PYAI_HEAP_CHECK_FD: the descriptor is moved to a high number and checked
 * (fstat) whenever an ioctl on it fails, because the program that owns the
 * process (the drop-in malloc's case) may close or dup2 over descriptors
 * it does not know about (pyai_heap_xioctl()).
 */
#define PYAI_HEAP_CHECK_FD	(1U << 16)

/* pyai_lock guards heap->caches and ->spares, the thread list and the heap
 * table; take it with pyai_lock_take(), which also repairs the state of a
 * child forked without the atfork handlers (see heap.c). */
extern pthread_mutex_t pyai_lock;
extern struct pyai_thread *pyai_threads;
extern struct pya_heap *pyai_default;		/* set once, atomically */
extern bool pyai_env_debug;
extern bool pyai_verbose;		/* PYALLOC_VERBOSE=1 */

/* dev.c: the device, replaced by a fake in the host unit tests. */
int pyai_dev_open(void);
int pyai_dev_ioctl(int fd, unsigned long request, void *arg);
void *pyai_dev_map(int fd, size_t len);
void pyai_dev_unmap(void *addr, size_t len);
void pyai_dev_close(int fd);
/* F_DUPFD_CLOEXEC to @lo or above and close @fd; @fd if that fails. */
int pyai_dev_move_fd(int fd, int lo);

/* meta.c: page-granular memory for the library's own structures. */
void *pyai_meta_alloc(size_t len);
void pyai_meta_free(void *p, size_t len);

/* heap.c */
void pyai_global_init(void);
void pyai_lock_take(void);
void pyai_repair_if_forked(void);
void pyai_lock_release(void);
void pyai_set_pid(void);
struct pya_heap *pyai_heap_open(const struct pya_heap_options *opts,
				unsigned int internal_flags);
int pyai_heap_usable(struct pya_heap *h);
int pyai_heap_xioctl(struct pya_heap *h, unsigned long request, void *arg);
void pyai_heap_lose(struct pya_heap *h, int err);
struct pya_heap *pyai_default_heap(void);
void pyai_env_decay(struct pya_heap_options *o);
struct pya_heap *pyai_heap_of(const void *p);
void pyai_heap_foreach(void (*fn)(struct pya_heap *h, void *arg), void *arg);
int pyai_heap_ioctl(struct pya_heap *h, struct pyai_counters *ctr,
		    unsigned long request, void *arg);

static inline unsigned int pyai_class_of(const struct pya_heap *h, size_t n)
{
	return (unsigned int)((n ? n - 1 : 0) >> h->shift);
}

static inline uint32_t pyai_class_size(const struct pya_heap *h,
				       unsigned int c)
{
	return (uint32_t)(c + 1) << h->shift;
}

static inline bool pyai_in_window(const struct pya_heap *h, const void *p)
{
	return (uintptr_t)p - (uintptr_t)h->base < h->window_size;
}

/*
 * Class of the block at @p in @h's window, or -1 when @p is not the start
 * of a block the library handed out.  Lemire's divisibility test
 * (n * M <= M - 1 with M = 2^64 / d + 1) avoids a division on the fast path.
 */
static inline int pyai_block_class(const struct pya_heap *h, const void *p)
{
	uint64_t off = (uintptr_t)p - (uintptr_t)h->base;
	int c = __atomic_load_n(&h->page_class[off >> PYAI_PAGE_SHIFT],
				__ATOMIC_RELAXED) - 1;
	uint32_t in_page = off & (PYAI_PAGE_SIZE - 1);

	/*
	 * The table is ordinary user-writable memory: a stray write may put
	 * any byte there, so the class is bounded before it indexes limit[],
	 * divmagic[] or a magazine.
	 */
	if (unlikely(c < 0 || (unsigned int)c >= h->nclasses))
		return -1;
	if (unlikely(in_page >= h->limit[c] ||
		     (uint64_t)in_page * h->divmagic[c] > h->divmagic[c] - 1))
		return -1;
	return c;
}

/* Record that the block at window offset @off belongs to class @c. */
static inline void pyai_note_class(struct pya_heap *h, uint64_t off,
				   unsigned int c)
{
	uint8_t *e = &h->page_class[off >> PYAI_PAGE_SHIFT];

	/* Compare first: most blocks share a page, keep the line clean. */
	if (__atomic_load_n(e, __ATOMIC_RELAXED) != c + 1)
		__atomic_store_n(e, (uint8_t)(c + 1), __ATOMIC_RELAXED);
}

/* magazine.c (its fast paths: magazine.h) */
void *pyai_small_alloc(struct pya_heap *h, unsigned int c);
void pyai_small_free(struct pya_heap *h, void *p, unsigned int c,
		     const char *fn);
void pyai_realloc_check(struct pya_heap *h, void *p, unsigned int c,
			const char *fn);
int pyai_flush_thread(struct pya_heap *h);
void pyai_retire_thread(void);
void pyai_after_raw_fork(void);	/* under pyai_lock */
void pyai_heap_detach_caches(struct pya_heap *h);	/* under pyai_lock */
void pyai_tcache_lost(struct pya_heap *h);
int pyai_depot_init(struct pya_heap *h);
void pyai_depot_destroy(struct pya_heap *h);
unsigned int pyai_depot_flush(struct pya_heap *h);
void pyai_magazine_init(void);
void pyai_fork_prepare(void);
void pyai_fork_parent(void);
void pyai_fork_child(void);
void pyai_sum_counters(struct pya_heap *h, struct pyai_counters *sum,
		       uint64_t cached[PYA_MAX_CLASSES]);

/* large.c */
void *pyai_large_alloc(size_t n, size_t align);
void *pyai_large_realloc(void *p, size_t n, const char *fn);
bool pyai_large_free(void *p);
size_t pyai_large_size(const void *p);
void pyai_large_fork_prepare(void);
void pyai_large_fork_parent(void);
void pyai_large_fork_child(void);
void pyai_large_stats(struct pya_stats *st);

/* fatal.c */
__attribute__((noreturn, cold))
void pyai_invalid_pointer(const char *fn, const void *p);
__attribute__((noreturn, cold, format(printf, 1, 2)))
void pyai_fatal(const char *fmt, ...);
/* One line on stderr, written with write(2): no stdio, no malloc. */
__attribute__((cold, format(printf, 1, 2)))
void pyai_say(const char *fmt, ...);

#endif /* PYALLOC_INTERNAL_H */
