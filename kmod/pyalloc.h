/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pyalloc module internals: the heap behind one open file of /dev/pyalloc.
 */
#ifndef _PYALLOC_H
#define _PYALLOC_H

#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/xarray.h>

#include "alloc.h"

/*
 * One heap per open file description.  Forked children and threads that
 * share the file share the heap.  @lock serialises the allocator and the
 * fault handler; it is never held while user memory is touched with page
 * faults enabled, because a fault on the heap's own mapping takes it.
 */
struct pya_heap {
	struct mutex lock;		/* see above */
	struct pya_allocator alloc;
	struct xarray arenas;		/* window slot -> struct pya_arena */
	/*
	 * A private inode whose address_space every mapping of the heap is
	 * linked on (file->f_mapping), so that unmap_mapping_range() zaps an
	 * arena from all of them, forked children's included, and only them.
	 */
	struct inode *inode;
};

/* Module parameters (main.c). */
extern unsigned int pya_arena_kb;
extern unsigned long pya_heap_limit_mb;
extern unsigned long pya_window_mb;

/* Module-wide counters, readable in /sys/module/pyalloc/parameters. */
extern atomic_long_t pya_pages_held;
extern atomic_t pya_heaps_open;

struct inode *pya_alloc_inode(void);

/* heap.c */
int pya_heap_open(struct inode *inode, struct file *file);
int pya_heap_release(struct inode *inode, struct file *file);

/* ioctl.c */
long pya_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* mmap.c */
int pya_mmap(struct file *file, struct vm_area_struct *vma);

#endif /* _PYALLOC_H */
