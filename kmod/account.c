// SPDX-License-Identifier: GPL-2.0
/*
 * Accounting of pool pages: what an unprivileged user may pin.
 *
 * Pool pages are kernel pages that user space can fill but the kernel cannot
 * swap, reclaim or migrate, so, like io_uring's registered buffers, RDMA's
 * umem and VFIO, pyalloc charges them three ways:
 *
 *  - to the memory cgroup of the task that allocates them
 *    (GFP_KERNEL_ACCOUNT, heap.c and clone.c);
 *  - to the owning user's locked_vm against RLIMIT_MEMLOCK, exactly as
 *    io_uring's __io_account_mem() does, unless the opener had
 *    CAP_IPC_LOCK; locked_vm is per user, so many processes, many heaps,
 *    forks and passed descriptors all add up to one limit;
 *  - to a module-wide cap, total_limit_mb (default: half of RAM), which
 *    binds root too.
 *
 * The owning mm's pinned_vm is raised as well, so that a process's pool
 * pages show as VmPin in /proc/<pid>/status even before it touches them.
 *
 * Charges are made from ioctl and fork context, never from the fault
 * handler, and never take mmap_lock (account_locked_vm() would, and fork
 * already holds the child's).
 */
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/user.h>

#include "pyalloc.h"

unsigned long pya_pages_limit(void)
{
	return READ_ONCE(pya_total_limit_mb) << (20 - PAGE_SHIFT);
}

static bool charge_user(struct user_struct *user)
{
	unsigned long limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	unsigned long cur = atomic_long_read(&user->locked_vm);

	do {
		if (cur + 1 > limit)
			return false;
	} while (!atomic_long_try_cmpxchg(&user->locked_vm, &cur, cur + 1));
	return true;
}

/* Charge one pool page of @heap; -ENOMEM over any limit, nothing charged. */
int pya_charge_page(struct pya_heap *heap)
{
	if (atomic_long_inc_return(&pya_pages_held) > pya_pages_limit()) {
		atomic_long_dec(&pya_pages_held);
		return -ENOMEM;
	}
	if (heap->user && !charge_user(heap->user)) {
		atomic_long_dec(&pya_pages_held);
		return -ENOMEM;
	}
	atomic64_inc(&heap->mm->pinned_vm);
	return 0;
}

void pya_uncharge_pages(struct pya_heap *heap, unsigned long n)
{
	if (!n)
		return;
	if (heap->user)
		atomic_long_sub(n, &heap->user->locked_vm);
	atomic64_sub(n, &heap->mm->pinned_vm);
	atomic_long_sub(n, &pya_pages_held);
}
