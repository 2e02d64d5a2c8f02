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
 * Pages are inserted with vm_insert_page() under the heap lock (VM_MIXEDMAP),
 * not returned through vmf->page: inserting under the lock means a page can
 * never be mapped after the zap that precedes its release.
 */
#include <linux/mm.h>

#include "pyalloc.h"

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

static vm_fault_t pya_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct pya_heap *heap = vma->vm_private_data;
	struct page *page;
	vm_fault_t ret;
	int err;

	/* Bounds first: the window is fixed for the heap's lifetime. */
	if (vmf->pgoff >= pya_window_size(&heap->alloc) >> PAGE_SHIFT)
		return VM_FAULT_SIGBUS;

	mutex_lock(&heap->lock);
	page = pya_page_at(&heap->alloc, vmf->pgoff);
	if (!page) {
		ret = VM_FAULT_SIGBUS;
	} else {
		err = vm_insert_page(vma, vmf->address & PAGE_MASK, page);
		/* -EBUSY: another thread of this mm mapped it first. */
		ret = (!err || err == -EBUSY) ? VM_FAULT_NOPAGE : vmf_error(err);
	}
	mutex_unlock(&heap->lock);
	return ret;
}

static const struct vm_operations_struct pya_vm_ops = {
	.fault = pya_fault,
};

/*
 * Only shared mappings inside the window: a private mapping would copy
 * pages on write and let user space believe it wrote to the heap.  No
 * growth by mremap (VM_DONTEXPAND), no core dumps of other data, no exec.
 */
int pya_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct pya_heap *heap = file->private_data;
	u64 window_pages = pya_window_size(&heap->alloc) >> PAGE_SHIFT;
	unsigned long npages = vma_pages(vma);

	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_flags & VM_EXEC)
		return -EPERM;
	if (vma->vm_pgoff >= window_pages ||
	    npages > window_pages - vma->vm_pgoff)
		return -EINVAL;

	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP | VM_MIXEDMAP);
	vm_flags_clear(vma, VM_MAYEXEC);
	vma->vm_ops = &pya_vm_ops;
	vma->vm_private_data = heap;
	return 0;
}
