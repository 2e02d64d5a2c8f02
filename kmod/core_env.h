/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The environment of pyalloc's pure bookkeeping (pool.c, arena.c, alloc.c).
 *
 * That code manages size classes, pool bitmaps and arena order without
 * touching pages, locks or user memory, so it builds both into the module and
 * into host unit tests run under ASan/UBSan.  In the kernel this header pulls
 * in the real kernel headers; on the host tests/host/host_env.h provides the
 * few kernel helpers the bookkeeping uses.
 */
#ifndef _PYALLOC_CORE_ENV_H
#define _PYALLOC_CORE_ENV_H

#ifdef __KERNEL__
#include <linux/bitmap.h>
#include <linux/bitops.h>
#include <linux/build_bug.h>
#include <linux/bug.h>
#include <linux/errno.h>
#include <linux/list.h>
#include <linux/log2.h>
#include <linux/math.h>
#include <linux/nospec.h>
#include <linux/overflow.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/types.h>
#include <asm/page.h>

#define pya_zalloc(size)	kvzalloc(size, GFP_KERNEL_ACCOUNT)
/*
 * An allocation the caller can do without: it may fail rather than invoke
 * the OOM killer, and does so without a warning.
 */
#define pya_zalloc_try(size) \
	kvzalloc(size, GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN)
#define pya_free_mem(ptr)	kvfree(ptr)
/* Long loops over a heap's arenas give the CPU up now and then. */
#define pya_cond_resched()	cond_resched()
#else
#include "host_env.h"
#endif

#include <uapi/linux/pyalloc.h>

#endif /* _PYALLOC_CORE_ENV_H */
