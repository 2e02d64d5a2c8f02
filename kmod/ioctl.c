// SPDX-License-Identifier: GPL-2.0
/*
 * The ioctl ABI of /dev/pyalloc (uapi/linux/pyalloc.h).
 *
 * A command is ours when its type, number and direction match ours and its
 * size is at least the first version's (else ENOTTY): the size field is the
 * size of the struct user space was built with, which may be newer (larger)
 * than ours, as in dma-heap.c.  Input structs go through
 * copy_struct_from_user(), which rejects unknown non-zero trailing bytes
 * with E2BIG; output structs are zero-extended.
 *
 * Every command acts on the heap of the caller (heap.c): the file's heap in
 * shared mode, the heap of the caller's mm in private mode.  Waits for the
 * heap are killable (EINTR).
 *
 * The heap lock is never held across a user copy that may fault: a fault on
 * the heap's own mapping takes the lock (mmap.c).  The offsets of freshly
 * allocated blocks are copied under the lock with page faults disabled, so
 * that a failed copy can be undone as if the call had not been made; if it
 * faults, the buffer is faulted in without the lock and the call made
 * again, and if that faults too, the offsets are delivered with the lock
 * dropped (alloc_then_deliver()).
 */
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "pyalloc.h"
#include "trace.h"

/* The struct layouts are ABI: tie them to their published sizes. */
static_assert(sizeof(struct pyalloc_info) == PYALLOC_INFO_SIZE_VER0);
static_assert(sizeof(struct pyalloc_config) == PYALLOC_CONFIG_SIZE_VER0);
static_assert(sizeof(struct pyalloc_alloc) == PYALLOC_ALLOC_SIZE_VER0);
static_assert(sizeof(struct pyalloc_free) == PYALLOC_FREE_SIZE_VER0);
static_assert(sizeof(struct pyalloc_stats) == PYALLOC_STATS_SIZE_VER0);
static_assert(sizeof(struct pyalloc_trim) == PYALLOC_TRIM_SIZE_VER0);
static_assert(sizeof(struct pyalloc_class_stats) == 24);

#define PYA_FEATURES	(PYALLOC_FEATURE_PRIVATE | PYALLOC_FEATURE_WINDOW_SIZE | \
			 PYALLOC_FEATURE_TRIM | PYALLOC_FEATURE_MEMLOCK | \
			 PYALLOC_FEATURE_CLASS_STATS | PYALLOC_FEATURE_DECAY | \
			 PYALLOC_FEATURE_PURGE)

static int copy_in(void *dst, size_t ksize, unsigned int cmd,
		   unsigned long arg)
{
	return copy_struct_from_user(dst, ksize, (void __user *)arg,
				     _IOC_SIZE(cmd));
}

static int copy_out(unsigned int cmd, unsigned long arg, const void *src,
		    size_t ksize)
{
	void __user *uptr = (void __user *)arg;
	size_t usize = _IOC_SIZE(cmd);

	if (copy_to_user(uptr, src, min(usize, ksize)))
		return -EFAULT;
	if (usize > ksize && clear_user(uptr + ksize, usize - ksize))
		return -EFAULT;
	return 0;
}

static long pya_ioc_info(struct pya_heap *heap, unsigned int cmd,
			 unsigned long arg)
{
	struct pya_allocator *a = &heap->alloc;
	struct pyalloc_info info = {
		.abi_version = PYALLOC_ABI_VERSION,
		.pool_size = PYA_POOL_SIZE,
		.arena_size = 1U << a->arena_shift,
		.pools_per_arena = a->pools_per_arena,
		.max_request = PYALLOC_MAX_REQUEST,
		.max_batch = PYALLOC_MAX_BATCH,
		.window_size = pya_window_size(a),
		.features = PYA_FEATURES,
		.mode = heap->file->mode,
		.heap_id = heap->id,
	};

	if (mutex_lock_killable(&heap->lock))
		return -EINTR;
	info.num_classes = a->nclasses;
	info.granularity = 1U << a->class_shift;
	info.mem_limit = a->mem_limit;
	mutex_unlock(&heap->lock);
	return copy_out(cmd, arg, &info, sizeof(info));
}

static long pya_ioc_config(struct pya_heap *heap, unsigned int cmd,
			   unsigned long arg)
{
	struct pya_allocator *a = &heap->alloc;
	struct pya_file *pf = heap->file;
	struct pyalloc_config cfg;
	u64 arena_size = 1ULL << a->arena_shift;
	u64 slots = 0;
	long err;

	err = copy_in(&cfg, sizeof(cfg), cmd, arg);
	if (err)
		return err;
	if (cfg.flags & ~PYALLOC_CONFIG_FLAGS)
		return -EINVAL;
	if ((cfg.flags & PYALLOC_CONFIG_DECAY) &&
	    cfg.decay_ms > PYALLOC_MAX_DECAY_MS)
		return -EINVAL;
	if ((cfg.flags & PYALLOC_CONFIG_GRANULARITY) &&
	    cfg.granularity != PYALLOC_GRANULARITY_8 &&
	    cfg.granularity != PYALLOC_GRANULARITY_16)
		return -EINVAL;
	if ((cfg.flags & PYALLOC_CONFIG_MODE) &&
	    cfg.mode != PYALLOC_MODE_SHARED && cfg.mode != PYALLOC_MODE_PRIVATE)
		return -EINVAL;
	if (cfg.flags & PYALLOC_CONFIG_WINDOW_SIZE) {
		if (!cfg.window_size || cfg.window_size & (arena_size - 1))
			return -EINVAL;
		slots = cfg.window_size >> a->arena_shift;
		if (cfg.window_size > (u64)READ_ONCE(pya_window_mb) << 20 ||
		    slots > PYA_MAX_WINDOW_SLOTS)
			return -EPERM;
	}

	/* The file lock keeps mmap out while the geometry may change. */
	if (mutex_lock_killable(&pf->lock))
		return -EINTR;
	if (mutex_lock_killable(&heap->lock)) {
		mutex_unlock(&pf->lock);
		return -EINTR;
	}
	if ((cfg.flags & PYALLOC_CONFIG_MEM_LIMIT) &&
	    cfg.mem_limit > a->mem_limit) {
		err = -EPERM;
		goto out;
	}
	/*
	 * The window and the mode shape every mapping and every fork copy;
	 * the granularity only the allocations (pya_allocator_set_granularity
	 * refuses it after the first).
	 */
	if ((cfg.flags & (PYALLOC_CONFIG_WINDOW_SIZE | PYALLOC_CONFIG_MODE)) &&
	    (pf->mapped || a->alloc_calls || pf->nheaps > 1)) {
		err = -EBUSY;
		goto out;
	}
	if (cfg.flags & PYALLOC_CONFIG_GRANULARITY) {
		err = pya_allocator_set_granularity(a, cfg.granularity);
		if (err)
			goto out;
	}
	if (cfg.flags & PYALLOC_CONFIG_MEM_LIMIT)
		a->mem_limit = cfg.mem_limit;
	if (cfg.flags & PYALLOC_CONFIG_WINDOW_SIZE)
		a->max_arenas = slots;
	if (cfg.flags & PYALLOC_CONFIG_MODE)
		pf->mode = cfg.mode;
	if (cfg.flags & PYALLOC_CONFIG_DECAY)
		pya_heap_set_decay(heap, cfg.decay_ms);
out:
	mutex_unlock(&heap->lock);
	mutex_unlock(&pf->lock);
	return err;
}

/*
 * Allocate under the lock and deliver the offsets and block size with page
 * faults disabled.  Returns -EAGAIN when delivery faulted (the buffer is not
 * faulted in yet, or was unmapped or paged out since): the allocation is
 * then undone, its statistics with it, and the caller faults the buffers in
 * and calls again once, then takes alloc_then_deliver().
 */
static long alloc_and_deliver(struct pya_heap *heap,
			      const struct pyalloc_alloc *req, u64 *offs,
			      u64 __user *uoffs, u32 __user *ubsize)
{
	struct pya_allocator *a = &heap->alloc;
	size_t bytes = (size_t)req->count * sizeof(u64);
	unsigned long left;
	u32 bsize;
	long err;

	if (mutex_lock_killable(&heap->lock))
		return -EINTR;
	err = pya_alloc_blocks(a, req->size, req->count, offs);
	if (err)
		goto out;
	bsize = pya_class_size(pya_class_of(req->size, a->class_shift),
			       a->class_shift);
	pagefault_disable();
	left = __copy_to_user_inatomic(uoffs, offs, bytes);
	if (!left)
		left = __copy_to_user_inatomic(ubsize, &bsize, sizeof(bsize));
	pagefault_enable();
	if (left) {
		pya_alloc_undo(a, offs, req->count);
		err = -EAGAIN;
	}
out:
	mutex_unlock(&heap->lock);
	return err;
}

/*
 * The slow path, for a buffer that faulted again right after it was
 * faulted in (a sibling thread dropping it with MADV_DONTNEED in a loop, or
 * memory pressure at the wrong moment): retrying alloc_and_deliver() could
 * lose that race call after call.  Here the lock is dropped before the
 * offsets are delivered, with page faults allowed, so the copy faults the
 * buffer in itself and always makes progress.  Should the copy fail all
 * the same, the buffer was unmapped or made read-only meanwhile: the
 * blocks are given back, freed as by FREE (pya_alloc_give_back()), and the
 * call fails with -EFAULT.  The lock for that is taken unkillable: the
 * blocks must go back.
 *
 * Between the unlock and the copy the blocks are allocated and their
 * offsets not yet in user space.  A fork then copies the heap with them,
 * and the child, whose copy of the buffer may predate the offsets, never
 * learns them: one batch per thread in this path leaks in that child, as
 * one does when a fork lands between any ALLOC's delivery and its return
 * to user space.
 */
static long alloc_then_deliver(struct pya_heap *heap,
			       const struct pyalloc_alloc *req, u64 *offs,
			       u64 __user *uoffs, u32 __user *ubsize)
{
	struct pya_allocator *a = &heap->alloc;
	u32 bsize = 0;
	long err;

	if (mutex_lock_killable(&heap->lock))
		return -EINTR;
	err = pya_alloc_blocks(a, req->size, req->count, offs);
	if (!err)
		bsize = pya_class_size(pya_class_of(req->size, a->class_shift),
				       a->class_shift);
	mutex_unlock(&heap->lock);
	if (err)
		return err;
	if (!copy_to_user(uoffs, offs, (size_t)req->count * sizeof(u64)) &&
	    !put_user(bsize, ubsize))
		return 0;
	mutex_lock(&heap->lock);
	pya_alloc_give_back(a, offs, req->count);
	mutex_unlock(&heap->lock);
	/* The frees may have released an arena, as FREE's do. */
	pya_heap_reap(heap);
	return -EFAULT;
}

static long pya_ioc_alloc(struct pya_heap *heap, unsigned int cmd,
			  unsigned long arg)
{
	struct pyalloc_alloc __user *ureq = (void __user *)arg;
	struct pyalloc_alloc req;
	u64 __user *uoffs;
	bool faulted_in = false;
	unsigned int shift;
	size_t bytes;
	u64 *offs;
	long err;

	err = copy_in(&req, sizeof(req), cmd, arg);
	if (err)
		return err;
	if (req.flags || !req.size || req.size > PYALLOC_MAX_REQUEST ||
	    !req.count || req.count > PYALLOC_MAX_BATCH)
		return -EINVAL;
	uoffs = u64_to_user_ptr(req.offsets);
	bytes = (size_t)req.count * sizeof(u64);
	if (!access_ok(uoffs, bytes) ||
	    !access_ok(&ureq->block_size, sizeof(ureq->block_size)))
		return -EFAULT;

	offs = kmalloc_array(req.count, sizeof(u64), GFP_KERNEL);
	if (!offs)
		return -ENOMEM;
	/*
	 * Allocate and deliver with faults disabled (alloc_and_deliver()).
	 * Delivery faults when the buffer is not mapped in yet, or was
	 * unmapped or paged out meanwhile (memory pressure, a sibling
	 * thread's MADV_DONTNEED): the allocation is undone, the buffer
	 * faulted in without writing to it, and the call tried again once;
	 * if it faults again, alloc_then_deliver() finishes the call.  A
	 * buffer that cannot be faulted in writable fails with -EFAULT and
	 * nothing changed.  The buffer is not faulted in up front: it is the
	 * same few pages call after call, and walking them every time cost
	 * more than the allocation of a whole batch.
	 */
	for (;;) {
		err = alloc_and_deliver(heap, &req, offs, uoffs,
					&ureq->block_size);
		if (err != -EAGAIN)
			break;
		if (fatal_signal_pending(current)) {
			err = -EINTR;
			break;
		}
		if (fault_in_safe_writeable((char __user *)uoffs, bytes) ||
		    fault_in_safe_writeable((char __user *)&ureq->block_size,
					    sizeof(ureq->block_size))) {
			err = -EFAULT;
			break;
		}
		if (faulted_in) {
			err = alloc_then_deliver(heap, &req, offs, uoffs,
						 &ureq->block_size);
			break;
		}
		faulted_in = true;
		cond_resched();
	}
	kfree(offs);
	shift = heap->alloc.class_shift;
	trace_pyalloc_alloc(heap->id, req.size,
			    pya_class_size(pya_class_of(req.size, shift), shift),
			    req.count, err);
	return err;
}

static long pya_ioc_free(struct pya_heap *heap, unsigned int cmd,
			 unsigned long arg)
{
	struct pyalloc_free __user *ureq = (void __user *)arg;
	struct pyalloc_free req;
	size_t bytes;
	u64 *offs;
	u32 bad;
	long err;

	err = copy_in(&req, sizeof(req), cmd, arg);
	if (err)
		return err;
	if (req.flags || req.reserved || !req.count ||
	    req.count > PYALLOC_MAX_BATCH)
		return -EINVAL;
	bytes = (size_t)req.count * sizeof(u64);
	offs = kmalloc_array(req.count, sizeof(u64), GFP_KERNEL);
	if (!offs)
		return -ENOMEM;
	if (copy_from_user(offs, u64_to_user_ptr(req.offsets), bytes)) {
		err = -EFAULT;
		goto out;
	}
	/*
	 * Report success before it happens: once blocks are freed, a failed
	 * write could no longer be answered with "nothing was freed".
	 */
	if (put_user(req.count, &ureq->error_index)) {
		err = -EFAULT;
		goto out;
	}

	if (mutex_lock_killable(&heap->lock)) {
		err = -EINTR;
		goto out;
	}
	err = pya_free_blocks(&heap->alloc, offs, req.count, &bad);
	mutex_unlock(&heap->lock);
	pya_heap_reap(heap);
	trace_pyalloc_free(heap->id, req.count, err);

	/* Nothing was freed; name the entry that stopped the call. */
	if (err == -EINVAL && put_user(bad, &ureq->error_index))
		err = -EFAULT;
out:
	kfree(offs);
	return err;
}

static long pya_ioc_stats(struct pya_heap *heap, unsigned int cmd,
			  unsigned long arg)
{
	struct pyalloc_class_stats *cls;
	struct pyalloc_stats st;
	u32 count;
	u64 uclasses;
	long err;

	err = copy_in(&st, sizeof(st), cmd, arg);
	if (err)
		return err;
	uclasses = st.classes;
	count = min_t(u32, st.classes_count, PYALLOC_MAX_CLASSES);
	if (st.classes_count && !uclasses)
		return -EFAULT;
	cls = kcalloc(PYALLOC_MAX_CLASSES, sizeof(*cls), GFP_KERNEL);
	if (!cls)
		return -ENOMEM;
	if (mutex_lock_killable(&heap->lock)) {
		kfree(cls);
		return -EINTR;
	}
	pya_allocator_stats(&heap->alloc, &st, cls);
	st.forks = heap->forks;
	mutex_unlock(&heap->lock);
	st.mode = heap->file->mode;
	st.heap_id = heap->id;
	st.classes = uclasses;
	st.classes_count = min(count, st.num_classes);
	err = 0;
	if (st.classes_count &&
	    copy_to_user(u64_to_user_ptr(uclasses), cls,
			 st.classes_count * sizeof(*cls)))
		err = -EFAULT;
	if (!err)
		err = copy_out(cmd, arg, &st, sizeof(st));
	kfree(cls);
	return err;
}

static long pya_ioc_trim(struct pya_heap *heap, unsigned int cmd,
			 unsigned long arg)
{
	struct pyalloc_trim __user *ureq = (void __user *)arg;
	struct pyalloc_trim req;
	long err;

	err = copy_in(&req, sizeof(req), cmd, arg);
	if (err)
		return err;
	if (req.flags || req.reserved)
		return -EINVAL;
	/* Like FREE: make sure the answer can be delivered before acting. */
	if (put_user(0, &ureq->pages))
		return -EFAULT;
	if (mutex_lock_killable(&heap->lock))
		return -EINTR;
	req.pages = pya_allocator_trim(&heap->alloc);
	mutex_unlock(&heap->lock);
	pya_heap_reap(heap);
	/* The pages are gone either way; a racing unmap only loses the count. */
	return put_user(req.pages, &ureq->pages) ? -EFAULT : 0;
}

/*
 * Ours: same type, number and direction, and a size no smaller than the
 * first version of the struct (a larger one is a newer struct, see above).
 */
static bool cmd_matches(unsigned int cmd, unsigned int canon, size_t ver0)
{
	return _IOC_TYPE(cmd) == _IOC_TYPE(canon) &&
	       _IOC_NR(cmd) == _IOC_NR(canon) &&
	       _IOC_DIR(cmd) == _IOC_DIR(canon) &&
	       _IOC_SIZE(cmd) >= ver0;
}

long pya_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	long (*handler)(struct pya_heap *heap, unsigned int cmd,
			unsigned long arg);
	struct pya_heap *heap;

	if (cmd_matches(cmd, PYALLOC_IOC_INFO, PYALLOC_INFO_SIZE_VER0))
		handler = pya_ioc_info;
	else if (cmd_matches(cmd, PYALLOC_IOC_CONFIG, PYALLOC_CONFIG_SIZE_VER0))
		handler = pya_ioc_config;
	else if (cmd_matches(cmd, PYALLOC_IOC_ALLOC, PYALLOC_ALLOC_SIZE_VER0))
		handler = pya_ioc_alloc;
	else if (cmd_matches(cmd, PYALLOC_IOC_FREE, PYALLOC_FREE_SIZE_VER0))
		handler = pya_ioc_free;
	else if (cmd_matches(cmd, PYALLOC_IOC_STATS, PYALLOC_STATS_SIZE_VER0))
		handler = pya_ioc_stats;
	else if (cmd_matches(cmd, PYALLOC_IOC_TRIM, PYALLOC_TRIM_SIZE_VER0))
		handler = pya_ioc_trim;
	else
		return -ENOTTY;

	heap = pya_heap_of_current(file->private_data);
	if (IS_ERR(heap))
		return PTR_ERR(heap);
	return handler(heap, cmd, arg);
}
