/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Arenas: fixed runs of pools in a heap's window, and the order in which
 * allocation tries them.
 *
 * As in pymalloc, a new pool comes from the *most used* arena that still has
 * a free pool, i.e. the one with the fewest free pools.  Lightly used arenas
 * then drain, become entirely empty and can be given back to the kernel.
 * pymalloc keeps usable arenas in a sorted list and patches the order on
 * every change through nfp2lasta[]; here arenas sit in one bucket per free
 * pool count with a bitmap of non-empty buckets, so both the change and the
 * choice are O(1) (a find_next_bit over pools_per_arena + 1 bits).
 */
#ifndef _PYALLOC_ARENA_H
#define _PYALLOC_ARENA_H

#include "pool.h"

struct pya_arena {
	u32 index;		/* slot in the window: offset index * arena size */
	u32 npools;		/* pools in the arena */
	u32 nfreepools;		/* pools holding no block, carved or not */
	u32 ncarved;		/* pools[0, ncarved) were carved */
	u32 npurged;		/* carved pools whose page went back */
	u64 create_gen;		/* alloc call that created it, for rollback */
	u64 empty_tick;		/* decay tick when it last became empty */
	struct list_head all_link;	/* in the allocator's list of arenas */
	struct list_head order_link;	/* in a bucket of struct pya_arena_order */
	struct list_head empty_pools;	/* carved pools holding no block */
	struct list_head purged_pools;	/* the same, their pages given back */
	struct pya_pool pools[];
};

struct pya_arena_order {
	unsigned int npools;
	/* buckets[n]: arenas with n free pools, 1 <= n <= npools */
	struct list_head *buckets;
	unsigned long *nonempty;
};

int pya_arena_order_init(struct pya_arena_order *order, unsigned int npools);
void pya_arena_order_destroy(struct pya_arena_order *order);
struct pya_arena *pya_arena_order_first(const struct pya_arena_order *order);
void pya_arena_order_update(struct pya_arena_order *order,
			    struct pya_arena *arena, u32 old_nfree);

struct pya_arena *pya_arena_create(u32 npools, u64 gen);
void pya_arena_place(struct pya_arena *arena, u32 index);

static inline bool pya_arena_empty(const struct pya_arena *arena)
{
	return arena->nfreepools == arena->npools;
}

/* Pages @arena holds: its carved pools but the purged ones. */
static inline u32 pya_arena_pages(const struct pya_arena *arena)
{
	return arena->ncarved - arena->npurged;
}

#endif /* _PYALLOC_ARENA_H */
