// SPDX-License-Identifier: GPL-2.0
/*
 * Fork copies of private heaps.
 *
 * A malloc must give a forked child a private copy of its heap, and user
 * space cannot take that copy itself: glibc's fork writes into malloc'ed
 * memory in the child before any atfork handler runs, _Fork() and raw
 * clone() run none, and a copy taken in a prepare handler misses what other
 * threads write until the system call.  So the kernel copies the heap inside
 * fork, from the one hook fork offers a driver: dup_mmap() calls
 * vm_operations_struct.open() for each of the child's VMAs, with the child's
 * mm in vma->vm_mm and the parent's mmap_lock held for write.
 *
 * The copy is eager: the child gets new pages holding the parent's contents
 * and a duplicate of the parent's bookkeeping (alloc.c), so every block
 * allocated in the parent is allocated at the same offset in the child, and
 * the statistics are the same.  The child's VMA carries VM_WIPEONFORK
 * (mmap.c), so fork copies no page table entries for it (those would map
 * the parent's pages); the child faults its own pages in.  Before copying,
 * the parent's mappings of the file are zapped: the parent's other threads
 * can no longer write through existing entries while the copy runs, but
 * fault, and wait for fork to drop the mmap_lock.  The copy is therefore a
 * consistent cut, as with anonymous memory.
 *
 * open() cannot fail.  When the copy cannot be made (out of memory, over
 * RLIMIT_MEMLOCK or the module cap, fault injection) the child's heap is
 * left empty and marked broken: its ioctls fail with EIO and its faults
 * with SIGBUS, and nothing of the parent's heap is shared or changed.  If not
 * even the heap descriptor can be allocated the child's VMA gets no heap at
 * all: SIGBUS on access, EPERM from ioctls.
 *
 * See docs/design/fork-and-backing.md for the alternatives we rejected
 * (copy-on-write between heaps, anonymous or shmem backing).
 */
#include <linux/mm.h>

#include "pyalloc.h"
#include "trace.h"

/*
 * The heap of @child_mm in @parent's file, copied from @parent if this is
 * the first of the child's VMAs of the file to be opened in this fork.
 * Takes a VMA reference on the result.
 */
struct pya_heap *pya_heap_fork(struct pya_heap *parent,
			       struct mm_struct *child_mm)
{
	struct pya_file *pf = parent->file;
	struct pya_heap *heap, *child;
	int err;

	mutex_lock(&pf->lock);
	list_for_each_entry(heap, &pf->heaps, link) {
		if (heap->mm == child_mm) {
			/* A second VMA of the same file in this fork. */
			child = heap;
			goto out_ref;
		}
	}

	child = pya_heap_create(pf, child_mm, parent->alloc.max_arenas);
	if (IS_ERR(child)) {
		child = NULL;
		goto out;
	}

	mutex_lock(&parent->lock);
	if (parent->broken) {
		err = -EIO;
	} else {
		unmap_mapping_range(pf->inode->i_mapping, 0, 0, 1);
		err = pya_allocator_clone(&child->alloc, &parent->alloc);
		child->decay_ms = parent->decay_ms;
	}
	if (!err)
		parent->forks++;
	mutex_unlock(&parent->lock);
	if (err) {
		/* Give back what was copied; the heap stays, broken. */
		pya_allocator_destroy(&child->alloc);
		child->broken = true;
	}
	/* Kept arenas and pools decay in the copy as in the original. */
	if (!err)
		pya_heap_decay_start(child);
	list_add_tail(&child->link, &pf->heaps);
	pf->nheaps++;
	atomic64_inc(&pya_forks);
	trace_pyalloc_fork(parent->id, child->id, child->alloc.pages, err);
out_ref:
	child->nvmas++;
out:
	mutex_unlock(&pf->lock);
	return child;
}
