// SPDX-License-Identifier: GPL-2.0
/*
 * The ioctl ABI of /dev/pyalloc (uapi/linux/pyalloc.h).
 *
 * Commands are matched on type, number and direction; the size field of the
 * command is the size of the struct user space was built with, which may be
 * older (smaller) or newer (larger) than ours, as in dma-heap.c.  Input
 * structs go through copy_struct_from_user(), which rejects unknown non-zero
 * trailing bytes with E2BIG; output structs are truncated or zero-extended.
 *
 * The heap lock is never held across a user copy that may fault: a fault on
 * the heap's own mapping takes the lock (mmap.c).  The one copy that must
 * happen under the lock, the offsets of freshly allocated blocks, is made
 * with page faults disabled after faulting the buffer in, and the allocation
 * is undone exactly if it still fails.
 */
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "pyalloc.h"

static int copy_in(void *dst, size_t ksize, size_t ver0, unsigned int cmd,
		   unsigned long arg)
{
	size_t usize = _IOC_SIZE(cmd);

	if (usize < ver0)
		return -EINVAL;
	return copy_struct_from_user(dst, ksize, (void __user *)arg, usize);
}

static int copy_out(unsigned int cmd, unsigned long arg, const void *src,
		    size_t ksize, size_t ver0)
{
	void __user *uptr = (void __user *)arg;
	size_t usize = _IOC_SIZE(cmd);

	if (usize < ver0)
		return -EINVAL;
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
	};

	mutex_lock(&heap->lock);
	info.num_classes = a->nclasses;
	info.granularity = 1U << a->class_shift;
	info.mem_limit = a->mem_limit;
	mutex_unlock(&heap->lock);
	return copy_out(cmd, arg, &info, sizeof(info), PYALLOC_INFO_SIZE_VER0);
}

static long pya_ioc_config(struct pya_heap *heap, unsigned int cmd,
			   unsigned long arg)
{
	struct pya_allocator *a = &heap->alloc;
	struct pyalloc_config cfg;
	long err;

	err = copy_in(&cfg, sizeof(cfg), PYALLOC_CONFIG_SIZE_VER0, cmd, arg);
	if (err)
		return err;
	if (cfg.flags & ~PYALLOC_CONFIG_FLAGS)
		return -EINVAL;
	if ((cfg.flags & PYALLOC_CONFIG_GRANULARITY) &&
	    cfg.granularity != PYALLOC_GRANULARITY_8 &&
	    cfg.granularity != PYALLOC_GRANULARITY_16)
		return -EINVAL;

	mutex_lock(&heap->lock);
	if ((cfg.flags & PYALLOC_CONFIG_MEM_LIMIT) &&
	    cfg.mem_limit > a->mem_limit) {
		err = -EPERM;
		goto out;
	}
	if (cfg.flags & PYALLOC_CONFIG_GRANULARITY) {
		err = pya_allocator_set_granularity(a, cfg.granularity);
		if (err)
			goto out;
	}
	if (cfg.flags & PYALLOC_CONFIG_MEM_LIMIT)
		a->mem_limit = cfg.mem_limit;
out:
	mutex_unlock(&heap->lock);
	return err;
}

/*
 * Allocate under the lock and deliver the offsets and block size with page
 * faults disabled.  Returns -EAGAIN when delivery faulted after all (the
 * buffer was unmapped or paged out meanwhile); the allocation is then undone
 * and the caller faults the buffers in again.
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

	mutex_lock(&heap->lock);
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

static long pya_ioc_alloc(struct pya_heap *heap, unsigned int cmd,
			  unsigned long arg)
{
	struct pyalloc_alloc __user *ureq = (void __user *)arg;
	struct pyalloc_alloc req;
	u64 __user *uoffs;
	size_t bytes;
	u64 *offs;
	int tries;
	long err;

	err = copy_in(&req, sizeof(req), PYALLOC_ALLOC_SIZE_VER0, cmd, arg);
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
	for (tries = 0; tries < 4; tries++) {
		/* Fault the output in without writing to it. */
		if (fault_in_safe_writeable((char __user *)uoffs, bytes) ||
		    fault_in_safe_writeable((char __user *)&ureq->block_size,
					    sizeof(ureq->block_size))) {
			err = -EFAULT;
			break;
		}
		err = alloc_and_deliver(heap, &req, offs, uoffs,
					&ureq->block_size);
		if (err != -EAGAIN)
			break;
		err = -EFAULT;
	}
	kfree(offs);
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

	err = copy_in(&req, sizeof(req), PYALLOC_FREE_SIZE_VER0, cmd, arg);
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

	mutex_lock(&heap->lock);
	err = pya_free_blocks(&heap->alloc, offs, req.count, &bad);
	mutex_unlock(&heap->lock);

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
	struct pyalloc_stats *st;
	long err;

	st = kmalloc(sizeof(*st), GFP_KERNEL);
	if (!st)
		return -ENOMEM;
	mutex_lock(&heap->lock);
	pya_allocator_stats(&heap->alloc, st);
	mutex_unlock(&heap->lock);
	err = copy_out(cmd, arg, st, sizeof(*st), PYALLOC_STATS_SIZE_VER0);
	kfree(st);
	return err;
}

static long pya_ioc_trim(struct pya_heap *heap, unsigned int cmd,
			 unsigned long arg)
{
	struct pyalloc_trim __user *ureq = (void __user *)arg;
	struct pyalloc_trim req;
	long err;

	err = copy_in(&req, sizeof(req), PYALLOC_TRIM_SIZE_VER0, cmd, arg);
	if (err)
		return err;
	if (req.flags || req.reserved)
		return -EINVAL;
	/* Like FREE: make sure the answer can be delivered before acting. */
	if (put_user(0, &ureq->pages))
		return -EFAULT;
	mutex_lock(&heap->lock);
	req.pages = pya_allocator_trim(&heap->alloc);
	mutex_unlock(&heap->lock);
	/* The pages are gone either way; a racing unmap only loses the count. */
	return put_user(req.pages, &ureq->pages) ? -EFAULT : 0;
}

/* Same command number and direction; the size may differ (see above). */
static bool cmd_matches(unsigned int cmd, unsigned int canon)
{
	return _IOC_NR(cmd) == _IOC_NR(canon) && _IOC_DIR(cmd) == _IOC_DIR(canon);
}

long pya_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct pya_heap *heap = file->private_data;

	if (_IOC_TYPE(cmd) != PYALLOC_IOC_MAGIC)
		return -ENOTTY;
	if (cmd_matches(cmd, PYALLOC_IOC_INFO))
		return pya_ioc_info(heap, cmd, arg);
	if (cmd_matches(cmd, PYALLOC_IOC_CONFIG))
		return pya_ioc_config(heap, cmd, arg);
	if (cmd_matches(cmd, PYALLOC_IOC_ALLOC))
		return pya_ioc_alloc(heap, cmd, arg);
	if (cmd_matches(cmd, PYALLOC_IOC_FREE))
		return pya_ioc_free(heap, cmd, arg);
	if (cmd_matches(cmd, PYALLOC_IOC_STATS))
		return pya_ioc_stats(heap, cmd, arg);
	if (cmd_matches(cmd, PYALLOC_IOC_TRIM))
		return pya_ioc_trim(heap, cmd, arg);
	return -ENOTTY;
}
