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
	/*
	 * floor((2^32 - 1) / size) + 1: at least 2^32 / size and less than
	 * (2^32 + size) / size.  For an offset n in the page, n * recip / 2^32
	 * then exceeds n / size by less than n / 2^32, which is at most
	 * 1 / size while n * size <= 2^32 (a pool of at most 8 MiB, checked
	 * below): too little to reach the next integer, at least 1 / size
	 * above n / size, so (n * recip) >> 32 is floor(n / size), without a
	 * division on the free path.  The low half tells whether size
	 * divides n (pya_pool_split()).
	 */
	BUILD_BUG_ON((u64)PYA_POOL_SIZE * PYALLOC_MAX_REQUEST > 1ULL << 32);
	pool->recip = U32_MAX / block_size + 1;
	bitmap_zero(pool->map, PYA_POOL_MAX_BLOCKS);
}

/*
 * The first @want blocks of @pool, which has none in use (so no bit set:
 * a block's bit is set exactly while it counts in nused): their offsets
 * are a run and their bits one bitmap_set(), without a bit search each.  A
 * wave of allocations mostly meets such pools, fresh or emptied and kept:
 * carving took 1.7-2.0% of the instructions of bench/py's JSON and graph
 * programs under the drop-in, and this took 0.9 and 1.4 points of
 * pymalloc's count off their totals (bench/pyinsn.sh).
 */
static u32 pool_carve_empty(struct pya_pool *pool, u64 *out, u32 want)
{
	const u32 size = pool->block_size;
	u64 off = pya_pool_offset(pool);
	u32 i;

	for (i = 0; i < want; i++, off += size)
		out[i] = off;
	bitmap_set(pool->map, 0, want);
	pool->nused = want;
	return want;
}

/*
 * Take up to @want of the lowest free blocks, which the caller knows
 * exist (the pool is not full), writing their window offsets to @out in
 * ascending order; returns how many.  Lowest-first keeps a pool's live
 * blocks packed at the start of the page.  One pass over the bitmap's
 * words, not one search from the start for every block; the bits taken
 * from a word are set with one store, and the geometry lives in locals
 * (the kernel builds without strict aliasing, so the stores to @out would
 * otherwise reload it for every block).
 */
u32 pya_pool_alloc_blocks(struct pya_pool *pool, u64 *out, u32 want)
{
	const u64 base = pya_pool_offset(pool);
	const u32 size = pool->block_size, nblocks = pool->nblocks;
	unsigned int w, nwords = BITS_TO_LONGS(nblocks);
	u32 got = 0;

	want = min_t(u32, want, nblocks - pool->nused);
	if (!pool->nused)
		return pool_carve_empty(pool, out, want);
	for (w = 0; w < nwords && got < want; w++) {
		unsigned long free = ~pool->map[w], taken = 0;

		/* No block past the pool's last has a bit to take. */
		if (w == nwords - 1)
			free &= BITMAP_LAST_WORD_MASK(nblocks);
		for (; free && got < want; free &= free - 1) {
			unsigned int idx = w * BITS_PER_LONG + __ffs(free);

			taken |= free & -free;
			out[got++] = base + (u64)idx * size;
		}
		pool->map[w] |= taken;
	}
	pool->nused += got;
	return got;
}
