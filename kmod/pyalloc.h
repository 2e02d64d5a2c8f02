/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pyalloc module internals: the open file of /dev/pyalloc and its heaps.
 *
 * An open file description (struct pya_file) holds one heap in shared mode
 * and one heap per process (mm) in private mode.  A shared heap is used by
 * every process that holds the descriptor or a mapping.  A private heap
 * belongs to one mm: at fork the kernel copies it for the child (clone.c),
 * and an ioctl or a fault acts on the heap of the caller's mm.
 *
 * Lock order (outermost first):
 *
 *	mmap_lock (fork, munmap, exit, faults)
 *	  pya_files_lock (the list of all files, for debugfs)
 *	    pya_file.lock (the file's heap list, mode and configuration)
 *	      pya_heap.lock (the allocator, the window slots, the faults)
 *
 * An ioctl finds its heap under pya_file.lock and drops it before taking
 * pya_heap.lock; it never takes mmap_lock while holding either.  The heap
 * lock is never held while user memory is touched with page faults
 * enabled, because a fault on the heap's own mapping takes it.
 *
 * Lifetimes.  A shared heap lives as long as the file.  A private heap lives
 * until its mm goes away (the close of its last mapping while the mm has no
 * users left, i.e. at exit or exec) or until the file is released, whichever
 * comes first; its mm is pinned with mmgrab() so that the pointer we compare
 * with current->mm can never name a newer mm.  An ioctl needs no reference
 * on its heap: the file is held by the ioctl, and the heap of the caller's
 * own mm cannot go away while the caller runs.
 */
#ifndef _PYALLOC_H
#define _PYALLOC_H

#include <linux/atomic.h>
#include <linux/bits.h>
#include <linux/fs.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "alloc.h"

struct mm_struct;
struct seq_file;
struct user_struct;

/*
 * Window offsets stay below 2^44 bytes, so that page offsets fit in 32
 * bits, and a window has at most 2^31 arena slots, so that slot numbers fit
 * in the allocator's u32 however small the arenas are.
 */
#define PYA_MAX_WINDOW_MB	(16 * 1024 * 1024UL)
#define PYA_MAX_WINDOW_SLOTS	BIT(31)

struct pya_file {
	struct mutex lock;		/* see above */
	u32 mode;			/* PYALLOC_MODE_* */
	bool mapped;			/* mmap'ed once: configuration frozen */
	struct list_head heaps;		/* struct pya_heap.link */
	unsigned int nheaps;
	struct list_head all_link;	/* on pya_files, under pya_files_lock */
	/*
	 * A private inode whose address_space every mapping of the file is
	 * linked on (file->f_mapping), so that unmap_mapping_range() zaps an
	 * arena from all of them, and from no other file's.
	 */
	struct inode *inode;
};

struct pya_heap {
	struct mutex lock;		/* see above */
	struct pya_allocator alloc;
	struct xarray arenas;		/* window slot -> struct pya_arena */
	/*
	 * Arenas released under the lock and not yet unmapped and freed
	 * (pya_heap_reap()); their slots hold a value entry meanwhile.
	 */
	struct list_head dead;
	struct pya_file *file;
	struct list_head link;		/* on file->heaps, under file->lock */
	u64 id;				/* unique, never reused */
	/* The mm the heap belongs to (private mode) or was opened by. */
	struct mm_struct *mm;
	/* Mappings of the heap in @mm (private mode), under file->lock. */
	unsigned long nvmas;
	/*
	 * RLIMIT_MEMLOCK: pool pages are charged to @user's locked_vm, as
	 * io_uring and VFIO charge what they pin; NULL with CAP_IPC_LOCK.
	 */
	struct user_struct *user;
	u64 forks;			/* private copies made of this heap */
	/* Emptied arenas are given back this long after they empty. */
	unsigned int decay_ms;
	struct delayed_work decay;
	bool broken;			/* a fork copy that could not be made */
};

/* What fdinfo and debugfs show of a heap (pya_heap_snapshot()). */
struct pya_heap_snap {
	struct pyalloc_stats st;
	struct pyalloc_class_stats cls[PYALLOC_MAX_CLASSES];
	u64 window;
	pid_t pid;			/* owner's tgid, 0 if gone */
	char comm[TASK_COMM_LEN];
	bool broken;
	bool locked;			/* a consistent snapshot */
};

/* Module parameters (main.c). */
extern unsigned int pya_arena_kb;
extern unsigned long pya_heap_limit_mb;
extern unsigned long pya_window_mb;
extern unsigned long pya_total_limit_mb;

/* Module-wide counters. */
extern atomic_long_t pya_pages_held;
extern atomic_t pya_heaps_open;
extern atomic64_t pya_forks;

/* All open files, for the debugfs table (debugfs.c). */
extern struct mutex pya_files_lock;
extern struct list_head pya_files;

struct inode *pya_alloc_inode(void);

/* account.c: memory charged for pool pages. */
int pya_charge_page(struct pya_heap *heap);
void pya_uncharge_pages(struct pya_heap *heap, unsigned long n);
unsigned long pya_pages_limit(void);

/* heap.c */
struct pya_heap *pya_heap_create(struct pya_file *pf, struct mm_struct *mm,
				 u32 window_slots);
void pya_heap_destroy(struct pya_heap *heap);
void pya_heap_reap(struct pya_heap *heap);
void pya_heap_set_decay(struct pya_heap *heap, unsigned int ms);
void pya_heap_decay_start(struct pya_heap *heap);
struct pya_heap *pya_heap_of_current(struct pya_file *pf);
void pya_heap_snapshot(struct pya_heap *heap, struct pya_heap_snap *snap);
int pya_file_open(struct inode *inode, struct file *file);
int pya_file_release(struct inode *inode, struct file *file);

/* clone.c */
struct pya_heap *pya_heap_fork(struct pya_heap *parent,
			       struct mm_struct *child_mm);

/* ioctl.c */
long pya_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* fdinfo.c, debugfs.c */
void pya_show_fdinfo(struct seq_file *m, struct file *file);
void pya_debugfs_init(void);
void pya_debugfs_exit(void);

/* mmap.c */
int pya_mmap(struct file *file, struct vm_area_struct *vma);

#endif /* _PYALLOC_H */
