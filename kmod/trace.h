/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints of pyalloc (system "pyalloc"), named and laid out like the
 * kernel's kmem events (include/trace/events/kmem.h: bytes_req,
 * bytes_alloc): batches of ALLOC and FREE, arenas created and released,
 * page faults on a window, and fork copies of private heaps.  Enable them
 * in tracefs: echo 1 > /sys/kernel/tracing/events/pyalloc/enable.
 *
 * No string fields: __assign_str() changed its signature in 6.10, and a
 * fixed array of TASK_COMM_LEN, copied with memcpy as the sched events
 * do, builds the same on 6.1 and 6.12.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM pyalloc

#if !defined(_PYALLOC_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _PYALLOC_TRACE_H

#include <linux/sched.h>
#include <linux/string.h>
#include <linux/tracepoint.h>

TRACE_EVENT(pyalloc_alloc,
	TP_PROTO(u64 heap_id, u32 bytes_req, u32 bytes_alloc, u32 count,
		 int err),
	TP_ARGS(heap_id, bytes_req, bytes_alloc, count, err),
	TP_STRUCT__entry(
		__field(u64, heap_id)
		__field(u32, bytes_req)
		__field(u32, bytes_alloc)
		__field(u32, count)
		__field(int, err)
	),
	TP_fast_assign(
		__entry->heap_id = heap_id;
		__entry->bytes_req = bytes_req;
		__entry->bytes_alloc = bytes_alloc;
		__entry->count = count;
		__entry->err = err;
	),
	TP_printk("heap=%llu bytes_req=%u bytes_alloc=%u count=%u err=%d",
		  __entry->heap_id, __entry->bytes_req, __entry->bytes_alloc,
		  __entry->count, __entry->err)
);

TRACE_EVENT(pyalloc_free,
	TP_PROTO(u64 heap_id, u32 count, int err),
	TP_ARGS(heap_id, count, err),
	TP_STRUCT__entry(
		__field(u64, heap_id)
		__field(u32, count)
		__field(int, err)
	),
	TP_fast_assign(
		__entry->heap_id = heap_id;
		__entry->count = count;
		__entry->err = err;
	),
	TP_printk("heap=%llu count=%u err=%d", __entry->heap_id,
		  __entry->count, __entry->err)
);

DECLARE_EVENT_CLASS(pyalloc_arena,
	TP_PROTO(u64 heap_id, u32 index, u32 pages),
	TP_ARGS(heap_id, index, pages),
	TP_STRUCT__entry(
		__field(u64, heap_id)
		__field(u32, index)
		__field(u32, pages)
	),
	TP_fast_assign(
		__entry->heap_id = heap_id;
		__entry->index = index;
		__entry->pages = pages;
	),
	TP_printk("heap=%llu arena=%u pages=%u", __entry->heap_id,
		  __entry->index, __entry->pages)
);

DEFINE_EVENT(pyalloc_arena, pyalloc_arena_create,
	TP_PROTO(u64 heap_id, u32 index, u32 pages),
	TP_ARGS(heap_id, index, pages)
);

DEFINE_EVENT(pyalloc_arena, pyalloc_arena_release,
	TP_PROTO(u64 heap_id, u32 index, u32 pages),
	TP_ARGS(heap_id, index, pages)
);

/* Empty pools' pages given back from an arena still in use (alloc.c). */
TRACE_EVENT(pyalloc_purge,
	TP_PROTO(u64 heap_id, u64 pgoff, u32 pages),
	TP_ARGS(heap_id, pgoff, pages),
	TP_STRUCT__entry(
		__field(u64, heap_id)
		__field(u64, pgoff)
		__field(u32, pages)
	),
	TP_fast_assign(
		__entry->heap_id = heap_id;
		__entry->pgoff = pgoff;
		__entry->pages = pages;
	),
	TP_printk("heap=%llu pgoff=%llu pages=%u", __entry->heap_id,
		  __entry->pgoff, __entry->pages)
);

TRACE_EVENT(pyalloc_fault,
	TP_PROTO(u64 heap_id, unsigned long pgoff, bool mapped),
	TP_ARGS(heap_id, pgoff, mapped),
	TP_STRUCT__entry(
		__field(u64, heap_id)
		__field(unsigned long, pgoff)
		__field(bool, mapped)
	),
	TP_fast_assign(
		__entry->heap_id = heap_id;
		__entry->pgoff = pgoff;
		__entry->mapped = mapped;
	),
	TP_printk("heap=%llu pgoff=%lu %s", __entry->heap_id, __entry->pgoff,
		  __entry->mapped ? "mapped" : "SIGBUS")
);

TRACE_EVENT(pyalloc_fork,
	TP_PROTO(u64 parent_id, u64 child_id, u64 pages, int err),
	TP_ARGS(parent_id, child_id, pages, err),
	TP_STRUCT__entry(
		__field(u64, parent_id)
		__field(u64, child_id)
		__field(u64, pages)
		__field(int, err)
		__array(char, comm, TASK_COMM_LEN)
	),
	TP_fast_assign(
		__entry->parent_id = parent_id;
		__entry->child_id = child_id;
		__entry->pages = pages;
		__entry->err = err;
		memcpy(__entry->comm, current->comm, TASK_COMM_LEN);
	),
	TP_printk("parent=%llu child=%llu pages=%llu err=%d comm=%s",
		  __entry->parent_id, __entry->child_id, __entry->pages,
		  __entry->err, __entry->comm)
);

#endif /* _PYALLOC_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
