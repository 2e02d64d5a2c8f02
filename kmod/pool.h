/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A pool: one page of blocks of one size class.
 *
 * pymalloc keeps a pool's header and free list inside the pool, so a buffer
 * overrun in user code corrupts the allocator.  pyalloc keeps all of it here,
 * in kernel memory: user space can only write block contents.  That is why
 * the whole page is usable (8 blocks of 512 bytes where pymalloc fits 7) and
 * why every bad free can be detected instead of followed.
 *
 * The allocation bitmap answers "is this block allocated?" in O(1), which is
 * what catches double frees; the lowest free block is found by scanning at
 * most PYA_POOL_MAX_BLOCKS / BITS_PER_LONG words.
 */
#ifndef _PYALLOC_POOL_H
#define _PYALLOC_POOL_H

#include "sizeclass.h"

struct pya_pool {
	/*
	 * The backing page (struct page * in the module); NULL until carved,
	 * and again while purged (empty, its page given back, alloc.c).
	 */
	void *page;
	/*
	 * On its class's list of pools with free blocks while partly used,
	 * on its arena's list of empty pools while carved but unused, or of
	 * purged pools once its page went back; on no list while full or not
	 * carved.
	 */
	struct list_head link;
	/* Alloc call in which the page was carved, for exact rollback. */
	u64 carve_gen;
	/* Alloc call that gave a purged pool a page again, likewise. */
	u64 revive_gen;
	/* The allocator's decay tick when the pool last became empty. */
	u64 empty_tick;
	/* Page offset of the pool in the heap window. */
	u32 pgoff;
	u16 nused;		/* allocated blocks */
	u16 nblocks;		/* blocks that fit in the page */
	u16 block_size;
	u16 cls;
	/* 2^32 / block_size, rounded up: see pya_pool_init(). */
	u32 recip;
	unsigned long map[BITS_TO_LONGS(PYA_POOL_MAX_BLOCKS)];
};

void pya_pool_init(struct pya_pool *pool, unsigned int cls, u32 block_size);
u32 pya_pool_alloc_blocks(struct pya_pool *pool, u64 *out, u32 want);

static inline bool pya_pool_full(const struct pya_pool *pool)
{
	return pool->nused == pool->nblocks;
}

static inline u64 pya_pool_offset(const struct pya_pool *pool)
{
	return (u64)pool->pgoff << PYA_POOL_SHIFT;
}

/*
 * Split @inpage, an offset inside a page of blocks whose reciprocal is
 * @recip (pya_pool_init()), into the index of the block it falls in and
 * whether it is that block's start, with one multiplication.  The product's
 * high half is the index q = floor(n / size).  Its low half is
 * e * q + recip * s, where n = q * size + s and recip * size = 2^32 + e,
 * 0 <= e < size: at most n if s = 0, at least recip otherwise (below
 * 2^32 either way, being the low half); and
 * n < PYA_POOL_SIZE <= 2^32 / PYALLOC_MAX_REQUEST <= recip.  So size divides
 * n exactly when the low half is below recip (the test of Lemire, Kaser and
 * Kurz, "Faster remainder by direct computation", 2019).
 */
static __always_inline bool pya_pool_split(u32 inpage, u32 recip, u32 *idx)
{
	u64 q = (u64)inpage * recip;

	*idx = (u32)(q >> 32);
	return (u32)q < recip;
}

/*
 * The index of the block that starts at @inpage in a page of @nblocks
 * blocks whose reciprocal is @recip, or -EINVAL; the caller checks the
 * bitmap.  The pool's fields come as values so that FREE's run loop
 * (alloc.c, clear_run()) can keep them in registers.
 */
static __always_inline int pya_block_index(u32 inpage, u32 recip,
					   u32 nblocks, unsigned int *idx)
{
	u32 i;

	if (!pya_pool_split(inpage, recip, &i) || i >= nblocks)
		return -EINVAL;
	*idx = array_index_nospec(i, nblocks);
	return 0;
}

/*
 * Turn an offset inside the pool's page into a block index.  Fails unless the
 * offset is the start of a block that exists; the caller checks the bitmap.
 */
static inline int pya_pool_block_index(const struct pya_pool *pool, u32 inpage,
				       unsigned int *idx)
{
	return pya_block_index(inpage, pool->recip, pool->nblocks, idx);
}

#endif /* _PYALLOC_POOL_H */
