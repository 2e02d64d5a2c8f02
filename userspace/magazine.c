// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Per-thread, per-class magazines (Bonwick & Adams, "Magazines and Vmem",
 * USENIX 2001), in front of the kernel instead of a slab layer.
 *
 * Each thread has, for each heap it uses, one magazine per size class: a
 * stack of free blocks.  pya_malloc() pops, pya_free() pushes; neither takes
 * a lock or makes a syscall while the magazine is neither empty nor full
 * (magazine.h: inlined into every entry point).  An empty magazine is
 * refilled with B(c) blocks from the heap's depot or by one
 * PYALLOC_IOC_ALLOC; a full one leaves all but B(c) of its blocks, the
 * oldest, in the depot or returns them with one PYALLOC_IOC_FREE (the
 * newest stay: they are the ones still in the CPU cache); a streak moves
 * the whole magazine, and trips to the kernel grow it, up to M(c).  B(c)
 * and M(c) are in internal.h.
 *
 * Blocks of one class in one heap are interchangeable, so a block freed by
 * a thread other than the one that allocated it simply joins the freeing
 * thread's magazine.  A thread's magazines go back when the thread exits
 * (pthread key destructor: to the depot while other threads use the heap,
 * see thread_exit()), when the heap is closed, or on pya_heap_flush().
 * The exited thread's emptied tcache is kept for the next thread that
 * starts (the heap's spares, tcache_new()).
 *
 * Locking: the fast paths touch only the calling thread's own structures.
 * pyai_lock guards the lists that let other threads find a thread's
 * magazines (heap close, stats, thread exit, fork); a magazine's top is
 * written with relaxed atomics (or one instruction) so that stats may read
 * it racily.
 *
 * fork(), private heaps (the default): the kernel gives the child its own
 * copy of the heap at the instant of fork, so the blocks in the forking
 * thread's magazines are the child's own blocks: the child keeps them and
 * goes on using them.  The other threads do not exist in the child; the
 * atfork child handler returns their cached blocks to the child's heap.
 * Without the handlers (raw fork system call, _Fork()) nothing is wrong
 * either: the forking thread's magazines are still the child's own, and the
 * other threads' blocks merely stay cached, unused (pyai_after_raw_fork()).
 *
 * fork(), shared heaps (PYA_HEAP_SHARED): the child shares the heap with
 * the parent, and the blocks in the magazines it inherited are still owned
 * by the parent's magazines.  The child therefore drops (forgets, never
 * frees) every inherited magazine content, and every other thread's cache,
 * in the atfork child handler.  Those blocks stay allocated for the child's
 * lifetime (they are the parent's); nothing is returned to the kernel twice.
 *
 * None of these structures comes from malloc() (meta.c): the library is
 * also a process's malloc, and must never call itself.
 */
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "magazine.h"

#define TLS_IE PYAI_TLS_IE

/*
 * The tcache of no heap: every magazine empty and of capacity 0, no window.
 * pyai_last points here until the thread first uses a heap, and again once
 * it exits, so the fast paths need no NULL test.  Its shift keeps the
 * largest small request's index inside mag[].
 */
struct pyai_tcache pyai_no_tcache = {
	.mag = { [0 ... PYAI_MAG_ENTRIES - 1] = {
		.top = PYAI_GUARD_TOP(&pyai_no_tcache),
		.limit = PYAI_GUARD_TOP(&pyai_no_tcache) } },
	.mbase = { [0 ... PYAI_MAG_ENTRIES - 1] =
		   PYAI_GUARD_TOP(&pyai_no_tcache) },
	.shift = 3,
	.scale = 2,
};
__thread struct pyai_tcache *pyai_last TLS_IE = &pyai_no_tcache;
__thread struct pyai_tcache *pyai_last_default TLS_IE = &pyai_no_tcache;

/* The thread uses @tc now: the fast paths' way in (magazine.h). */
static inline void tcache_use(struct pyai_tcache *tc)
{
	pyai_last = tc;
	if (tc->is_default)
		pyai_last_default = tc;
}

static __thread struct pyai_thread *pyai_self TLS_IE;
/* Set once the thread's destructor ran: later calls go straight to the
 * kernel so nothing is cached that would never be flushed. */
static __thread bool pyai_exiting TLS_IE;
/*
 * Set while this thread builds its caches, or holds pyai_lock for fork():
 * an allocation made meanwhile by code we call (pthread_setspecific() may
 * allocate, and so may other libraries' atfork handlers that run after
 * ours) goes straight to the kernel instead of recursing or deadlocking.
 */
static __thread bool pyai_busy TLS_IE;
static pthread_key_t pyai_key;

/*
 * Quiescing refills and drains for fork().  A refill or drain is one ioctl
 * plus the update of the magazine that it fills or empties; if a fork fell
 * between the two, the child's copy of that magazine would name blocks the
 * kernel (and so the child's copy of the heap) no longer agrees with, and
 * the child handler, which gives the other threads' cached blocks back,
 * would free them twice.  So every refill and drain is a "kernel op"
 * (kop_enter/kop_exit: one atomic add each, on the slow path only), and
 * the prepare handler raises pyai_forking and waits until none is in
 * flight.  The wait is bounded: after a fork without handlers a vanished
 * thread may have left the count raised for good; the child handler then
 * drops those threads' blocks instead of returning them (a leak in the
 * child, never a double free).
 */
static int pyai_kops_active;
static int pyai_forking;
static bool pyai_fork_drain_ok;

static inline void kop_enter(void)
{
	for (;;) {
		__atomic_fetch_add(&pyai_kops_active, 1, __ATOMIC_SEQ_CST);
		if (likely(!__atomic_load_n(&pyai_forking, __ATOMIC_SEQ_CST)))
			return;
		__atomic_fetch_sub(&pyai_kops_active, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&pyai_forking, __ATOMIC_SEQ_CST))
			sched_yield();
	}
}

static inline void kop_exit(void)
{
	__atomic_fetch_sub(&pyai_kops_active, 1, __ATOMIC_RELEASE);
}
struct pyai_thread *pyai_threads;

static void thread_exit(void *arg);

void pyai_magazine_init(void)
{
	if (pthread_key_create(&pyai_key, thread_exit))
		pyai_fatal("pyalloc: cannot create a thread key");
}

static inline struct pyai_tcache *tcache_of(const struct pya_heap *h)
{
	struct pyai_thread *t = pyai_self;
	struct pyai_tcache *tc;

	if (unlikely(!t))
		return NULL;
	tc = t->cache[h->slot];
	if (unlikely(!tc || PYAI_LOAD(tc->heap) != h))
		return NULL;
	tcache_use(tc);
	return tc;
}

/* --- talking to the kernel ------------------------------------------- */

/*
 * Count into the thread's own counters (plain relaxed stores: only the
 * owner writes them) or, for one-block operations without a cache, into
 * the heap's, which threads share (atomic add).
 */
#define COUNT(h, tc, name)						\
	do {								\
		if (tc)							\
			PYAI_BUMP((tc)->ctr.name, 1);			\
		else							\
			PYAI_ADD((h)->retired.name, 1);			\
	} while (0)

/*
 * The @n offsets of an ALLOC batch of class @c to block addresses in @out,
 * reversed (lowest address last), noting each page's class for free().
 * The kernel carves a batch pool by pool, so a block mostly shares its page
 * with the one before: the page's bounds and class are checked once a run
 * of one page, not once a block.  A block in the page of the one before is
 * inside the window because that page is (the window is whole pages).
 * base and the limit live in locals: the stores to @out (void *) and to the
 * class bytes (uint8_t) would otherwise make the compiler reload them from
 * *h for every block.  Under callgrind this took the loop from 18 to 11
 * instructions a block on the JSON program (bench/py/jsonrt.py).
 */
static void offsets_to_blocks(struct pya_heap *h, unsigned int c,
			      const uint64_t *offs, uint32_t n, void **out)
{
	const uint64_t *src = offs + n;
	char *const base = h->base;
	const uint64_t limit = h->window_size;
	uint64_t page = UINT64_MAX;
	uint32_t i;

	for (i = 0; i < n; i++) {
		uint64_t off = *--src;

		if (unlikely(off >> PYAI_PAGE_SHIFT != page)) {
			if ((off | (PYAI_PAGE_SIZE - 1)) >= limit)
				pyai_fatal("pyalloc: kernel offset %#llx "
					   "outside the window",
					   (unsigned long long)off);
			page = off >> PYAI_PAGE_SHIFT;
			pyai_note_class(h, off, c);
		}
		out[i] = base + off;
	}
}

/*
 * Allocate up to @want blocks of class @c into @out (lowest address last,
 * so the magazine pops in address order).  All or nothing per ioctl; at the
 * memory limit the batch is halved down to one block before giving up.
 */
static int kernel_alloc(struct pya_heap *h, struct pyai_tcache *tc,
			unsigned int c, uint32_t want, void **out)
{
	uint64_t offs[PYALLOC_MAX_BATCH];
	struct pyalloc_alloc a = {
		.size = pyai_class_size(h, c),
		.offsets = (uintptr_t)offs,
	};

	if (pyai_heap_usable(h) < 0)
		return -1;
	for (a.count = want;; a.count /= 2) {
		COUNT(h, tc, ioctl_alloc);
		if (pyai_heap_xioctl(h, PYALLOC_IOC_ALLOC, &a) == 0)
			break;
		if (errno == EIO || errno == EPERM || errno == EBADF) {
			pyai_heap_lose(h, errno);
			return -1;
		}
		if (errno != ENOMEM || a.count == 1)
			return -1;
	}
	if (a.block_size != pyai_class_size(h, c))
		pyai_fatal("pyalloc: kernel gave %u-byte blocks for class %u",
			   a.block_size, c);
	offsets_to_blocks(h, c, offs, a.count, out);
	return (int)a.count;
}

/*
 * The window offsets of @n blocks, for FREE.  Four at a time, in two
 * vectors of two (GCC's vector extension: SSE2 on x86-64, whatever the
 * target has elsewhere): a drain converts up to PYALLOC_MAX_BATCH blocks,
 * and GCC does not vectorise the plain loop at -O2.  5 instructions a
 * block become 2.5.
 */
typedef uint64_t pyai_u64x2 __attribute__((vector_size(16)));

static void blocks_to_offsets(uint64_t *offs, void *const *blocks, uint32_t n,
			      uintptr_t base)
{
	void *const *src = blocks, *const *four = blocks + (n & ~3u);
	uint64_t *dst = offs;

	/* Two pointers a vector only where a pointer is 8 bytes. */
	if (sizeof(void *) != sizeof(uint64_t))
		four = blocks;
	for (; src < four; src += 4, dst += 4) {
		pyai_u64x2 lo, hi;

		memcpy(&lo, src, sizeof(lo));
		memcpy(&hi, src + 2, sizeof(hi));
		lo -= (uint64_t)base;
		hi -= (uint64_t)base;
		memcpy(dst, &lo, sizeof(lo));
		memcpy(dst + 2, &hi, sizeof(hi));
	}
	for (; src < blocks + n; src++, dst++)
		*dst = (uintptr_t)*src - base;
}

/*
 * Free @n blocks; a rejection means the program corrupted the heap.  Into a
 * lost heap (struct pya_heap.lost) nothing can be returned: the blocks are
 * dropped and counted.
 */
static void kernel_free(struct pya_heap *h, struct pyai_tcache *tc,
			void *const *blocks, uint32_t n, const char *fn)
{
	uint64_t offs[PYALLOC_MAX_BATCH];
	struct pyalloc_free f = { .count = n, .offsets = (uintptr_t)offs };
	int err = errno;

	if (pyai_heap_usable(h) < 0)
		goto lost;
	blocks_to_offsets(offs, blocks, n, (uintptr_t)h->base);
	COUNT(h, tc, ioctl_free);
	if (pyai_heap_xioctl(h, PYALLOC_IOC_FREE, &f) == 0) {
		errno = err;
		return;
	}
	if (errno == EIO || errno == EPERM || errno == EBADF) {
		pyai_heap_lose(h, errno);
		goto lost;
	}
	if (errno == EINVAL && f.error_index < n) {
		if (fn)
			pyai_fatal("%s(): double free or invalid pointer %p",
				   fn, blocks[f.error_index]);
		pyai_fatal("pyalloc: double free or invalid pointer %p found "
			   "while returning cached blocks to the kernel "
			   "(run with PYALLOC_DEBUG=1 to catch it at the call site)",
			   blocks[f.error_index]);
	}
	pyai_fatal("pyalloc: PYALLOC_IOC_FREE failed: error %d", errno);
lost:
	if (tc)
		PYAI_BUMP(tc->ctr.lost_blocks, n);
	else
		PYAI_ADD(h->retired.lost_blocks, n);
	errno = err;
}

/* --- the depot ----------------------------------------------------------- */

/*
 * The depot layer of Bonwick and Adams: per heap and class, a few batches
 * of blocks that one thread's overflowing magazine (or an exiting thread)
 * leaves and another thread's empty magazine takes.  A producer thread
 * that allocates what a consumer thread frees then gets its blocks back
 * without the two system calls of a drain and a refill.  What does not
 * fit in the depot, and a refill that finds it empty, go to the kernel as
 * before; it never holds more than PYAI_DEPOT_BATCHES * B(c) blocks a
 * class, and pya_heap_trim(), pya_heap_flush()... give them back
 * (pyai_depot_flush()).
 *
 * Puts and gets happen inside a refill or a drain, between kop_enter() and
 * kop_exit(), which fork() waits for (pyai_fork_prepare()); a search for a
 * double free does not, so the child resets every lock, and a child forked
 * without the handlers repairs them when it finds one stuck.
 */
static void depot_lock(struct pyai_depot *d)
{
	unsigned int spins = 0;

	while (__atomic_exchange_n(&d->lock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&d->lock, __ATOMIC_RELAXED))
			if (++spins % 64 == 0) {
				sched_yield();
				/* The holder may not exist: a child forked
				 * without handlers (heap.c). */
				if (spins % 4096 == 0)
					pyai_repair_if_forked();
			}
}

static void depot_unlock(struct pyai_depot *d)
{
	__atomic_store_n(&d->lock, 0, __ATOMIC_RELEASE);
}

int pyai_depot_init(struct pya_heap *h)
{
	size_t total = 0, off = 0;
	unsigned int c;

	if (h->flags & PYA_HEAP_DEBUG)
		return 0;	/* no magazines, no depot */
	for (c = 0; c < h->nclasses; c++)
		total += (size_t)PYAI_DEPOT_BATCHES * h->batch[c];
	h->depot_len = total * sizeof(void *);
	h->depot_map = pyai_meta_alloc(h->depot_len);
	if (!h->depot_map)
		return -1;
	for (c = 0; c < h->nclasses; c++) {
		h->depot[c].slots = (void **)h->depot_map + off;
		off += (size_t)PYAI_DEPOT_BATCHES * h->batch[c];
	}
	return 0;
}

void pyai_depot_destroy(struct pya_heap *h)
{
	if (h->depot_map)
		pyai_meta_free(h->depot_map, h->depot_len);
	h->depot_map = NULL;
}

static uint32_t depot_cap(const struct pya_heap *h, unsigned int c)
{
	return PYAI_DEPOT_BATCHES * h->batch[c];
}

/* Leave as many of the @n @blocks in the depot as it has room for; blocks
 * it took (the first ones). */
static uint32_t depot_put(struct pya_heap *h, unsigned int c,
			  void *const *blocks, uint32_t n)
{
	struct pyai_depot *d = &h->depot[c];
	uint32_t k;

	if (!h->depot_map || !n || __atomic_load_n(&h->lost, __ATOMIC_RELAXED) ||
	    __atomic_load_n(&d->count, __ATOMIC_RELAXED) == depot_cap(h, c))
		return 0;
	depot_lock(d);
	k = depot_cap(h, c) - d->count;
	if (k > n)
		k = n;
	memcpy(d->slots + d->count, blocks, (size_t)k * sizeof(void *));
	__atomic_store_n(&d->count, d->count + k, __ATOMIC_RELAXED);
	depot_unlock(d);
	return k;
}

/* Take up to @want blocks of class @c into @out. */
static uint32_t depot_get(struct pya_heap *h, unsigned int c, void **out,
			  uint32_t want)
{
	struct pyai_depot *d = &h->depot[c];
	uint32_t k;

	if (!h->depot_map || !__atomic_load_n(&d->count, __ATOMIC_RELAXED) ||
	    __atomic_load_n(&h->lost, __ATOMIC_RELAXED))
		return 0;
	depot_lock(d);
	k = d->count < want ? d->count : want;
	__atomic_store_n(&d->count, d->count - k, __ATOMIC_RELAXED);
	memcpy(out, d->slots + d->count, (size_t)k * sizeof(void *));
	depot_unlock(d);
	return k;
}

/* Is @p in the depot of class @c?  (A double free, see pyai_small_free().) */
static bool depot_holds(struct pya_heap *h, unsigned int c, const void *p)
{
	struct pyai_depot *d = &h->depot[c];
	size_t i, n;
	bool found = false;

	if (!h->depot_map)
		return false;
	depot_lock(d);
	n = d->count;
	for (i = 0; i < n && !found; i++)
		found = d->slots[i] == p;
	depot_unlock(d);
	return found;
}

/* Give every batch in @h's depots back to the kernel; blocks returned. */
unsigned int pyai_depot_flush(struct pya_heap *h)
{
	void *batch[PYAI_MAG_BATCH_MAX];
	unsigned int c, n = 0;
	uint32_t got;

	for (c = 0; c < h->nclasses; c++) {
		kop_enter();
		while ((got = depot_get(h, c, batch, PYAI_MAG_BATCH_MAX))) {
			kernel_free(h, NULL, batch, got, NULL);
			n += got;
		}
		kop_exit();
	}
	return n;
}

/*
 * A forked child's depots, where no other thread exists: unlocked; their
 * blocks kept in a private heap (the child's own copies), forgotten in a
 * shared heap (the parent's) or a lost one (every access would fault),
 * and counted as the magazines' are.
 */
static void depot_fork_child(struct pya_heap *h, void *arg)
{
	bool keep = h->private_mode && !h->lost;
	unsigned int c;
	uint64_t n;

	(void)arg;
	for (c = 0; c < h->nclasses; c++) {
		h->depot[c].lock = 0;
		if (keep)
			continue;
		n = h->depot[c].count;
		if (h->private_mode)
			h->retired.lost_blocks += n;
		else
			h->retired.forks_dropped += n;
		h->depot[c].count = 0;
	}
}

/* After a fork without handlers: a depot's lock may be held by a thread
 * that does not exist here; its batches are consistent or leaked. */
static void depot_unlock_all(struct pya_heap *h, void *arg)
{
	unsigned int c;

	(void)arg;
	for (c = 0; c < h->nclasses; c++)
		h->depot[c].lock = 0;
}

/* --- magazines -------------------------------------------------------- */

/*
 * Take the @n oldest blocks out of @m: into the depot when @to_depot, as
 * far as it has room, the rest back to the kernel.  Blocks the depot took.
 */
static uint32_t mag_drain(struct pya_heap *h, struct pyai_tcache *tc,
			  struct pyai_mag *m, uint32_t n, bool to_depot)
{
	uint32_t count = pyai_mag_count(tc, m), kept;
	unsigned int c = (unsigned int)(m - tc->mag) - 1;
	void **slots = pyai_mag_slots(tc, m);

	if (n > count)
		n = count;
	if (!n)
		return 0;
	kop_enter();
	kept = to_depot ? depot_put(h, c, slots, n) : 0;
	if (kept < n)
		kernel_free(h, tc, slots + kept, n - kept, NULL);
	memmove(slots, slots + n, (count - n) * sizeof(void *));
	/* A drain that found the heap lost left the magazine forgotten
	 * (pyai_tcache_lost()): it stays empty. */
	pyai_mag_set_count(tc, m, tc->window_size ? count - n : 0);
	kop_exit();
	return kept;
}

/* Empty every magazine of @tc: into the depot as far as it has room when
 * @to_depot, else (and the rest) back to the kernel.  Blocks drained. */
static unsigned int tcache_drain(struct pyai_tcache *tc, bool to_depot)
{
	struct pya_heap *h = tc->heap;
	unsigned int c, n = 0;

	for (c = 0; c < h->nclasses; c++) {
		struct pyai_mag *m = pyai_mag_of(tc, c);
		uint32_t count = pyai_mag_count(tc, m);

		n += count;
		mag_drain(h, tc, m, count, to_depot);
	}
	return n;
}

static unsigned int tcache_drain_all(struct pyai_tcache *tc)
{
	return tcache_drain(tc, false);
}

/*
 * Forget every block in @tc's magazines, never returning one (a lost heap
 * whose blocks fault, a shared heap's blocks a fork child inherited from
 * its parent's magazines).  Blocks forgotten, for the caller's counter.
 */
static uint64_t tcache_forget(struct pyai_tcache *tc)
{
	unsigned int c;
	uint64_t n = 0;

	for (c = 0; c < tc->heap->nclasses; c++) {
		struct pyai_mag *m = pyai_mag_of(tc, c);

		n += pyai_mag_count(tc, m);
		pyai_mag_set_count(tc, m, 0);
	}
	return n;
}

/*
 * Set up @tc, of @map_len bytes, for @h and thread @t: every magazine empty
 * at 2 * B(c).  Only the header is written: the slot arrays' guard words
 * are zero from the mapping and never written, and slots are written
 * before they are read, so a spare tcache's untouched pages stay so.
 */
static void tcache_init(struct pyai_tcache *tc, size_t map_len,
			struct pya_heap *h, struct pyai_thread *t)
{
	unsigned int c;

	memset(tc, 0, sizeof(*tc));
	tc->map_len = map_len;
	tc->base = h->base;
	/* A lost heap's blocks may fault: no fast free touches them. */
	tc->window_size = __atomic_load_n(&h->lost, __ATOMIC_RELAXED) ?
			  0 : h->window_size;
	tc->page_class = h->page_class;
	tc->shift = h->shift;
	tc->scale = 16 >> h->shift;
	/* Entries of no class: empty and full at once (struct pyai_mag). */
	for (c = 0; c < PYAI_MAG_ENTRIES; c++) {
		tc->mbase[c] = PYAI_GUARD_TOP(tc);
		tc->mag[c].top = PYAI_GUARD_TOP(tc);
		tc->mag[c].limit = PYAI_GUARD_TOP(tc);
	}
	tc->is_default = h->is_default;
	tc->heap = h;
	tc->owner = t;
	/* Block checks past the last class stay zero (internal.h). */
	for (c = 0; c < h->nclasses; c++) {
		struct pyai_mag *m = pyai_mag_of(tc, c);

		struct pyai_blockcheck *bc = &tc->check[c + 1];
		uint32_t size = pyai_class_size(h, c);

		tc->mbase[c + 1] = tc->slots + h->slots_off[c];
		m->top = tc->mbase[c + 1];
		pyai_mag_set_cap(tc, m, 2 * h->batch[c]);
		bc->divmagic = h->divmagic[c];
		bc->divbound = (uint64_t)(PYAI_PAGE_SIZE / size - 1) *
			       (size * h->divmagic[c]);
	}
}

/*
 * A tcache for @h and thread @t: a spare one an exited thread left (its
 * pages are mapped and faulted in already, see thread_exit()), else a new
 * one, with its slot arrays, in one mapping of its own.
 */
static struct pyai_tcache *tcache_new(struct pya_heap *h,
				      struct pyai_thread *t)
{
	size_t len = sizeof(struct pyai_tcache) +
		     (size_t)h->slots_total * sizeof(void *);
	struct pyai_tcache *tc;

	pyai_lock_take();
	tc = h->spares;
	if (tc) {
		h->spares = tc->next;
		h->nspares--;
	}
	pyai_lock_release();
	if (!tc) {
		tc = pyai_meta_alloc(len);
		if (!tc)
			return NULL;
	}
	tcache_init(tc, len, h, t);
	return tc;
}

static void tcache_free(struct pyai_tcache *tc)
{
	if (pyai_last == tc)
		pyai_last = &pyai_no_tcache;
	if (pyai_last_default == tc)
		pyai_last_default = &pyai_no_tcache;
	pyai_meta_free(tc, tc->map_len);
}

static void tcache_unlink(struct pyai_tcache *tc)
{
	struct pya_heap *h = tc->heap;

	PYAI_STORE(h->ncaches, PYAI_LOAD(h->ncaches) - 1);
	*tc->pprev = tc->next;
	if (tc->next)
		tc->next->pprev = tc->pprev;
	tc->next = NULL;
	tc->pprev = NULL;
}

/* Fold a departing thread's counters into its heap's. */
static void tcache_retire(struct pyai_tcache *tc)
{
	struct pyai_counters *r = &tc->heap->retired;
	const uint64_t *src = (const uint64_t *)&tc->ctr;
	uint64_t *dst = (uint64_t *)r;
	size_t i;

	for (i = 0; i < sizeof(*r) / sizeof(uint64_t); i++)
		PYAI_ADD(dst[i], PYAI_LOAD(src[i]));
}

/* The calling thread's cache for @h, created on first use; NULL when the
 * thread is exiting or memory is short (callers then go direct). */
static struct pyai_tcache *tcache_get(struct pya_heap *h)
{
	struct pyai_thread *t = pyai_self;
	struct pyai_tcache *tc = NULL;

	if (pyai_exiting || pyai_busy)
		return NULL;
	if (t) {
		tc = t->cache[h->slot];
		if (tc && PYAI_LOAD(tc->heap) == h) {
			tcache_use(tc);
			return tc;
		}
	}
	pyai_busy = true;
	if (!t) {
		t = pyai_meta_alloc(sizeof(*t));
		if (!t)
			goto out;
		pyai_lock_take();
		t->next = pyai_threads;
		t->pprev = &pyai_threads;
		if (pyai_threads)
			pyai_threads->pprev = &t->next;
		pyai_threads = t;
		pyai_lock_release();
		pyai_self = t;
		/* Any non-NULL value makes the destructor run at exit. */
		pthread_setspecific(pyai_key, t);
	}
	tc = t->cache[h->slot];
	if (tc) {
		/* Left over from a closed heap that had this slot; heap close
		 * already returned its blocks and unlinked it. */
		tcache_free(tc);
		t->cache[h->slot] = NULL;
	}
	tc = tcache_new(h, t);
	if (!tc)
		goto out;
	pyai_lock_take();
	tc->next = h->caches;
	tc->pprev = &h->caches;
	if (h->caches)
		h->caches->pprev = &tc->next;
	h->caches = tc;
	PYAI_STORE(h->ncaches, PYAI_LOAD(h->ncaches) + 1);
	pyai_lock_release();
	t->cache[h->slot] = tc;
	tcache_use(tc);
out:
	pyai_busy = false;
	return tc;
}

/* --- allocation ------------------------------------------------------- */

/* Hand @p out: clear the double-free key (see pyai_fast_free()). */
static inline void *handout(void *p)
{
	*(uint64_t *)p = 0;
	return p;
}

static void *direct_alloc(struct pya_heap *h, unsigned int c)
{
	void *p;

	if (kernel_alloc(h, NULL, c, 1, &p) < 0)
		return NULL;
	PYAI_ADD(h->retired.direct_allocs, 1);
	return handout(p);
}

/*
 * Streaks and capacity.  A refill right after a refill (the program is
 * growing this class) fills the whole magazine, and a drain right after a
 * drain empties it; a trip the other way refills B(c) blocks, or drains all
 * but B(c).  A magazine starts at 2 * B(c) blocks, and after every trip its
 * capacity follows where the blocks came from or went to:
 *  - the kernel, in a streak or in a trip that followed one of the other
 *    kind (not the class's first trip): the magazine was too small for
 *    what the program does with this class, and doubles, up to M(c)
 *    (internal.h).  A wave of N allocations then N frees, N <= M(c) -
 *    B(c), thus settles after a few trips into a magazine that holds the
 *    whole wave (a longer one overflows it by the B(c) blocks a drain the
 *    other way keeps), and repeating the wave makes no system call at
 *    all, as with glibc's free lists; a longer wave costs about N / M(c)
 *    system calls each way, not N / B(c), as the issue of batch sizes
 *    that adapt up to the kernel's limit asks;
 *  - the depot, wholly or in part, in a streak, while other threads use
 *    the heap: back to 2 * B(c).  A producer and a consumer thread then
 *    keep exchanging batches of the depot's size through it instead of
 *    outgrowing it.  A thread alone with its heap only meets its own
 *    blocks in the depot, and keeps its capacity;
 *  - otherwise: unchanged.
 * So a thread holds at most M(c) blocks of class c, and more than 2 * B(c)
 * only in a class whose waves outgrew one refill.  The capacity changes
 * only here, by the owner, while the magazine holds at most the new
 * capacity: a streak that met the depot holds at most the depot's 2 * B(c)
 * (refill) or nothing (drain).
 */
_Static_assert(PYAI_DEPOT_BATCHES <= 2,
	       "a refill from the depot must fit a magazine of 2 * B(c)");

static void trip_done(struct pya_heap *h, struct pyai_tcache *tc,
		      unsigned int c, struct pyai_mag *m, uint8_t trip)
{
	uint32_t cap = pyai_mag_cap(tc, m);
	uint8_t last = tc->last_trip[c + 1];

	if ((trip & PYAI_TRIP_STREAK) && (trip & PYAI_TRIP_DEPOT) &&
	    PYAI_LOAD(h->ncaches) > 1)
		cap = 2 * h->batch[c];
	else if ((trip & PYAI_TRIP_KERNEL) &&
		 ((trip & PYAI_TRIP_STREAK) || last))
		cap = 2 * cap < h->maxcap[c] ? 2 * cap : h->maxcap[c];
	pyai_mag_set_cap(tc, m, cap);
	tc->last_trip[c + 1] = trip;
}

/* Fill the empty magazine @m; the newest block is left out of its count
 * for the caller.  Blocks, or -1 with errno. */
static int refill(struct pya_heap *h, struct pyai_tcache *tc, unsigned int c,
		  struct pyai_mag *m)
{
	uint8_t trip = PYAI_TRIP_REFILL;
	void **slots = pyai_mag_slots(tc, m);
	uint32_t want = h->batch[c];
	int n;

	if ((tc->last_trip[c + 1] & PYAI_TRIP_KIND) == PYAI_TRIP_REFILL) {
		want = pyai_mag_cap(tc, m);
		trip |= PYAI_TRIP_STREAK;
	}
	kop_enter();
	n = (int)depot_get(h, c, slots, want);
	if (n) {
		trip |= PYAI_TRIP_DEPOT;
	} else {
		n = kernel_alloc(h, tc, c, want, slots);
		trip |= PYAI_TRIP_KERNEL;
	}
	if (n > 0)
		pyai_mag_set_count(tc, m, (uint32_t)n - 1);
	kop_exit();
	if (n > 0)
		trip_done(h, tc, c, m, trip);
	return n;
}

/*
 * A class-@c block of @h: the magazine path with every step written out,
 * for what magazine.h's fast path declined (another heap than the thread's
 * last, an empty magazine, a thread without a cache yet).
 */
void *pyai_small_alloc(struct pya_heap *h, unsigned int c)
{
	struct pyai_tcache *tc;
	struct pyai_mag *m;
	void *p;
	int n;

	if (h->flags & PYA_HEAP_DEBUG)
		return direct_alloc(h, c);
	tc = tcache_get(h);
	if (!tc)
		return direct_alloc(h, c);
	m = pyai_mag_of(tc, c);
	p = pyai_fast_pop(tc, m);	/* the fast path's own pop */
	if (p)
		return p;
	n = refill(h, tc, c, m);
	if (n < 0 && errno == ENOMEM && !h->lost &&
	    tcache_drain_all(tc) + pyai_depot_flush(h))
		/* Blocks this thread hoards in other classes may be holding
		 * the pages the kernel needs: give them back, try again. */
		n = refill(h, tc, c, m);
	if (n < 0)
		return NULL;
	PYAI_BUMP(tc->ctr.mag_misses, 1);
	return handout(pyai_mag_slots(tc, m)[n - 1]);
}

/* --- free ------------------------------------------------------------- */

/* Is the class-@c block @p in @tc's magazine or in the depot?  (A block
 * with the freed key: see pyai_small_free().) */
static bool cached(struct pya_heap *h, struct pyai_tcache *tc, unsigned int c,
		   const void *p)
{
	struct pyai_mag *m = pyai_mag_of(tc, c);
	void **slots = pyai_mag_slots(tc, m);
	uint32_t i, count = pyai_mag_count(tc, m);

	for (i = 0; i < count; i++)
		if (slots[i] == p)
			return true;
	return depot_holds(h, c, p);
}

/*
 * realloc() of the class-@c block @p of @h within its class returns @p
 * untouched; if @p is in fact free (in this thread's magazine or the
 * depot), that would hand out a block that the next malloc() hands out
 * again.  Abort instead, as a double free is.
 */
void pyai_realloc_check(struct pya_heap *h, void *p, unsigned int c,
			const char *fn)
{
	struct pyai_tcache *tc;

	if (likely(*(uint64_t *)p != PYAI_FREED_KEY) ||
	    (h->flags & PYA_HEAP_DEBUG))
		return;
	tc = tcache_of(h);
	if (tc ? cached(h, tc, c, p) : depot_holds(h, c, p))
		pyai_fatal("%s(): %p was freed already", fn, p);
}

static void direct_free(struct pya_heap *h, void *p, const char *fn)
{
	kernel_free(h, NULL, &p, 1, fn);
	PYAI_ADD(h->retired.direct_frees, 1);
}

/*
 * Free the class-@c block @p of @h (the caller checked that it is one):
 * the slow path of pyai_fast_free(), and the way in for frees that know
 * their heap and class (realloc).
 *
 * A block freed twice in the magazine path would be handed out twice
 * before the kernel ever sees it (it checks every block, but only when a
 * magazine drains).  So every block pushed gets the process's key in its
 * first word, and one that has it already is looked for in the whole
 * magazine: found, it is a double free, caught at the call site as glibc's
 * tcache does; not found, the program merely stored that value.  A second
 * free of a block that has left the magazine is caught by the kernel at
 * the next drain.
 */
void pyai_small_free(struct pya_heap *h, void *p, unsigned int c,
		     const char *fn)
{
	struct pyai_tcache *tc;
	struct pyai_mag *m;
	uint32_t count;

	if (h->flags & PYA_HEAP_DEBUG)
		return direct_free(h, p, fn);
	if (unlikely(__atomic_load_n(&h->lost, __ATOMIC_RELAXED))) {
		/* Dropped, untouched: a forked child whose copy failed
		 * faults on every byte of the window. */
		PYAI_ADD(h->retired.lost_blocks, 1);
		return;
	}
	tc = tcache_get(h);
	if (!tc)
		return direct_free(h, p, fn);
	m = pyai_mag_of(tc, c);
	count = pyai_mag_count(tc, m);
	if (unlikely(*(uint64_t *)p == PYAI_FREED_KEY && cached(h, tc, c, p)))
		pyai_fatal("%s(): double free %p", fn, p);
	if (count == pyai_mag_cap(tc, m)) {
		uint8_t trip = PYAI_TRIP_DRAIN;
		uint32_t n = count - h->batch[c], kept;

		/* Streaks and capacity: see trip_done(). */
		if ((tc->last_trip[c + 1] & PYAI_TRIP_KIND) == PYAI_TRIP_DRAIN) {
			trip |= PYAI_TRIP_STREAK;
			n = count;
		}
		kept = mag_drain(h, tc, m, n, true);
		if (kept)
			trip |= PYAI_TRIP_DEPOT;
		if (kept < n)
			trip |= PYAI_TRIP_KERNEL;
		trip_done(h, tc, c, m, trip);
		PYAI_BUMP(tc->ctr.free_drains, 1);
		if (unlikely(!tc->window_size)) {
			/* The drain found the heap lost: @p may fault. */
			PYAI_BUMP(tc->ctr.lost_blocks, 1);
			return;
		}
	} else {
		PYAI_BUMP(tc->ctr.free_hits, 1);
	}
	*(uint64_t *)p = PYAI_FREED_KEY;
	*m->top = p;
	__atomic_store_n(&m->top, m->top + 1, __ATOMIC_RELAXED);
}

/* --- flushing: explicit, heap close, thread exit ----------------------- */

int pyai_flush_thread(struct pya_heap *h)
{
	struct pyai_tcache *tc = tcache_of(h);

	if (tc) {
		pyai_lock_take();
		tcache_drain_all(tc);
		pyai_lock_release();
	}
	pyai_depot_flush(h);
	return 0;
}

/*
 * @h is lost with a window that faults (EIO, EPERM): the calling thread's
 * magazines of it are forgotten and its fast paths turned away, so that
 * nothing of the library touches a block.  Other threads' tcaches: a
 * forked child has none (its forking thread's is handled by the fork
 * handler, or here), and new ones are made without a window.
 */
void pyai_tcache_lost(struct pya_heap *h)
{
	struct pyai_thread *t = pyai_self;
	struct pyai_tcache *tc = t ? t->cache[h->slot] : NULL;

	if (!tc || tc->heap != h)
		return;
	PYAI_STORE(tc->window_size, 0);
	PYAI_BUMP(tc->ctr.lost_blocks, tcache_forget(tc));
}

/* Heap close, pyai_lock held: every thread's blocks go back, and the
 * caches are orphaned; each owner frees its own when it next looks. */
void pyai_heap_detach_caches(struct pya_heap *h)
{
	while (h->caches) {
		struct pyai_tcache *tc = h->caches;

		tcache_drain_all(tc);
		tcache_unlink(tc);
		/* Turns the owner's fast paths away (magazine.h). */
		PYAI_STORE(tc->window_size, 0);
		PYAI_STORE(tc->heap, NULL);
	}
	while (h->spares) {
		struct pyai_tcache *tc = h->spares;

		h->spares = tc->next;
		tcache_free(tc);
	}
	h->nspares = 0;
}

static void thread_exit(void *arg)
{
	struct pyai_thread *t = arg;
	unsigned int i;

	/*
	 * Destructors of other keys and TLS may still allocate and free after
	 * this one: pyai_exiting sends those calls straight to the kernel, one
	 * block at a time, so nothing is cached that nobody would flush.
	 */
	pyai_exiting = true;
	pyai_self = NULL;
	pyai_last = &pyai_no_tcache;
	pyai_last_default = &pyai_no_tcache;
	pyai_lock_take();
	for (i = 0; i < PYA_MAX_HEAPS; i++) {
		struct pyai_tcache *tc = t->cache[i];
		struct pya_heap *h;

		if (!tc)
			continue;
		h = tc->heap;
		if (h) {
			tcache_unlink(tc);
			/*
			 * While other threads use the heap, the blocks are
			 * theirs to reuse: into the depot as far as it has
			 * room (Bonwick and Adams' magazines return to the
			 * depot, not to the slab), so a server that replaces
			 * its threads (larson) hands each one's blocks to the
			 * next without a system call.  The heap's last thread
			 * leaves nothing cached, of its own or of the threads
			 * gone before it.
			 */
			tcache_drain(tc, h->caches != NULL);
			if (!h->caches)
				pyai_depot_flush(h);
			tcache_retire(tc);
			/*
			 * The empty tcache is kept for the next thread that
			 * starts (tcache_new()): mapping and faulting in a
			 * new one costs a thread that lives for a few
			 * thousand operations more than its work.
			 */
			if (h->nspares < PYAI_SPARE_TCACHES) {
				tc->owner = NULL;
				tc->next = h->spares;
				h->spares = tc;
				h->nspares++;
				continue;
			}
		}
		tcache_free(tc);
	}
	*t->pprev = t->next;
	if (t->next)
		t->next->pprev = t->pprev;
	pyai_lock_release();
	pyai_meta_free(t, sizeof(*t));
}

/*
 * exit() (the drop-in malloc's destructor): the calling thread's cached
 * blocks go back as at thread exit, and what runs after (other libraries'
 * destructors) is served one block at a time by the kernel.
 */
void pyai_retire_thread(void)
{
	struct pyai_thread *t = pyai_self;

	if (t) {
		pthread_setspecific(pyai_key, NULL);
		thread_exit(t);
	}
	pyai_exiting = true;
}

/* --- fork() ------------------------------------------------------------ */

/*
 * Prepare: hold pyai_lock across the fork so the child inherits consistent
 * lists.  The fast paths take no lock, so allocations made by atfork
 * handlers that run after this one (registered before ours) still work;
 * one that would need a new cache goes direct instead (pyai_busy).
 */
void pyai_fork_prepare(void)
{
	unsigned int spins;

	pyai_lock_take();
	pyai_busy = true;
	__atomic_store_n(&pyai_forking, 1, __ATOMIC_SEQ_CST);
	/* Other threads' refills and drains finish; new ones wait.  About two
	 * seconds at most, see kop_enter(). */
	for (spins = 0; spins < 200000; spins++) {
		if (!__atomic_load_n(&pyai_kops_active, __ATOMIC_SEQ_CST))
			break;
		if (spins > 1000)
			usleep(10);
		else
			sched_yield();
	}
	pyai_fork_drain_ok = !__atomic_load_n(&pyai_kops_active, __ATOMIC_SEQ_CST);
	pyai_large_fork_prepare();
}

void pyai_fork_parent(void)
{
	pyai_large_fork_parent();
	__atomic_store_n(&pyai_forking, 0, __ATOMIC_SEQ_CST);
	pyai_busy = false;
	pyai_lock_release();
}

/* A child's handling of a thread cache of another thread, or of its own. */
static void fork_child_tcache(struct pyai_tcache *tc, bool mine)
{
	struct pya_heap *h = tc->heap;

	if (h->private_mode) {
		/*
		 * Private heap: every cached block is the child's own (the
		 * kernel copied the heap).  The forking thread keeps its
		 * magazines; a thread that is gone gives its blocks back.
		 * If the kernel could not make the copy (the heap is lost,
		 * see fork_child_check()), nothing cached may be handed out:
		 * every access to the window would fault.
		 */
		if (h->lost || (!mine && !pyai_fork_drain_ok)) {
			tc->ctr.lost_blocks += tcache_forget(tc);
			/* No fast free may touch a block of a lost heap. */
			if (h->lost)
				tc->window_size = 0;
		} else if (!mine) {
			tcache_drain_all(tc);
		}
		return;
	}
	/* Shared heap: the parent's magazines own these blocks. */
	tc->ctr.forks_dropped += tcache_forget(tc);
}

/*
 * Ask each private heap whether the kernel made the child's copy: a child
 * whose copy failed gets EIO from every ioctl, and must not hand out the
 * blocks in its magazines.  One INFO per private heap and fork, in the
 * child; it also refreshes the heap id.
 */
static void fork_child_check(struct pya_heap *h, void *arg)
{
	(void)arg;
	if (h->private_mode && !h->lost &&
	    pyai_heap_ioctl(h, NULL, PYALLOC_IOC_INFO, &h->info) < 0 &&
	    (errno == EIO || errno == EPERM))
		pyai_heap_lose(h, errno);
}

void pyai_fork_child(void)
{
	struct pyai_thread *t, *next;
	unsigned int i;
	int err = errno;

	pyai_set_pid();
	/* Only this thread exists: no refill or drain is in flight. */
	__atomic_store_n(&pyai_kops_active, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pyai_forking, 0, __ATOMIC_RELAXED);
	pyai_heap_foreach(fork_child_check, NULL);
	pyai_heap_foreach(depot_fork_child, NULL);
	for (t = pyai_threads; t; t = next) {
		next = t->next;
		for (i = 0; i < PYA_MAX_HEAPS; i++) {
			struct pyai_tcache *tc = t->cache[i];

			if (!tc)
				continue;
			if (!tc->heap) {	/* orphan of a closed heap */
				if (t != pyai_self) {
					tcache_free(tc);
					t->cache[i] = NULL;
				}
				continue;
			}
			fork_child_tcache(tc, t == pyai_self);
			if (t == pyai_self)
				continue;
			/* A thread that does not exist in the child. */
			tcache_retire(tc);
			tcache_unlink(tc);
			tcache_free(tc);
			t->cache[i] = NULL;
		}
		if (t != pyai_self) {
			*t->pprev = t->next;
			if (t->next)
				t->next->pprev = t->pprev;
			pyai_meta_free(t, sizeof(*t));
		}
	}
	pyai_large_fork_child();
	pyai_busy = false;
	pthread_mutex_init(&pyai_lock, NULL);
	errno = err;
}

/*
 * A child forked without the atfork handlers, found by pyai_lock_take()
 * with the lock just re-initialised and held.  The lists may name threads
 * that do not exist here, and one of them may have been changing a list at
 * the instant of fork, so nothing is walked or freed: those threads'
 * caches simply stay where they are.  For a private heap that is correct
 * (their blocks are this process's, merely unused; the forking thread's
 * magazines are its own); a shared heap's child must be forked with fork()
 * (see userspace/README.md).
 */
void pyai_after_raw_fork(void)
{
	pyai_heap_foreach(depot_unlock_all, NULL);
	pyai_large_fork_child();
}

/* --- statistics ---------------------------------------------------------- */

void pyai_sum_counters(struct pya_heap *h, struct pyai_counters *sum,
		       uint64_t cached[PYA_MAX_CLASSES])
{
	const size_t n = sizeof(*sum) / sizeof(uint64_t);
	uint64_t *dst = (uint64_t *)sum;
	struct pyai_tcache *tc;
	unsigned int c;
	size_t i;

	memset(cached, 0, PYA_MAX_CLASSES * sizeof(uint64_t));
	pyai_lock_take();
	for (i = 0; i < n; i++)
		dst[i] = PYAI_LOAD(((uint64_t *)&h->retired)[i]);
	for (tc = h->caches; tc; tc = tc->next) {
		for (i = 0; i < n; i++)
			dst[i] += PYAI_LOAD(((uint64_t *)&tc->ctr)[i]);
		for (c = 0; c < h->nclasses; c++)
			cached[c] += pyai_mag_count(tc, pyai_mag_of(tc, c));
	}
	/* Blocks in the depot are cached blocks too. */
	for (c = 0; c < h->nclasses; c++)
		cached[c] += __atomic_load_n(&h->depot[c].count,
					     __ATOMIC_RELAXED);
	pyai_lock_release();
}
