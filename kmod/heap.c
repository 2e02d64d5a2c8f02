// SPDX-License-Identifier: GPL-2.0
/*
 * Heaps: the lifetime of one open of /dev/pyalloc, and the backend that gives
 * the allocator (alloc.c) real pages, window slots and unmapping.
 */
#include <linux/gfp.h>
#include <linux/log2.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/slab.h>

#include "pyalloc.h"

/* Window offsets are kept below 2^44 so page offsets fit in 32 bits. */
#define PYA_MAX_WINDOW_MB	(16 * 1024 * 1024UL)

static struct pya_heap *to_heap(struct pya_allocator *a)
{
	return container_of(a, struct pya_heap, alloc);
}

/*
 * Pool pages are zeroed (user space must never see old kernel data) and
 * charged to the caller's memory cgroup.  They are reference counted: a page
 * still pinned by someone (O_DIRECT, vmsplice) when its arena is released
 * lives on until that reference drops, but is no longer in any heap.
 */
static int pya_page_alloc(struct pya_allocator *a, struct pya_pool *pool)
{
	struct page *page = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);

	if (!page)
		return -ENOMEM;
	pool->page = page;
	atomic_long_inc(&pya_pages_held);
	return 0;
}

static void pya_page_free(struct pya_allocator *a, struct pya_pool *pool)
{
	put_page(pool->page);
	atomic_long_dec(&pya_pages_held);
}

static int pya_slot_alloc(struct pya_allocator *a, struct pya_arena *arena,
			  u32 *index)
{
	int err = xa_alloc(&to_heap(a)->arenas, index, arena,
			   XA_LIMIT(0, a->max_arenas - 1), GFP_KERNEL_ACCOUNT);

	/* A full window is a memory limit like any other. */
	return err == -EBUSY ? -ENOMEM : err;
}

static struct pya_arena *pya_slot_lookup(struct pya_allocator *a, u32 index)
{
	return xa_load(&to_heap(a)->arenas, index);
}

static void pya_slot_free(struct pya_allocator *a, u32 index)
{
	xa_erase(&to_heap(a)->arenas, index);
}

/*
 * Zap the arena's range from every mapping of the heap before its pages are
 * freed.  The heap lock is held, so the fault handler cannot map them again.
 */
static void pya_arena_unmap(struct pya_allocator *a, struct pya_arena *arena)
{
	loff_t start = (loff_t)arena->index << a->arena_shift;

	unmap_mapping_range(to_heap(a)->inode->i_mapping, start,
			    1LL << a->arena_shift, 1);
}

static const struct pya_backend_ops pya_heap_backend = {
	.page_alloc = pya_page_alloc,
	.page_free = pya_page_free,
	.slot_alloc = pya_slot_alloc,
	.slot_lookup = pya_slot_lookup,
	.slot_free = pya_slot_free,
	.arena_unmap = pya_arena_unmap,
};

int pya_heap_open(struct inode *inode, struct file *file)
{
	unsigned int arena_shift = ilog2(pya_arena_kb) + 10;
	unsigned long window_mb = clamp(READ_ONCE(pya_window_mb), 1UL,
					PYA_MAX_WINDOW_MB);
	unsigned long limit_mb = min(READ_ONCE(pya_heap_limit_mb),
				     (unsigned long)(U64_MAX >> 20));
	u64 max_arenas = max_t(u64, ((u64)window_mb << 20) >> arena_shift, 1);
	struct pya_heap *heap;
	int err;

	heap = kzalloc(sizeof(*heap), GFP_KERNEL_ACCOUNT);
	if (!heap)
		return -ENOMEM;
	mutex_init(&heap->lock);
	xa_init_flags(&heap->arenas, XA_FLAGS_ALLOC);
	err = pya_allocator_init(&heap->alloc, &pya_heap_backend, arena_shift,
				 (u32)max_arenas, (u64)limit_mb << 20);
	if (err)
		goto err_free;
	heap->inode = pya_alloc_inode();
	if (IS_ERR(heap->inode)) {
		err = PTR_ERR(heap->inode);
		goto err_alloc;
	}
	file->f_mapping = heap->inode->i_mapping;
	file->private_data = heap;
	atomic_inc(&pya_heaps_open);
	return 0;

err_alloc:
	pya_allocator_destroy(&heap->alloc);
err_free:
	mutex_destroy(&heap->lock);
	kfree(heap);
	return err;
}

/*
 * The last reference to the file is gone: every mapping too, since a mapping
 * holds the file.  Give everything back.
 */
int pya_heap_release(struct inode *inode, struct file *file)
{
	struct pya_heap *heap = file->private_data;

	pya_allocator_destroy(&heap->alloc);
	xa_destroy(&heap->arenas);
	iput(heap->inode);
	mutex_destroy(&heap->lock);
	kfree(heap);
	atomic_dec(&pya_heaps_open);
	return 0;
}
