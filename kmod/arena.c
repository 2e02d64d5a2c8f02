// SPDX-License-Identifier: GPL-2.0
/*
 * Arena descriptors and the most-used-first arena order.
 */
#include "arena.h"

int pya_arena_order_init(struct pya_arena_order *order, unsigned int npools)
{
	unsigned int i;

	order->npools = npools;
	order->buckets = pya_zalloc((npools + 1) * sizeof(*order->buckets));
	order->nonempty = pya_zalloc(BITS_TO_LONGS(npools + 1) *
				     sizeof(unsigned long));
	if (!order->buckets || !order->nonempty) {
		pya_arena_order_destroy(order);
		return -ENOMEM;
	}
	for (i = 0; i <= npools; i++)
		INIT_LIST_HEAD(&order->buckets[i]);
	return 0;
}

void pya_arena_order_destroy(struct pya_arena_order *order)
{
	pya_free_mem(order->buckets);
	pya_free_mem(order->nonempty);
	order->buckets = NULL;
	order->nonempty = NULL;
}

/* The arena with the fewest free pools, but at least one; NULL if none. */
struct pya_arena *pya_arena_order_first(const struct pya_arena_order *order)
{
	unsigned long n = find_next_bit(order->nonempty, order->npools + 1, 1);

	if (n > order->npools)
		return NULL;
	return list_first_entry(&order->buckets[n], struct pya_arena,
				order_link);
}

static void order_remove(struct pya_arena_order *order,
			 struct pya_arena *arena, u32 nfree)
{
	if (!nfree)
		return;
	list_del(&arena->order_link);
	if (list_empty(&order->buckets[nfree]))
		__clear_bit(nfree, order->nonempty);
}

static void order_insert(struct pya_arena_order *order,
			 struct pya_arena *arena)
{
	u32 nfree = arena->nfreepools;

	if (!nfree)
		return;
	list_add(&arena->order_link, &order->buckets[nfree]);
	__set_bit(nfree, order->nonempty);
}

/*
 * Move @arena to the bucket of its current free pool count.  @old_nfree is
 * the count it was filed under; 0 means it was not filed (full or new).
 * A new arena is filed with update(order, arena, 0); one being destroyed is
 * unfiled by setting nfreepools to 0 first.
 */
void pya_arena_order_update(struct pya_arena_order *order,
			    struct pya_arena *arena, u32 old_nfree)
{
	if (old_nfree == arena->nfreepools)
		return;
	order_remove(order, arena, old_nfree);
	order_insert(order, arena);
}

/*
 * A new arena whose pools are all uncarved and free.  Only the descriptor is
 * allocated: a pool's page comes when the pool is first carved, so untouched
 * pools cost nothing.
 */
struct pya_arena *pya_arena_create(u32 npools, u64 gen)
{
	struct pya_arena *arena;
	u32 i;

	arena = pya_zalloc(struct_size(arena, pools, npools));
	if (!arena)
		return NULL;
	arena->npools = npools;
	arena->nfreepools = npools;
	arena->create_gen = gen;
	INIT_LIST_HEAD(&arena->all_link);
	INIT_LIST_HEAD(&arena->order_link);
	INIT_LIST_HEAD(&arena->empty_pools);
	INIT_LIST_HEAD(&arena->purged_pools);
	for (i = 0; i < npools; i++)
		INIT_LIST_HEAD(&arena->pools[i].link);
	return arena;
}

/* Put @arena at window slot @index. */
void pya_arena_place(struct pya_arena *arena, u32 index)
{
	u32 i;

	arena->index = index;
	for (i = 0; i < arena->npools; i++)
		arena->pools[i].pgoff = index * arena->npools + i;
}
