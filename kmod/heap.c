// SPDX-License-Identifier: GPL-2.0
/*
 * Heaps and the open files that hold them, and the backend that gives the
 * allocator (alloc.c) real pages, window slots and unmapping.
 *
 * Opening /dev/pyalloc creates a file with one heap, owned by the opener's
 * mm.  In shared mode that heap serves everyone who holds the file.  In
 * private mode each mm that has a heap in the file finds its own: the
 * opener's, and the copies clone.c makes for forked children.
 */
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/log2.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/sched/user.h>
#include <linux/delay.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "pyalloc.h"
#include "trace.h"

static atomic64_t pya_next_heap_id = ATOMIC64_INIT(0);

static struct pya_heap *to_heap(struct pya_allocator *a)
{
	return container_of(a, struct pya_heap, alloc);
}

/*
 * Pool pages are zeroed (user space must never see old kernel data) and
 * charged (account.c).  They are reference counted: a page still pinned by
 * someone (O_DIRECT, vmsplice) when its arena is released lives on until
 * that reference drops, but is no longer in any heap.
 */
/* A charged page for @heap, or NULL with nothing charged. */
static struct page *pya_page_get(struct pya_heap *heap, gfp_t gfp, int *err)
{
	struct page *page;

	*err = pya_charge_page(heap);
	if (*err)
		return NULL;
	page = alloc_page(GFP_KERNEL_ACCOUNT | gfp);
	if (!page) {
		pya_uncharge_pages(heap, 1);
		*err = -ENOMEM;
	}
	return page;
}

static int pya_page_alloc(struct pya_allocator *a, struct pya_pool *pool)
{
	struct page *page;
	int err;

	page = pya_page_get(to_heap(a), __GFP_ZERO, &err);
	if (page)
		pool->page = page;
	return err;
}

/* A fork copy: same charging, the parent's contents instead of zeroes. */
static int pya_page_copy(struct pya_allocator *a, struct pya_pool *dst,
			 const struct pya_pool *src)
{
	struct page *page;
	int err;

	page = pya_page_get(to_heap(a), 0, &err);
	if (page) {
		copy_highpage(page, src->page);
		dst->page = page;
	}
	return err;
}

static void pya_page_free(struct pya_allocator *a, struct pya_pool *pool)
{
	put_page(pool->page);
	pya_uncharge_pages(to_heap(a), 1);
}

static int pya_slot_alloc(struct pya_allocator *a, struct pya_arena *arena,
			  u32 *index)
{
	int err = xa_alloc(&to_heap(a)->arenas, index, arena,
			   XA_LIMIT(0, a->max_arenas - 1), GFP_KERNEL_ACCOUNT);

	if (!err)
		trace_pyalloc_arena_create(to_heap(a)->id, *index, 0);
	/* A full window is a memory limit like any other. */
	return err == -EBUSY ? -ENOMEM : err;
}

static int pya_slot_store(struct pya_allocator *a, struct pya_arena *arena,
			  u32 index)
{
	return xa_insert(&to_heap(a)->arenas, index, arena, GFP_KERNEL_ACCOUNT);
}

/* A retired arena's slot holds a value entry: reserved, resolving to none. */
#define PYA_SLOT_RETIRED	xa_mk_value(0)

static struct pya_arena *pya_slot_lookup(struct pya_allocator *a, u32 index)
{
	void *entry = xa_load(&to_heap(a)->arenas, index);

	return xa_is_value(entry) ? NULL : entry;
}

static void pya_slot_free(struct pya_allocator *a, u32 index)
{
	struct pya_arena *arena = xa_erase(&to_heap(a)->arenas, index);

	if (arena && !xa_is_value(arena))
		trace_pyalloc_arena_release(to_heap(a)->id, index,
					    pya_arena_pages(arena));
}

/*
 * Unmapping an arena and freeing up to pools_per_arena pages takes long;
 * under the heap lock every fault and ioctl of the heap would wait behind
 * it, unkillable.  So a released arena is retired under the lock: its slot
 * keeps a value entry, which reserves it (no new arena can take the slot
 * before the zap) and resolves to nothing (the fault handler answers SIGBUS
 * and never maps the pages again); pya_heap_reap() then zaps, frees and
 * erases the slot with the lock dropped.  Until the zap, a mapping that
 * already had a page keeps reaching it: the page is still ours, not free.
 */
static void pya_arena_unmap(struct pya_allocator *a, struct pya_arena *arena);

static void pya_arena_retire(struct pya_allocator *a, struct pya_arena *arena)
{
	struct pya_heap *heap = to_heap(a);

	trace_pyalloc_arena_release(heap->id, arena->index,
				    pya_arena_pages(arena));
	xa_store(&heap->arenas, arena->index, PYA_SLOT_RETIRED, GFP_NOWAIT);
	list_add_tail(&arena->all_link, &heap->dead);
}

/* Unmap and free the retired arenas of @heap; called without its lock. */
void pya_heap_reap(struct pya_heap *heap)
{
	struct pya_arena *arena, *tmp;
	LIST_HEAD(dead);

	mutex_lock(&heap->lock);
	list_splice_init(&heap->dead, &dead);
	mutex_unlock(&heap->lock);
	if (list_empty(&dead))
		return;
	list_for_each_entry(arena, &dead, all_link) {
		if (arena->ncarved)
			pya_arena_unmap(&heap->alloc, arena);
		pya_arena_pages_free(&heap->alloc, arena);
		cond_resched();
	}
	mutex_lock(&heap->lock);
	list_for_each_entry(arena, &dead, all_link)
		xa_erase(&heap->arenas, arena->index);
	mutex_unlock(&heap->lock);
	list_for_each_entry_safe(arena, tmp, &dead, all_link)
		pya_free_mem(arena);
}

/*
 * Zap the arena's range from every mapping of the file before its pages are
 * freed.  The heap lock is held, so the fault handler cannot map them again.
 * In private mode this also zaps the range in the other heaps' processes,
 * which then fault their own pages in again: correct, only not free.
 */
static void pya_arena_unmap(struct pya_allocator *a, struct pya_arena *arena)
{
	loff_t start = (loff_t)arena->index << a->arena_shift;

	unmap_mapping_range(to_heap(a)->file->inode->i_mapping, start,
			    1LL << a->arena_shift, 1);
}

/*
 * The pages of empty pools in a live arena, purged by a trim or the decay
 * (alloc.c): zapped under the heap lock like an arena destroyed on the
 * spot, so that no fault maps them again before they are freed (they cannot
 * be retired as arenas are: a revived pool's new page would be faulted in
 * while the old one may still be mapped).  A run of neighbours costs one
 * zap; faults and ioctls of the heap wait for the purge.
 */
static void pya_pages_unmap(struct pya_allocator *a, u64 pgoff, u32 npages)
{
	struct pya_heap *heap = to_heap(a);

	trace_pyalloc_purge(heap->id, pgoff, npages);
	unmap_mapping_range(heap->file->inode->i_mapping,
			    (loff_t)pgoff << PAGE_SHIFT,
			    (loff_t)npages << PAGE_SHIFT, 1);
}

/*
 * Decay (struct pyalloc_config.decay_ms).  pymalloc keeps one empty arena
 * and gives every other back at once, so a program that allocates and
 * frees in waves has pages allocated, zeroed, faulted in and zapped again
 * every wave.  A heap with a decay keeps every emptied arena, pages and
 * mappings included, and the page of every emptied pool, and gives back
 * what has stayed empty for decay_ms, like jemalloc's dirty_decay_ms: the
 * arenas, and the pools of arenas still in use (purged, alloc.c), so that
 * a live block keeps its own page, not its whole arena.
 *
 * Ages are counted in ticks of decay_ms / PYA_DECAY_TICKS: the delayed work
 * ticks while anything empty is kept, and gives back what has been empty
 * for PYA_DECAY_TICKS + 1 ticks, so between decay_ms and 1.25 * decay_ms
 * after it emptied (the first tick after an idle spell comes a tick after
 * the pool emptied).  The work stops once nothing is kept; the next pool
 * or arena to empty starts it again.
 */
#define PYA_DECAY_TICKS	4

static unsigned long pya_decay_period(unsigned int ms)
{
	return max(msecs_to_jiffies(ms / PYA_DECAY_TICKS), 1UL);
}

/* Under the heap lock: tick while anything empty is kept. */
static void pya_decay_arm(struct pya_heap *heap)
{
	struct pya_allocator *a = &heap->alloc;

	if (heap->decay_ms && pya_allocator_keeps_empty(a))
		schedule_delayed_work(&heap->decay,
				      pya_decay_period(heap->decay_ms));
}

static void pya_empty_kept(struct pya_allocator *a)
{
	pya_decay_arm(to_heap(a));
}

static void pya_heap_decay(struct work_struct *work)
{
	struct pya_heap *heap = container_of(to_delayed_work(work),
					     struct pya_heap, decay);

	mutex_lock(&heap->lock);
	if (heap->decay_ms) {
		pya_allocator_decay(&heap->alloc, PYA_DECAY_TICKS + 1);
		pya_decay_arm(heap);	/* while anything is still kept */
	} else {
		/* The decay was switched off: give everything back now. */
		pya_allocator_trim(&heap->alloc);
	}
	mutex_unlock(&heap->lock);
	pya_heap_reap(heap);
}

/*
 * Under the heap lock.  A new decay applies from now: switched off, what
 * is kept goes back at once; shortened, the tick pending at the old period
 * (up to PYALLOC_MAX_DECAY_MS / PYA_DECAY_TICKS away) is brought forward to
 * the new one, so that what is kept goes back at most 1.25 * ms after
 * the change, not up to a quarter of the old decay later.
 */
void pya_heap_set_decay(struct pya_heap *heap, unsigned int ms)
{
	unsigned int old = heap->decay_ms;

	heap->decay_ms = ms;
	heap->alloc.keep_empty = ms ? U32_MAX : 1;
	if (!ms)
		mod_delayed_work(system_wq, &heap->decay, 0);
	else if (ms < old && pya_allocator_keeps_empty(&heap->alloc))
		mod_delayed_work(system_wq, &heap->decay,
				 pya_decay_period(ms));
	else
		pya_decay_arm(heap);
}

/* A fork copy's kept arenas and pools decay as the original's would. */
void pya_heap_decay_start(struct pya_heap *heap)
{
	mutex_lock(&heap->lock);
	pya_decay_arm(heap);
	mutex_unlock(&heap->lock);
}

static const struct pya_backend_ops pya_heap_backend = {
	.page_alloc = pya_page_alloc,
	.page_copy = pya_page_copy,
	.page_free = pya_page_free,
	.slot_alloc = pya_slot_alloc,
	.slot_store = pya_slot_store,
	.slot_lookup = pya_slot_lookup,
	.slot_free = pya_slot_free,
	.arena_retire = pya_arena_retire,
	.arena_unmap = pya_arena_unmap,
	.pages_unmap = pya_pages_unmap,
	.empty_kept = pya_empty_kept,
};

/*
 * A new, empty heap for @mm in @pf with @window_slots arenas of window.
 * The caller links it on pf->heaps.  Charging follows the credentials of
 * the caller: the opener, or the parent at fork, whose credentials the
 * child inherits.
 */
struct pya_heap *pya_heap_create(struct pya_file *pf, struct mm_struct *mm,
				 u32 window_slots)
{
	unsigned int arena_shift = ilog2(pya_arena_kb) + 10;
	unsigned long limit_mb = min(READ_ONCE(pya_heap_limit_mb),
				     (unsigned long)(U64_MAX >> 20));
	struct pya_heap *heap;
	int err;

	heap = kzalloc(sizeof(*heap), GFP_KERNEL_ACCOUNT);
	if (!heap)
		return ERR_PTR(-ENOMEM);
	mutex_init(&heap->lock);
	xa_init_flags(&heap->arenas, XA_FLAGS_ALLOC);
	INIT_LIST_HEAD(&heap->link);
	INIT_LIST_HEAD(&heap->dead);
	INIT_DELAYED_WORK(&heap->decay, pya_heap_decay);
	err = pya_allocator_init(&heap->alloc, &pya_heap_backend, arena_shift,
				 window_slots, (u64)limit_mb << 20);
	if (err) {
		mutex_destroy(&heap->lock);
		kfree(heap);
		return ERR_PTR(err);
	}
	heap->file = pf;
	heap->id = atomic64_inc_return(&pya_next_heap_id);
	mmgrab(mm);
	heap->mm = mm;
	if (!capable(CAP_IPC_LOCK))
		heap->user = get_uid(current_user());
	atomic_inc(&pya_heaps_open);
	return heap;
}

/* Free everything @heap holds; no mapping may still show its pages. */
void pya_heap_destroy(struct pya_heap *heap)
{
	cancel_delayed_work_sync(&heap->decay);
	pya_heap_reap(heap);
	pya_allocator_destroy(&heap->alloc);
	xa_destroy(&heap->arenas);
	if (heap->user)
		free_uid(heap->user);
	mmdrop(heap->mm);
	mutex_destroy(&heap->lock);
	kfree(heap);
	atomic_dec(&pya_heaps_open);
}

/*
 * The heap an ioctl of the current task acts on: the file's only heap in
 * shared mode, the heap of the caller's mm in private mode.  EPERM when the
 * caller's process has no heap in the file (it received the descriptor, or
 * inherited it from a parent that had not mapped the window, so no copy
 * was taken at fork); EIO when its fork copy could not be made.
 */
struct pya_heap *pya_heap_of_current(struct pya_file *pf)
{
	struct pya_heap *heap, *found = ERR_PTR(-EPERM);

	mutex_lock(&pf->lock);
	list_for_each_entry(heap, &pf->heaps, link) {
		if (pf->mode == PYALLOC_MODE_SHARED || heap->mm == current->mm) {
			found = heap->broken ? ERR_PTR(-EIO) : heap;
			break;
		}
	}
	mutex_unlock(&pf->lock);
	return found;
}

/* The window of a new file: window_mb, clamped to a usable size. */
static u32 default_window_slots(void)
{
	unsigned int arena_shift = ilog2(pya_arena_kb) + 10;
	u64 slots = ((u64)READ_ONCE(pya_window_mb) << 20) >> arena_shift;

	return clamp_t(u64, slots, 1, PYA_MAX_WINDOW_SLOTS);
}

int pya_file_open(struct inode *inode, struct file *file)
{
	struct pya_heap *heap;
	struct pya_file *pf;
	int err;

	pf = kzalloc(sizeof(*pf), GFP_KERNEL_ACCOUNT);
	if (!pf)
		return -ENOMEM;
	mutex_init(&pf->lock);
	INIT_LIST_HEAD(&pf->heaps);
	pf->mode = PYALLOC_MODE_SHARED;
	pf->inode = pya_alloc_inode();
	if (IS_ERR(pf->inode)) {
		err = PTR_ERR(pf->inode);
		goto err_free;
	}
	heap = pya_heap_create(pf, current->mm, default_window_slots());
	if (IS_ERR(heap)) {
		err = PTR_ERR(heap);
		goto err_inode;
	}
	list_add(&heap->link, &pf->heaps);
	pf->nheaps = 1;
	file->f_mapping = pf->inode->i_mapping;
	file->private_data = pf;
	mutex_lock(&pya_files_lock);
	list_add_tail(&pf->all_link, &pya_files);
	mutex_unlock(&pya_files_lock);
	return 0;

err_inode:
	iput(pf->inode);
err_free:
	mutex_destroy(&pf->lock);
	kfree(pf);
	return err;
}

/*
 * The last reference to the file is gone: every mapping too, since a mapping
 * holds the file.  Give everything back.
 */
int pya_file_release(struct inode *inode, struct file *file)
{
	struct pya_file *pf = file->private_data;
	struct pya_heap *heap, *tmp;

	mutex_lock(&pya_files_lock);
	list_del(&pf->all_link);
	mutex_unlock(&pya_files_lock);
	list_for_each_entry_safe(heap, tmp, &pf->heaps, link) {
		list_del(&heap->link);
		pya_heap_destroy(heap);
	}
	iput(pf->inode);
	mutex_destroy(&pf->lock);
	kfree(pf);
	return 0;
}

/*
 * A heap's figures for fdinfo and debugfs.  Readers must never deadlock
 * against a heap operation (fdinfo is read by whoever may ptrace the
 * process, at any time), so the heap lock is only tried; a heap busy for
 * longer than a few tries is reported from unlocked reads of its counters,
 * which are words and never torn, only possibly a moment apart.
 */
void pya_heap_snapshot(struct pya_heap *heap, struct pya_heap_snap *snap)
{
	struct task_struct *owner;
	int tries;

	memset(snap, 0, sizeof(*snap));
	for (tries = 0; tries < 10; tries++) {
		if (mutex_trylock(&heap->lock)) {
			pya_allocator_stats(&heap->alloc, &snap->st, snap->cls);
			mutex_unlock(&heap->lock);
			snap->locked = true;
			break;
		}
		usleep_range(100, 200);
	}
	if (!snap->locked)	/* racy on purpose, see above */
		pya_allocator_stats(&heap->alloc, &snap->st, snap->cls);
	snap->st.heap_id = heap->id;
	snap->st.forks = READ_ONCE(heap->forks);
	snap->st.mode = heap->file->mode;
	snap->broken = READ_ONCE(heap->broken);
	snap->window = pya_window_size(&heap->alloc);
	strscpy(snap->comm, "-", sizeof(snap->comm));
	/* mm->owner is the task the mm is accounted to (memcg); it may go. */
	rcu_read_lock();
#ifdef CONFIG_MEMCG
	owner = rcu_dereference(heap->mm->owner);
#else
	owner = NULL;
#endif
	if (owner) {
		snap->pid = task_tgid_vnr(owner);
		get_task_comm(snap->comm, owner);
	}
	rcu_read_unlock();
}
