// SPDX-License-Identifier: GPL-2.0
/*
 * Allocating and freeing blocks in batches, all or nothing.
 *
 * Allocation follows pymalloc: take a block from the first pool on the
 * class's usedpools list; when the list is empty, take a pool from the most
 * used arena that has a free one (an emptied pool first, whose page is
 * already there, else carve the next never-used pool), and create an arena
 * when none has a free pool.  When a pool's last block is freed the pool goes
 * back to its arena and may later serve any class; when an arena's last pool
 * is freed the arena is released and its pages returned to the kernel,
 * except that one entirely empty arena is kept to avoid thrashing.
 *
 * Purging.  pymalloc gives memory back in whole arenas only, so one live
 * block keeps its arena's every page.  A trim (and so the decay, heap.c)
 * also gives back the page of each empty pool in an arena still in use,
 * like madvise(MADV_DONTNEED) on free pages: the pool stays carved, on its
 * arena's purged_pools list, and gets a fresh zeroed page when it serves
 * again.  Invariants: pools[0, ncarved) are carved; a carved pool has a
 * page unless it is purged, and only empty pools are purged; a->pages
 * counts pages, a->pools_empty the empty pools that have one.
 *
 * All or nothing.  A free batch is validated completely before anything
 * changes: each block's bit is cleared as it is checked, so a duplicate in
 * the batch finds it clear, and on the first bad entry the bits are set
 * again.  An alloc batch that fails half way is rolled back exactly: the
 * blocks are freed in reverse order, and pools carved and arenas created
 * during the call (tagged with the call's generation) are uncarved and
 * discarded instead of being kept, so that the heap's statistics read as
 * before the call.  Reverse order matters: the pools of a call are carved in
 * index order, and a pool carved later empties first.
 */
#include "alloc.h"

int pya_allocator_init(struct pya_allocator *a,
		       const struct pya_backend_ops *ops,
		       unsigned int arena_shift, u32 max_arenas, u64 mem_limit)
{
	unsigned int i;

	a->ops = ops;
	a->arena_shift = arena_shift;
	a->pools_per_arena = 1U << (arena_shift - PYA_POOL_SHIFT);
	a->max_arenas = max_arenas;
	a->mem_limit = mem_limit;
	a->keep_empty = 1;
	a->class_shift = ilog2(PYALLOC_GRANULARITY_8);
	a->nclasses = pya_num_classes(a->class_shift);
	for (i = 0; i < PYALLOC_MAX_CLASSES; i++)
		INIT_LIST_HEAD(&a->usedpools[i]);
	INIT_LIST_HEAD(&a->arenas);
	return pya_arena_order_init(&a->order, a->pools_per_arena);
}

/* Free everything.  No mapping of the heap may be left. */
void pya_allocator_destroy(struct pya_allocator *a)
{
	struct pya_arena *arena, *tmp;

	/* First, so that it never points at a freed arena. */
	pya_free_mem(a->table);
	a->table = NULL;
	a->table_size = 0;
	list_for_each_entry_safe(arena, tmp, &a->arenas, all_link) {
		pya_arena_pages_free(a, arena);
		a->pages -= pya_arena_pages(arena);
		a->ops->slot_free(a, arena->index);
		list_del(&arena->all_link);
		pya_free_mem(arena);
		pya_cond_resched();
	}
	a->arenas_current = 0;
	pya_arena_order_destroy(&a->order);
}

int pya_allocator_set_granularity(struct pya_allocator *a, u32 granularity)
{
	if (granularity != PYALLOC_GRANULARITY_8 &&
	    granularity != PYALLOC_GRANULARITY_16)
		return -EINVAL;
	if (a->alloc_calls)
		return -EBUSY;
	a->class_shift = ilog2(granularity);
	a->nclasses = pya_num_classes(a->class_shift);
	return 0;
}

static void arena_set_nfree(struct pya_allocator *a, struct pya_arena *arena,
			    u32 nfree)
{
	u32 old = arena->nfreepools;

	arena->nfreepools = nfree;
	pya_arena_order_update(&a->order, arena, old);
}

/*
 * The slot table (struct pya_allocator.table).  Invariant, whenever the
 * caller's lock is taken: table[i] is what the backend's slot_lookup()
 * gives for every i < table_size.  Growing is best effort: without memory
 * the table stays as it is, nothing fails, and arena_at() asks the backend
 * for what lies past its end.  A new table is filled from the backend, so
 * slots stored while it could not grow are in it too.
 */
static void table_grow(struct pya_allocator *a, u32 index)
{
	u32 size = max_t(u32, a->table_size, 64);
	struct pya_arena **table;
	u32 i;

	while (size <= index)
		size *= 2;
	size = min_t(u32, size, a->max_arenas);
	table = pya_zalloc_try(array_size(size, sizeof(*table)));
	if (!table)
		return;
	for (i = 0; i < size; i++)
		table[i] = i < a->table_size ? a->table[i] :
			   a->ops->slot_lookup(a, i);
	pya_free_mem(a->table);
	a->table = table;
	a->table_size = size;
}

/* Window slot @index now holds @arena (NULL: nothing) in the backend. */
static void table_set(struct pya_allocator *a, u32 index,
		      struct pya_arena *arena)
{
	if (index >= a->table_size && arena)
		table_grow(a, index);
	if (index < a->table_size)
		a->table[index] = arena;
}

/*
 * The arena of window slot @slot, or NULL.  The caller has checked that
 * @slot < max_arenas (which fits in a u32) when it comes from user space.
 * Inline: a FREE batch runs it at every change of page in its first pass
 * and once a run in its second.
 */
static __always_inline struct pya_arena *arena_at(struct pya_allocator *a,
						  u32 slot)
{
	if (likely(slot < a->table_size))
		return a->table[array_index_nospec(slot, a->table_size)];
	return a->ops->slot_lookup(a, slot);
}

static int arena_new(struct pya_allocator *a, struct pya_arena **out)
{
	struct pya_arena *arena;
	u32 index;
	int err;

	arena = pya_arena_create(a->pools_per_arena, a->gen);
	if (!arena)
		return -ENOMEM;
	err = a->ops->slot_alloc(a, arena, &index);
	if (err) {
		pya_free_mem(arena);
		return err;
	}
	pya_arena_place(arena, index);
	table_set(a, index, arena);
	list_add(&arena->all_link, &a->arenas);
	pya_arena_order_update(&a->order, arena, 0);
	a->nempty_arenas++;
	a->arenas_current++;
	a->arenas_allocated++;
	*out = arena;
	return 0;
}

/*
 * Free the pages of @arena's carved pools (not the purged ones, which have
 * none); the caller unmapped them and does the accounting.  Also used by
 * heap.c for arenas it retired.
 */
void pya_arena_pages_free(struct pya_allocator *a, struct pya_arena *arena)
{
	u32 i;

	for (i = 0; i < arena->ncarved; i++)
		if (arena->pools[i].page)
			a->ops->page_free(a, &arena->pools[i]);
}

/*
 * Take an empty arena out of the heap's bookkeeping.  Its pages and slot
 * are given back either here (unmapped first), or, when @retire and the
 * backend can retire arenas, by the backend after the caller drops its
 * lock: the slot stays reserved and no longer resolves, so no fault maps
 * the pages again and no new arena takes the slot before the zap.
 */
static void arena_destroy(struct pya_allocator *a, struct pya_arena *arena,
			  bool retire)
{
	/* Empty: each carved pool is on empty_pools or purged_pools. */
	a->pages -= pya_arena_pages(arena);
	a->pools_empty -= pya_arena_pages(arena);
	arena_set_nfree(a, arena, 0);
	list_del(&arena->all_link);
	a->nempty_arenas--;
	a->arenas_current--;
	/* Retired or freed, the slot stops resolving now. */
	table_set(a, arena->index, NULL);
	if (retire && a->ops->arena_retire) {
		a->ops->arena_retire(a, arena);
		return;
	}
	if (arena->ncarved)
		a->ops->arena_unmap(a, arena);
	pya_arena_pages_free(a, arena);
	a->ops->slot_free(a, arena->index);
	pya_free_mem(arena);
}

/* Give an empty arena back to the kernel (policy). */
static void arena_release(struct pya_allocator *a, struct pya_arena *arena)
{
	arena_destroy(a, arena, true);
	a->arenas_reclaimed++;
}

/* Undo the creation of an arena by the current call (rollback). */
static void arena_discard(struct pya_allocator *a, struct pya_arena *arena)
{
	WARN_ON(arena->ncarved);
	arena_destroy(a, arena, false);
	a->arenas_allocated--;
}

/* Any arena with a carved empty pool: the fallback at the memory limit. */
static struct pya_arena *arena_with_empty_pool(struct pya_allocator *a)
{
	struct pya_arena *arena;

	list_for_each_entry(arena, &a->arenas, all_link)
		if (!list_empty(&arena->empty_pools))
			return arena;
	return NULL;
}

/* Start a pool serving @cls (pymalloc's allocate_from_new_pool). */
static int pool_get(struct pya_allocator *a, unsigned int cls,
		    struct pya_pool **out)
{
	struct pya_arena *arena = pya_arena_order_first(&a->order);
	struct pya_pool *pool;
	bool created = false;
	int err;

	if ((!arena || list_empty(&arena->empty_pools)) &&
	    a->pages >= a->mem_limit >> PYA_POOL_SHIFT) {
		/* No page may be added; an emptied pool may still serve. */
		arena = a->pools_empty ? arena_with_empty_pool(a) : NULL;
		if (!arena)
			return -ENOMEM;
	}
	if (!arena) {
		err = arena_new(a, &arena);
		if (err)
			return err;
		created = true;
	}

	if (!list_empty(&arena->empty_pools)) {
		pool = list_first_entry(&arena->empty_pools, struct pya_pool,
					link);
		list_del_init(&pool->link);
		a->pools_empty--;
	} else if (!list_empty(&arena->purged_pools)) {
		/*
		 * A purged pool before a never-used one: the arena stays
		 * dense, and the window's pages are reused in place.
		 */
		pool = list_first_entry(&arena->purged_pools, struct pya_pool,
					link);
		err = a->ops->page_alloc(a, pool);
		if (err)
			return err;	/* an arena with pools is not new */
		list_del_init(&pool->link);
		pool->revive_gen = a->gen;
		arena->npurged--;
		a->pages++;
	} else {
		pool = &arena->pools[arena->ncarved];
		err = a->ops->page_alloc(a, pool);
		if (err) {
			if (created)
				arena_discard(a, arena);
			return err;
		}
		pool->carve_gen = a->gen;
		arena->ncarved++;
		a->pages++;
	}

	if (pya_arena_empty(arena))
		a->nempty_arenas--;
	arena_set_nfree(a, arena, arena->nfreepools - 1);
	pya_pool_init(pool, cls, pya_class_size(cls, a->class_shift));
	list_add(&pool->link, &a->usedpools[cls]);
	a->class_pools[cls]++;
	*out = pool;
	return 0;
}

/* @pool's last block was freed: return the pool to its arena. */
static void pool_put(struct pya_allocator *a, struct pya_arena *arena,
		     struct pya_pool *pool)
{
	list_del_init(&pool->link);
	a->class_pools[pool->cls]--;
	if (a->rolling_back && pool->carve_gen == a->gen) {
		/* Carved by the call being undone: uncarve (LIFO). */
		WARN_ON(pool != &arena->pools[arena->ncarved - 1]);
		a->ops->page_free(a, pool);
		pool->page = NULL;
		arena->ncarved--;
		a->pages--;
	} else if (a->rolling_back && pool->revive_gen == a->gen) {
		/* Revived by the call being undone: purged again. */
		a->ops->page_free(a, pool);
		pool->page = NULL;
		list_add(&pool->link, &arena->purged_pools);
		arena->npurged++;
		a->pages--;
	} else {
		/*
		 * Back at the head of empty_pools, where pool_get() took it.
		 * A pool an undone call put back was empty before the call
		 * (one that held blocks keeps them): its age since then
		 * stands, or the decay would purge it later than if the call
		 * had never been made.
		 */
		list_add(&pool->link, &arena->empty_pools);
		a->pools_empty++;
		if (!a->rolling_back) {
			pool->empty_tick = a->tick;
			if (a->ops->empty_kept)
				a->ops->empty_kept(a);
		}
	}
	arena_set_nfree(a, arena, arena->nfreepools + 1);
	if (!pya_arena_empty(arena))
		return;

	if (a->rolling_back) {
		/*
		 * An arena the call created goes; any other one was the kept
		 * empty arena before the call and is kept again.
		 */
		a->nempty_arenas++;
		if (arena->create_gen == a->gen)
			arena_discard(a, arena);
	} else if (a->nempty_arenas >= a->keep_empty) {
		a->nempty_arenas++;
		arena_release(a, arena);
	} else {
		/* Kept: empty_kept() was told about its last pool above. */
		a->nempty_arenas++;
		arena->empty_tick = a->tick;
	}
}

/* The pool of @arena that holds window page @pgoff (a page of @arena). */
static inline struct pya_pool *arena_pool(const struct pya_allocator *a,
					  struct pya_arena *arena, u64 pgoff)
{
	return &arena->pools[pgoff & (a->pools_per_arena - 1)];
}

/* Find the arena, pool and block index of @off; the block's bit is not checked. */
static __always_inline int block_lookup(struct pya_allocator *a, u64 off,
					struct pya_arena **arenap,
					struct pya_pool **poolp,
					unsigned int *idx)
{
	u64 slot = off >> a->arena_shift;
	struct pya_arena *arena;
	struct pya_pool *pool;

	if (slot >= a->max_arenas)
		return -EINVAL;
	/*
	 * A slot without an arena stays without one for the whole call:
	 * FREE, its undo and an ALLOC's rollback never create arenas.
	 */
	arena = arena_at(a, (u32)slot);
	if (!arena)
		return -EINVAL;
	pool = arena_pool(a, arena, off >> PYA_POOL_SHIFT);
	if (!pool->page || !pool->nused)
		return -EINVAL;
	*arenap = arena;
	*poolp = pool;
	return pya_pool_block_index(pool, off & (PYA_POOL_SIZE - 1), idx);
}

/*
 * Account for @n blocks of @pool whose bits are already cleared; @n is at
 * most @pool->nused.  The same as @n calls for one block: the pool empties
 * at the last of them, and a full pool goes back on its class's list at
 * the first (a list_add() that pool_put() would undo at once is skipped).
 * Inline: FREE commits once a run of blocks in one page, and a batch freed
 * in the program's order has runs of a few blocks; the common case, a pool
 * neither full before nor empty after, is a few instructions, fewer than
 * the call.
 */
static __always_inline void commit_free(struct pya_allocator *a,
					struct pya_arena *arena,
					struct pya_pool *pool, u32 n)
{
	bool was_full = pya_pool_full(pool);

	pool->nused -= n;
	a->class_used[pool->cls] -= n;
	if (!pool->nused)
		pool_put(a, arena, pool);
	else if (was_full)
		list_add(&pool->link, &a->usedpools[pool->cls]);
}

/* Free blocks known to be allocated, newest first, undoing their call. */
static void rollback_blocks(struct pya_allocator *a, const u64 *offsets,
			    u32 count)
{
	struct pya_arena *arena;
	struct pya_pool *pool;
	unsigned int idx;

	a->rolling_back = true;
	while (count--) {
		if (WARN_ON(block_lookup(a, offsets[count], &arena, &pool,
					 &idx)))
			continue;
		__clear_bit(idx, pool->map);
		commit_free(a, arena, pool, 1);
	}
	a->rolling_back = false;
	a->arenas_highwater = a->prev_highwater;
}

/*
 * Allocate @count blocks of @size bytes (both validated by the caller) into
 * @out.  On failure nothing is allocated and the statistics are unchanged.
 */
int pya_alloc_blocks(struct pya_allocator *a, u32 size, u32 count, u64 *out)
{
	/* @size comes from user space: no speculation past the class table. */
	unsigned int cls = array_index_nospec(pya_class_of(size, a->class_shift),
					      a->nclasses);
	struct list_head *used = &a->usedpools[cls];
	struct pya_pool *pool;
	u32 i, got;
	int err;

	a->gen++;
	a->prev_highwater = a->arenas_highwater;
	for (i = 0; i < count; i += got) {
		if (list_empty(used)) {
			err = pool_get(a, cls, &pool);
			if (err)
				goto undo;
		} else {
			pool = list_first_entry(used, struct pya_pool, link);
		}
		got = pya_pool_alloc_blocks(pool, out + i, count - i);
		/* A pool on usedpools has a free block; never spin on one. */
		if (WARN_ON(!got)) {
			err = -EIO;
			goto undo;
		}
		if (pya_pool_full(pool))
			list_del_init(&pool->link);
		a->class_used[cls] += got;
	}
	a->alloc_calls++;
	a->blocks_allocated += count;
	if (a->arenas_current > a->arenas_highwater)
		a->arenas_highwater = a->arenas_current;
	return 0;

undo:
	rollback_blocks(a, out, i);
	return err;
}

/*
 * Undo the last pya_alloc_blocks() call, which succeeded, when its result
 * could not be delivered.  Nothing else may have run on @a since.
 */
void pya_alloc_undo(struct pya_allocator *a, const u64 *offsets, u32 count)
{
	a->alloc_calls--;
	a->blocks_allocated -= count;
	rollback_blocks(a, offsets, count);
}

/* Set the bits of offsets[0, count), which were valid and cleared. */
static void restore_bits(struct pya_allocator *a, const u64 *offsets,
			 u32 count)
{
	struct pya_arena *arena;
	struct pya_pool *pool;
	unsigned int idx;
	u32 i;

	for (i = 0; i < count; i++)
		if (!WARN_ON(block_lookup(a, offsets[i], &arena, &pool,
					  &idx)))
			__set_bit(idx, pool->map);
}

/*
 * Clear the bits of the entries from offsets[@i] on that are blocks of
 * @pool in use, up to @count: stop at the first entry of another page, or
 * that is not such a block.  Returns the index of that entry (@count if
 * none).
 *
 * The blocks a thread frees together mostly share a pool (a magazine gives
 * back blocks it took together, and the kernel carves them pool by pool),
 * so this loop is where FREE spends its time: the pool's page, reciprocal,
 * block count and bitmap live in locals, where the bit stores into
 * pool->map would otherwise make the compiler load them again for every
 * block, and one subtraction both tells whether an entry is in the page
 * and gives its offset there.  The checks are pya_pool_block_index()'s,
 * through the same pya_block_index(); the pool's others (its page, its
 * count) would give the same answer for every block of the run, which
 * changes neither.
 */
static __always_inline u32 clear_run(struct pya_pool *pool,
				     const u64 *offsets, u32 i, u32 count)
{
	const u64 page = pya_pool_offset(pool);
	const u32 recip = pool->recip;
	const u32 nblocks = pool->nblocks;
	unsigned long *map = pool->map;
	const u64 *p = offsets + i, *end = offsets + count;

	for (; p < end; p++) {
		u64 inpage = *p - page;
		unsigned int idx;

		if (inpage >= PYA_POOL_SIZE ||
		    pya_block_index((u32)inpage, recip, nblocks, &idx) ||
		    !__test_and_clear_bit(idx, map))
			break;
	}
	return (u32)(p - offsets);
}

/*
 * Free @count blocks, at most PYALLOC_MAX_BATCH.  On -EINVAL, *bad is the
 * first entry that is not an allocated block of this heap (or repeats one)
 * and nothing was freed.
 */
int pya_free_blocks(struct pya_allocator *a, const u64 *offsets, u32 count,
		    u32 *bad)
{
	struct pya_arena *arena;
	struct pya_pool *pool;
	unsigned int idx;
	u32 i, next, end, nruns = 0;

	if (WARN_ON_ONCE(count > ARRAY_SIZE(a->free_runs)))
		return -E2BIG;
	/*
	 * The first pass checks every entry and clears its bit, one run of
	 * entries in one page at a time: the first entry of a run is looked
	 * up in full, the others against its pool (clear_run()).  Nothing
	 * else changes until the whole batch has passed.
	 */
	for (i = 0; i < count; i = next) {
		u64 off = offsets[i];

		if (block_lookup(a, off, &arena, &pool, &idx) ||
		    !__test_and_clear_bit(idx, pool->map)) {
			next = i;
			goto reject;
		}
		a->free_runs[nruns++] = (u16)i;
		/*
		 * A batch scattered over the heap has runs of one entry: for
		 * them, one comparison.  An entry of this page that stops the
		 * run is looked up in full next, and rejected there.
		 */
		next = i + 1;
		if (next < count &&
		    offsets[next] >> PYA_POOL_SHIFT == off >> PYA_POOL_SHIFT)
			next = clear_run(pool, offsets, next, count);
	}
	/*
	 * Every offset is a valid block now, so the second pass commits each
	 * run at once (a pool in several runs empties in the last one it
	 * commits).  It walks the runs backwards: the pools the first pass
	 * reached last are the likeliest to be in cache still, and a batch
	 * scattered over the heap reaches a new pool for nearly every block
	 * (bench/icount/freecache.sh).  So a batch leaves the heap, lists
	 * and their order included, as freeing its blocks one at a time,
	 * last entry first, would: which pool the next ALLOC takes, which
	 * emptied pool is reused first and which emptied arena is kept
	 * (host test free_order).  commit_free() may release an arena, but
	 * only one that holds no block of this batch any more: its pools are
	 * empty, and every block still to be committed keeps its pool in use.
	 */
	for (end = count; nruns--; end = i) {
		i = a->free_runs[nruns];
		/* Validated above: the slot is below max_arenas. */
		arena = arena_at(a, (u32)(offsets[i] >> a->arena_shift));
		if (WARN_ON_ONCE(!arena))	/* validated: never */
			continue;
		commit_free(a, arena,
			    arena_pool(a, arena, offsets[i] >> PYA_POOL_SHIFT),
			    end - i);
	}
	a->free_calls++;
	a->blocks_freed += count;
	*bad = count;
	return 0;

reject:
	restore_bits(a, offsets, next);
	*bad = next;
	return -EINVAL;
}

/*
 * Give back the blocks of a pya_alloc_blocks() call whose offsets could not
 * be delivered after the heap lock was dropped (ioctl.c's slow path), when
 * other calls may have run since and pya_alloc_undo() no longer applies.
 * The blocks are freed one by one, as by FREE, and counted as one free
 * call: the statistics read as a call that allocated them and one that
 * freed them, and what the frees emptied is kept or released like any
 * emptied pool and arena.  The allocation is not made to look undone on
 * purpose: CONFIG takes a heap with no alloc_calls for one with no arena.
 *
 * Meanwhile a sibling thread may have freed some of the blocks (the failed
 * copy may have written their offsets, or it guessed them): such a block
 * is skipped, never warned about, and if another ALLOC got it again, it is
 * freed under that call's owner.  Only a program that frees blocks it was
 * not given gets there, and the kernel's bookkeeping stays consistent.
 */
void pya_alloc_give_back(struct pya_allocator *a, const u64 *offsets,
			 u32 count)
{
	u32 i, bad, freed = 0;

	for (i = 0; i < count; i++)
		if (!pya_free_blocks(a, &offsets[i], 1, &bad))
			freed++;
	if (freed)
		a->free_calls -= freed - 1;
}

/* Has @pool been empty, page and all, for at least @age decay ticks? */
static bool pool_purgeable(const struct pya_allocator *a,
			   const struct pya_pool *pool, u64 age)
{
	/* Between calls, a pool with a page and no block is empty. */
	return pool->page && !pool->nused && a->tick - pool->empty_tick >= age;
}

/*
 * Purge the empty pools of @arena that are @age ticks old: unmap each run
 * of neighbouring ones at once, then free their pages.  Pages freed.
 */
static u64 arena_purge(struct pya_allocator *a, struct pya_arena *arena,
		       u64 age)
{
	u32 first = 0, run = 0, i;
	u64 pages = 0;

	for (i = 0; i <= arena->ncarved; i++) {
		if (i < arena->ncarved &&
		    pool_purgeable(a, &arena->pools[i], age)) {
			if (!run++)
				first = i;
			continue;
		}
		if (run)
			a->ops->pages_unmap(a, arena->pools[first].pgoff, run);
		run = 0;
	}
	for (i = 0; i < arena->ncarved; i++) {
		struct pya_pool *pool = &arena->pools[i];

		if (!pool_purgeable(a, pool, age))
			continue;
		a->ops->page_free(a, pool);
		pool->page = NULL;
		list_move_tail(&pool->link, &arena->purged_pools);
		arena->npurged++;
		pages++;
	}
	a->pages -= pages;
	a->pools_empty -= pages;
	return pages;
}

/*
 * Release the entirely empty arenas and purge the empty pools of the others
 * that have been so for @age decay ticks or more.  Pages freed.
 */
static u64 give_back(struct pya_allocator *a, u64 age)
{
	struct pya_arena *arena, *tmp;
	u64 pages = 0;

	list_for_each_entry_safe(arena, tmp, &a->arenas, all_link) {
		if (pya_arena_empty(arena)) {
			if (a->tick - arena->empty_tick < age)
				continue;
			pages += pya_arena_pages(arena);
			arena_release(a, arena);
		} else if (!list_empty(&arena->empty_pools)) {
			pages += arena_purge(a, arena, age);
		} else {
			continue;
		}
		pya_cond_resched();
	}
	return pages;
}

/*
 * Release every entirely empty arena, the kept one included, and purge the
 * empty pools of the others (PYALLOC_IOC_TRIM).  Pages freed.
 */
u64 pya_allocator_trim(struct pya_allocator *a)
{
	return give_back(a, 0);
}

/*
 * One tick of the decay (heap.c): what has been empty for @age ticks or
 * more goes back, arenas and pools; the caller ticks again while
 * pya_allocator_keeps_empty().  Pages freed.
 */
u64 pya_allocator_decay(struct pya_allocator *a, u64 age)
{
	a->tick++;
	return give_back(a, age);
}

/*
 * Fork copies.  @dst is freshly initialised with @src's geometry; give it
 * the same arenas in the same window slots, the same pools with the same
 * bitmaps, copies of their pages, and the same statistics, so that every
 * block allocated in @src is allocated at the same offset in @dst.  The
 * lists are rebuilt in @src's order, so the copy also makes the same
 * choices as the original from then on.  On failure @dst holds whatever
 * was built and pya_allocator_destroy() frees it.
 */
static struct pya_pool *pool_twin(struct pya_allocator *dst,
				  const struct pya_pool *pool)
{
	u32 ppa_shift = dst->arena_shift - PYA_POOL_SHIFT;

	return arena_pool(dst, arena_at(dst, pool->pgoff >> ppa_shift),
			  pool->pgoff);
}

static int arena_clone(struct pya_allocator *dst,
		       const struct pya_arena *src)
{
	struct pya_arena *arena;
	u32 i;
	int err;

	arena = pya_arena_create(src->npools, src->create_gen);
	if (!arena)
		return -ENOMEM;
	err = dst->ops->slot_store(dst, arena, src->index);
	if (err) {
		pya_free_mem(arena);
		return err;
	}
	pya_arena_place(arena, src->index);
	table_set(dst, src->index, arena);
	list_add_tail(&arena->all_link, &dst->arenas);
	arena->nfreepools = src->nfreepools;
	arena->empty_tick = src->empty_tick;
	for (i = 0; i < src->ncarved; i++) {
		const struct pya_pool *sp = &src->pools[i];
		struct pya_pool *dp = &arena->pools[i];

		/* A purged pool has no page to copy. */
		err = sp->page ? dst->ops->page_copy(dst, dp, sp) : 0;
		if (err)
			return err;
		dp->carve_gen = sp->carve_gen;
		dp->revive_gen = sp->revive_gen;
		dp->empty_tick = sp->empty_tick;
		dp->nused = sp->nused;
		dp->nblocks = sp->nblocks;
		dp->block_size = sp->block_size;
		dp->recip = sp->recip;
		dp->cls = sp->cls;
		bitmap_copy(dp->map, sp->map, PYA_POOL_MAX_BLOCKS);
		arena->ncarved++;
		if (dp->page)
			dst->pages++;
		else
			arena->npurged++;
	}
	return 0;
}

int pya_allocator_clone(struct pya_allocator *dst,
			const struct pya_allocator *src)
{
	const struct pya_arena *sa;
	const struct pya_pool *sp;
	unsigned int c, n;
	int err;

	dst->class_shift = src->class_shift;
	dst->nclasses = src->nclasses;
	dst->mem_limit = src->mem_limit;
	list_for_each_entry(sa, &src->arenas, all_link) {
		err = arena_clone(dst, sa);
		if (err)
			return err;
		dst->arenas_current++;
		pya_cond_resched();
	}
	/* Every arena and page is there: rebuild the lists in order. */
	for (c = 0; c < PYALLOC_MAX_CLASSES; c++) {
		list_for_each_entry(sp, &src->usedpools[c], link)
			list_add_tail(&pool_twin(dst, sp)->link,
				      &dst->usedpools[c]);
		dst->class_pools[c] = src->class_pools[c];
		dst->class_used[c] = src->class_used[c];
	}
	list_for_each_entry(sa, &src->arenas, all_link) {
		struct pya_arena *da = arena_at(dst, sa->index);

		list_for_each_entry(sp, &sa->empty_pools, link)
			list_add_tail(&pool_twin(dst, sp)->link,
				      &da->empty_pools);
		list_for_each_entry(sp, &sa->purged_pools, link)
			list_add_tail(&pool_twin(dst, sp)->link,
				      &da->purged_pools);
	}
	for (n = 1; n <= src->order.npools; n++) {
		list_for_each_entry(sa, &src->order.buckets[n], order_link) {
			struct pya_arena *da = arena_at(dst, sa->index);

			list_add_tail(&da->order_link, &dst->order.buckets[n]);
			__set_bit(n, dst->order.nonempty);
		}
	}
	dst->nempty_arenas = src->nempty_arenas;
	dst->keep_empty = src->keep_empty;
	dst->gen = src->gen;
	dst->tick = src->tick;
	dst->prev_highwater = src->prev_highwater;
	dst->pools_empty = src->pools_empty;
	dst->arenas_highwater = src->arenas_highwater;
	dst->arenas_allocated = src->arenas_allocated;
	dst->arenas_reclaimed = src->arenas_reclaimed;
	dst->alloc_calls = src->alloc_calls;
	dst->free_calls = src->free_calls;
	dst->blocks_allocated = src->blocks_allocated;
	dst->blocks_freed = src->blocks_freed;
	return 0;
}

/* The page backing window page @pgoff, or NULL if no carved pool is there. */
void *pya_page_at(struct pya_allocator *a, u64 pgoff)
{
	u64 slot = pgoff >> (a->arena_shift - PYA_POOL_SHIFT);
	struct pya_arena *arena;

	if (slot >= a->max_arenas)
		return NULL;
	arena = arena_at(a, (u32)slot);
	if (!arena)
		return NULL;
	return arena_pool(a, arena, pgoff)->page;
}

/* Totals into @st (the rest of it zeroed), per class into @cls[nclasses]. */
void pya_allocator_stats(const struct pya_allocator *a,
			 struct pyalloc_stats *st,
			 struct pyalloc_class_stats *cls)
{
	unsigned int c;

	memset(st, 0, sizeof(*st));
	st->granularity = 1U << a->class_shift;
	st->num_classes = a->nclasses;
	for (c = 0; c < a->nclasses; c++) {
		struct pyalloc_class_stats *cs = &cls[c];
		u32 bsize = pya_class_size(c, a->class_shift);
		u64 nblocks = (u64)a->class_pools[c] * pya_blocks_per_pool(bsize);

		cs->block_size = bsize;
		cs->pools = a->class_pools[c];
		cs->blocks_in_use = a->class_used[c];
		cs->blocks_free = nblocks - a->class_used[c];
		st->bytes_in_use += cs->blocks_in_use * bsize;
		st->bytes_free += cs->blocks_free * bsize;
		st->bytes_quantization += (u64)cs->pools *
					  (PYA_POOL_SIZE % bsize);
	}
	st->arenas_current = a->arenas_current;
	st->arenas_highwater = a->arenas_highwater;
	st->arenas_allocated = a->arenas_allocated;
	st->arenas_reclaimed = a->arenas_reclaimed;
	st->pages = a->pages;
	st->pools_empty = a->pools_empty;
	st->mem_limit = a->mem_limit;
	st->alloc_calls = a->alloc_calls;
	st->free_calls = a->free_calls;
	st->blocks_allocated = a->blocks_allocated;
	st->blocks_freed = a->blocks_freed;
}
