/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Size classes, as in CPython's obmalloc and the seed's table.
 *
 * A request of n bytes (1 <= n <= 512) is served by a block of the smallest
 * multiple of the granularity that holds it.  At the default granularity of
 * 8 bytes there are 64 classes and the class index is (n - 1) >> 3:
 *
 *	request	  block	 class
 *	 1..8	     8	    0
 *	 9..16	    16	    1
 *	41..48	    48	    5	(the seed's example: 42 bytes -> 48)
 *	505..512   512	   63
 *
 * A heap may switch to 16-byte granularity (32 classes) before its first
 * allocation, as CPython >= 3.8 does on 64-bit so that every block is
 * aligned for max_align_t.
 */
#ifndef _PYALLOC_SIZECLASS_H
#define _PYALLOC_SIZECLASS_H

#include "core_env.h"

/* A pool is one page and holds blocks of one class, with no header. */
#define PYA_POOL_SHIFT		PAGE_SHIFT
#define PYA_POOL_SIZE		PAGE_SIZE
/* The most blocks a pool can hold: 8-byte blocks. */
#define PYA_POOL_MAX_BLOCKS	(PYA_POOL_SIZE / PYALLOC_GRANULARITY_8)

static inline unsigned int pya_class_of(u32 size, unsigned int shift)
{
	return (size - 1) >> shift;
}

static inline u32 pya_class_size(unsigned int cls, unsigned int shift)
{
	return (u32)(cls + 1) << shift;
}

static inline unsigned int pya_num_classes(unsigned int shift)
{
	return PYALLOC_MAX_REQUEST >> shift;
}

static inline unsigned int pya_blocks_per_pool(u32 block_size)
{
	return PYA_POOL_SIZE / block_size;
}

#endif /* _PYALLOC_SIZECLASS_H */
