/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The fake backend of the host builds of pyalloc's bookkeeping: pages from
 * calloc(), window slots from an array, and the n-th page or slot
 * allocation failing on request.  Used by the unit tests (test_alloc.c)
 * and the FREE path's cache measurement (bench/icount/freecache.c).
 */
#ifndef _PYALLOC_FAKE_BACKEND_H
#define _PYALLOC_FAKE_BACKEND_H

#include "../../kmod/alloc.h"

#define MAX_SLOTS 256

struct fake {
	struct pya_allocator a;
	struct pya_arena *slots[MAX_SLOTS];
	/* Retired arenas (fake_retire_ops): their slots stay reserved. */
	struct pya_arena *retired[MAX_SLOTS];
	long fail_countdown;	/* fail the n-th page/slot allocation; 0: never */
	unsigned long pages_live;
	unsigned long unmaps;
	unsigned long unmapped_pages;	/* carved pages of unmapped arenas */
	unsigned long purge_unmaps;	/* pages_unmap() calls */
	unsigned long purge_unmapped;	/* pages they covered */
	u64 last_purge_pgoff;
};

static inline struct fake *to_fake(struct pya_allocator *a)
{
	return container_of(a, struct fake, a);
}

static inline bool inject(struct fake *f)
{
	return f->fail_countdown && --f->fail_countdown == 0;
}

static inline int fake_page_alloc(struct pya_allocator *a, struct pya_pool *pool)
{
	struct fake *f = to_fake(a);

	if (inject(f))
		return -ENOMEM;
	pool->page = calloc(1, PAGE_SIZE);
	if (!pool->page)
		return -ENOMEM;
	f->pages_live++;
	return 0;
}

static inline int fake_page_copy(struct pya_allocator *a, struct pya_pool *dst,
			  const struct pya_pool *src)
{
	int err = fake_page_alloc(a, dst);

	if (!err)
		memcpy(dst->page, src->page, PAGE_SIZE);
	return err;
}

static inline void fake_page_free(struct pya_allocator *a, struct pya_pool *pool)
{
	free(pool->page);
	to_fake(a)->pages_live--;
}

static inline int fake_slot_alloc(struct pya_allocator *a, struct pya_arena *arena,
			   u32 *index)
{
	struct fake *f = to_fake(a);
	u32 i;

	if (inject(f))
		return -ENOMEM;
	for (i = 0; i < a->max_arenas && i < MAX_SLOTS; i++) {
		if (!f->slots[i] && !f->retired[i]) {
			f->slots[i] = arena;
			*index = i;
			return 0;
		}
	}
	return -ENOMEM;
}

static inline int fake_slot_store(struct pya_allocator *a, struct pya_arena *arena,
			   u32 index)
{
	struct fake *f = to_fake(a);

	if (inject(f))
		return -ENOMEM;
	assert(index < MAX_SLOTS && !f->slots[index] && !f->retired[index]);
	f->slots[index] = arena;
	return 0;
}

static inline struct pya_arena *fake_slot_lookup(struct pya_allocator *a, u32 index)
{
	return index < MAX_SLOTS ? to_fake(a)->slots[index] : NULL;
}

static inline void fake_slot_free(struct pya_allocator *a, u32 index)
{
	to_fake(a)->slots[index] = NULL;
}

static inline void fake_arena_unmap(struct pya_allocator *a, struct pya_arena *arena)
{
	struct fake *f = to_fake(a);

	f->unmaps++;
	f->unmapped_pages += arena->ncarved;
}

static inline void fake_pages_unmap(struct pya_allocator *a, u64 pgoff, u32 npages)
{
	struct fake *f = to_fake(a);
	u32 i;

	/* Only carved pools that are empty and still have their page. */
	for (i = 0; i < npages; i++) {
		u64 p = pgoff + i;
		struct pya_arena *ar = f->slots[p / a->pools_per_arena];
		struct pya_pool *pool = &ar->pools[p % a->pools_per_arena];

		assert(pool->page && !pool->nused);
	}
	f->purge_unmaps++;
	f->purge_unmapped += npages;
	f->last_purge_pgoff = pgoff;
}

/* Purged pools over every arena (alloc.c keeps the count per arena). */
static inline u32 pools_purged(struct fake *f)
{
	u32 i, n = 0;

	for (i = 0; i < MAX_SLOTS; i++)
		if (f->slots[i])
			n += f->slots[i]->npurged;
	return n;
}

/* The backend both fakes share; the second adds arena retirement. */
#define FAKE_OPS_COMMON						\
	.page_alloc = fake_page_alloc,				\
	.page_copy = fake_page_copy,				\
	.page_free = fake_page_free,				\
	.slot_alloc = fake_slot_alloc,				\
	.slot_store = fake_slot_store,				\
	.slot_lookup = fake_slot_lookup,			\
	.slot_free = fake_slot_free,				\
	.arena_unmap = fake_arena_unmap,			\
	.pages_unmap = fake_pages_unmap

static const struct pya_backend_ops fake_ops __attribute__((unused)) = {
	FAKE_OPS_COMMON,
};

/*
 * As the module's heap.c does: a released arena's slot stays reserved and
 * resolves to nothing until fake_reap() frees the arena and the slot.
 */
static inline void fake_arena_retire(struct pya_allocator *a,
			      struct pya_arena *arena)
{
	struct fake *f = to_fake(a);

	f->slots[arena->index] = NULL;
	f->retired[arena->index] = arena;
}

static const struct pya_backend_ops fake_retire_ops __attribute__((unused)) = {
	FAKE_OPS_COMMON,
	.arena_retire = fake_arena_retire,
};

static inline u32 fake_reap(struct fake *f)
{
	u32 i, n = 0;

	for (i = 0; i < MAX_SLOTS; i++) {
		if (!f->retired[i])
			continue;
		pya_arena_pages_free(&f->a, f->retired[i]);
		free(f->retired[i]);
		f->retired[i] = NULL;
		n++;
	}
	return n;
}

/* 256 KiB arenas, @slots window slots, limit in pages. */
static inline struct fake *fake_new_ops(u64 limit_pages, u32 slots,
				 const struct pya_backend_ops *ops)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert(f && slots <= MAX_SLOTS);
	assert(!pya_allocator_init(&f->a, ops, 18, slots,
				   limit_pages << PAGE_SHIFT));
	return f;
}

static inline struct fake *fake_new_slots(u64 limit_pages, u32 slots)
{
	return fake_new_ops(limit_pages, slots, &fake_ops);
}

static inline struct fake *fake_new(u64 limit_pages)
{
	return fake_new_slots(limit_pages, 32);
}

#endif /* _PYALLOC_FAKE_BACKEND_H */
