// SPDX-License-Identifier: GPL-2.0
/*
 * Carving blocks out of a pool and validating block offsets.
 */
#include "pool.h"

/* Start serving @cls from @pool, which holds no block. */
void pya_pool_init(struct pya_pool *pool, unsigned int cls, u32 block_size)
{
	pool->cls = cls;
	pool->block_size = block_size;
	pool->nblocks = pya_blocks_per_pool(block_size);
	pool->nused = 0;
	bitmap_zero(pool->map, PYA_POOL_MAX_BLOCKS);
}

/*
 * Take the lowest free block.  The caller guarantees the pool is not full.
 * Lowest-first keeps a pool's live blocks packed at the start of the page.
 */
unsigned int pya_pool_alloc_block(struct pya_pool *pool)
{
	unsigned int idx = find_first_zero_bit(pool->map, pool->nblocks);

	__set_bit(idx, pool->map);
	pool->nused++;
	return idx;
}

/*
 * Turn an offset inside the pool's page into a block index.  Fails unless the
 * offset is the start of a block that exists; the caller checks the bitmap.
 */
int pya_pool_block_index(const struct pya_pool *pool, u32 inpage,
			 unsigned int *idx)
{
	unsigned int i = inpage / pool->block_size;

	if (i * pool->block_size != inpage || i >= pool->nblocks)
		return -EINVAL;
	*idx = array_index_nospec(i, (unsigned int)pool->nblocks);
	return 0;
}
