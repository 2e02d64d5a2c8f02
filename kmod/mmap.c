// SPDX-License-Identifier: GPL-2.0
/*
 * The heap window in user space: mmap and the page fault handler.
 *
 * User space maps the window once, MAP_SHARED, and turns an offset into a
 * pointer by adding the mapping's base.  Nothing is mapped up front: a page
 * enters on its first touch through pya_fault(), which inserts the pool's
 * page if the offset lies in a carved pool of a live arena and raises SIGBUS
 * otherwise.  When an arena is released, alloc.c has heap.c zap its range
 * from every mapping on the heap's address_space before the pages are freed.
 *
 * Each mapping points at the heap of the mm it lives in (vm_private_data):
 * in private mode a forked child's mappings point at the child's copy.
 *
 * Pages are inserted with vm_insert_page() under the heap lock (VM_MIXEDMAP),
 * not returned through vmf->page: inserting under the lock means a page can
 * never be mapped after the zap that precedes its release.
 */
#include <linux/mm.h>

#include "pyalloc.h"
#include "trace.h"

/* vm_flags_set() came in 6.3; Kbuild tests for it (PYA_HAVE_VM_FLAGS_SET). */
#ifndef PYA_HAVE_VM_FLAGS_SET
static inline void vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags |= flags;
}

static inline void vm_flags_clear(struct vm_area_struct *vma,
				  vm_flags_t flags)
{
	vma->vm_flags &= ~flags;
}
#endif

/*
 * Fault-around: a pool's first touch maps every carved pool of its arena
 * that lies in this VMA, so that a fresh arena costs one fault instead of
 * one per page (the pages exist and are charged already; mapping them only
 * saves the faults).  Entries already present are left as they are.
 */
static void pya_fault_around(struct vm_area_struct *vma,
			     struct pya_allocator *a, pgoff_t pgoff)
{
	pgoff_t first = pgoff & ~(pgoff_t)(a->pools_per_arena - 1), p;
	struct page *page;
	unsigned long addr;

	for (p = first; p < first + a->pools_per_arena; p++) {
		if (p == pgoff || p < vma->vm_pgoff ||
		    p - vma->vm_pgoff >= vma_pages(vma))
			continue;
		page = pya_page_at(a, p);
		if (!page)
			continue;
		addr = vma->vm_start + ((p - vma->vm_pgoff) << PAGE_SHIFT);
		vm_insert_page(vma, addr, page);
	}
}

static vm_fault_t pya_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct pya_heap *heap = vma->vm_private_data;
	struct page *page;
	vm_fault_t ret;
	int err;

	/* No heap: a fork copy whose descriptor could not be allocated. */
	if (!heap)
		return VM_FAULT_SIGBUS;
	/* Bounds first: the window is fixed for the heap's lifetime. */
	if (vmf->pgoff >= pya_window_size(&heap->alloc) >> PAGE_SHIFT)
		return VM_FAULT_SIGBUS;

	/*
	 * A task being killed must not sit in D state behind another thread's
	 * long free; it gets SIGBUS (a kernel access, EFAULT) and dies of its
	 * SIGKILL on the way out.
	 */
	if (mutex_lock_killable(&heap->lock))
		return VM_FAULT_SIGBUS;
	page = heap->broken ? NULL : pya_page_at(&heap->alloc, vmf->pgoff);
	if (!page) {
		ret = VM_FAULT_SIGBUS;
	} else {
		err = vm_insert_page(vma, vmf->address & PAGE_MASK, page);
		/* -EBUSY: another thread of this mm mapped it first. */
		ret = (!err || err == -EBUSY) ? VM_FAULT_NOPAGE : vmf_error(err);
		if (!err)
			pya_fault_around(vma, &heap->alloc, vmf->pgoff);
	}
	mutex_unlock(&heap->lock);
	trace_pyalloc_fault(heap->id, vmf->pgoff, ret == VM_FAULT_NOPAGE);
	return ret;
}

/*
 * A VMA of the heap is duplicated: split, mremap (same mm) or fork (the
 * child's mm).  In private mode a fork gives the child its own heap
 * (clone.c); everything else only counts the mapping.
 */
static void pya_vm_open(struct vm_area_struct *vma)
{
	struct pya_heap *heap = vma->vm_private_data;
	struct pya_file *pf;

	if (!heap)
		return;
	pf = heap->file;
	/* The mode cannot change once the file is mapped. */
	if (pf->mode == PYALLOC_MODE_PRIVATE && vma->vm_mm != heap->mm) {
		vma->vm_private_data = pya_heap_fork(heap, vma->vm_mm);
		return;
	}
	mutex_lock(&pf->lock);
	heap->nvmas++;
	mutex_unlock(&pf->lock);
}

/*
 * A mapping goes away; its page table entries already have.  When it was
 * the last mapping of a private heap and its mm has no users left (exit,
 * exec), nobody can reach the heap again: release it now rather than with
 * the file, which a child may hold for a long time.
 */
static void pya_vm_close(struct vm_area_struct *vma)
{
	struct pya_heap *heap = vma->vm_private_data;
	struct pya_file *pf;
	bool dead = false;

	if (!heap)
		return;
	pf = heap->file;
	mutex_lock(&pf->lock);
	if (!--heap->nvmas && pf->mode == PYALLOC_MODE_PRIVATE &&
	    !atomic_read(&vma->vm_mm->mm_users)) {
		list_del(&heap->link);
		pf->nheaps--;
		dead = true;
	}
	mutex_unlock(&pf->lock);
	if (dead)
		pya_heap_destroy(heap);
}

static const struct vm_operations_struct pya_vm_ops = {
	.open = pya_vm_open,
	.close = pya_vm_close,
	.fault = pya_fault,
};

/*
 * Only shared mappings inside the window: a private mapping would copy
 * pages on write and let user space believe it wrote to the heap.  No
 * growth by mremap (VM_DONTEXPAND), no exec.  Blocks are ordinary program
 * data, so they appear in core dumps like any malloc's.
 *
 * A private heap's mapping carries VM_WIPEONFORK: fork must not copy its
 * page table entries (they map the parent's pages); the child's heap is a
 * copy (clone.c) whose pages the child faults in.
 */
int pya_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct pya_file *pf = file->private_data;
	struct pya_heap *heap = pya_heap_of_current(pf);
	unsigned long npages = vma_pages(vma);
	u64 window_pages;

	if (IS_ERR(heap))
		return PTR_ERR(heap);
	window_pages = pya_window_size(&heap->alloc) >> PAGE_SHIFT;
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
	if (vma->vm_pgoff >= window_pages ||
	    npages > window_pages - vma->vm_pgoff)
		return -EINVAL;

	mutex_lock(&pf->lock);
	pf->mapped = true;
	heap->nvmas++;
	if (pf->mode == PYALLOC_MODE_PRIVATE)
		vm_flags_set(vma, VM_WIPEONFORK);
	mutex_unlock(&pf->lock);
	vm_flags_set(vma, VM_DONTEXPAND | VM_MIXEDMAP);
	vm_flags_clear(vma, VM_MAYEXEC);
	vma->vm_ops = &pya_vm_ops;
	vma->vm_private_data = heap;
	return 0;
}
