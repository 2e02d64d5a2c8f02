/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The allocator of one heap: size classes over pools over arenas.
 *
 * This is the bookkeeping of pymalloc (CPython's Objects/obmalloc.c) moved
 * into the kernel and made batch-oriented: one call allocates or frees up to
 * PYALLOC_MAX_BATCH blocks, all or nothing.  It does not lock, touch user
 * memory or know about struct page; the caller serialises calls and the
 * backend (heap.c in the module, a fake in the host tests) supplies pages,
 * arena slots in the window and unmapping.
 *
 * Window layout: arena i covers offsets [i << arena_shift, (i + 1) <<
 * arena_shift); pool p of an arena is its p-th page; block k of a pool starts
 * k * block_size bytes into the page.
 */
#ifndef _PYALLOC_ALLOC_H
#define _PYALLOC_ALLOC_H

#include "arena.h"

struct pya_allocator;

struct pya_backend_ops {
	/* Give @pool a zeroed page (pool->page) or fail with -ENOMEM. */
	int (*page_alloc)(struct pya_allocator *a, struct pya_pool *pool);
	void (*page_free)(struct pya_allocator *a, struct pya_pool *pool);
	/* Store @arena in the lowest free window slot, setting *index. */
	int (*slot_alloc)(struct pya_allocator *a, struct pya_arena *arena,
			  u32 *index);
	/* Store @arena in window slot @index, which is free (fork copies). */
	int (*slot_store)(struct pya_allocator *a, struct pya_arena *arena,
			  u32 index);
	struct pya_arena *(*slot_lookup)(struct pya_allocator *a, u32 index);
	void (*slot_free)(struct pya_allocator *a, u32 index);
	/*
	 * Give @dst a page holding a copy of @src's page (a fork copy), or
	 * fail with -ENOMEM; like page_alloc, it is charged to the heap.
	 */
	int (*page_copy)(struct pya_allocator *a, struct pya_pool *dst,
			 const struct pya_pool *src);
	/*
	 * Optional: take over an arena the allocator no longer knows, whose
	 * slot must stay reserved and stop resolving at once; unmap it, free
	 * its pages and slot and the descriptor later, outside the caller's
	 * lock.  Without it arenas are unmapped and freed on the spot.
	 */
	void (*arena_retire)(struct pya_allocator *a, struct pya_arena *arena);
	/* Remove every user mapping of @arena's pages; they are freed next. */
	void (*arena_unmap)(struct pya_allocator *a, struct pya_arena *arena);
	/*
	 * Remove every user mapping of @npages window pages from @pgoff, the
	 * pages of empty pools that are purged (freed) next.
	 */
	void (*pages_unmap)(struct pya_allocator *a, u64 pgoff, u32 npages);
	/*
	 * Optional: an arena or a pool became empty and is kept, pages
	 * included, for now (decay, heap.c).
	 */
	void (*empty_kept)(struct pya_allocator *a);
};

struct pya_allocator {
	const struct pya_backend_ops *ops;

	/* Geometry, fixed when the heap is opened. */
	unsigned int arena_shift;	/* log2 of the arena size in bytes */
	unsigned int pools_per_arena;
	u32 max_arenas;			/* window slots */
	unsigned int class_shift;	/* 3 or 4: granularity 8 or 16 */
	unsigned int nclasses;
	u64 mem_limit;			/* bytes of pool pages */

	/* Per size class: pools with free blocks (pymalloc's usedpools). */
	struct list_head usedpools[PYALLOC_MAX_CLASSES];
	u32 class_pools[PYALLOC_MAX_CLASSES];
	u64 class_used[PYALLOC_MAX_CLASSES];

	struct list_head arenas;	/* every arena of the heap */
	/*
	 * The arenas by window slot, for the slots below table_size (NULL:
	 * no arena there), mirroring the backend's slots: every block of
	 * every FREE batch needs its arena, and the backend keeps them in an
	 * xarray behind an indirect call, several times the cost of this
	 * load.  Grown by doubling, from 64 slots, as higher slots are
	 * used: at most 16 bytes per arena of the heap's high-water mark (8
	 * per slot), never shrunk.  When it cannot grow, the slots past its
	 * end are looked up in the backend (arena_at(), alloc.c).  It may
	 * run past max_arenas after a CONFIG that shrank the window, with
	 * nothing there: slots are checked against max_arenas first.
	 */
	struct pya_arena **table;
	u32 table_size;
	struct pya_arena_order order;
	u32 nempty_arenas;	/* entirely empty arenas kept */
	u32 keep_empty;		/* at most this many (1: pymalloc's policy) */
	u64 gen;		/* number of the current/last alloc call */
	u64 tick;		/* decay ticks so far (pya_allocator_decay) */
	u64 prev_highwater;	/* arenas_highwater before that call */
	bool rolling_back;
	/*
	 * pya_free_blocks()'s scratch: where each run of a batch's entries
	 * in one page starts, found by its first pass, committed by its
	 * second.  Under the heap lock like the rest; not cloned.
	 */
	u16 free_runs[PYALLOC_MAX_BATCH];

	/* Statistics (struct pyalloc_stats). */
	u64 pages;
	u64 pools_empty;		/* with a page; purged ones not */
	u64 arenas_current;
	u64 arenas_highwater;
	u64 arenas_allocated;
	u64 arenas_reclaimed;
	u64 alloc_calls;
	u64 free_calls;
	u64 blocks_allocated;
	u64 blocks_freed;
};

int pya_allocator_init(struct pya_allocator *a,
		       const struct pya_backend_ops *ops,
		       unsigned int arena_shift, u32 max_arenas, u64 mem_limit);
void pya_allocator_destroy(struct pya_allocator *a);
int pya_allocator_set_granularity(struct pya_allocator *a, u32 granularity);
int pya_allocator_clone(struct pya_allocator *dst,
			const struct pya_allocator *src);

int pya_alloc_blocks(struct pya_allocator *a, u32 size, u32 count, u64 *out);
void pya_alloc_undo(struct pya_allocator *a, const u64 *offsets, u32 count);
void pya_alloc_give_back(struct pya_allocator *a, const u64 *offsets,
			 u32 count);
int pya_free_blocks(struct pya_allocator *a, const u64 *offsets, u32 count,
		    u32 *bad);

u64 pya_allocator_trim(struct pya_allocator *a);
u64 pya_allocator_decay(struct pya_allocator *a, u64 age);
void pya_arena_pages_free(struct pya_allocator *a, struct pya_arena *arena);

/* Does @a keep anything empty (an arena, or a pool with its page)? */
static inline bool pya_allocator_keeps_empty(const struct pya_allocator *a)
{
	return a->pools_empty || a->nempty_arenas;
}

void *pya_page_at(struct pya_allocator *a, u64 pgoff);
void pya_allocator_stats(const struct pya_allocator *a,
			 struct pyalloc_stats *st,
			 struct pyalloc_class_stats *cls);

static inline u64 pya_window_size(const struct pya_allocator *a)
{
	return (u64)a->max_arenas << a->arena_shift;
}

#endif /* _PYALLOC_ALLOC_H */
