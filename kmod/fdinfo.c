// SPDX-License-Identifier: GPL-2.0
/*
 * /proc/<pid>/fdinfo/<fd> of a /dev/pyalloc descriptor: who holds what.
 *
 * One "key:\tvalue" per line, in the manner of the kernel's DRM usage
 * statistics (Documentation/gpu/drm-usage-stats.rst), readable by whoever
 * may ptrace the process.  File-level keys come first; then one group per
 * heap of the file, each starting with pyalloc-heap-id.  A shared file has
 * one heap.  A private file has one per process that has a heap in it, and
 * since a forked child shares the parent's open file, both processes'
 * fdinfo list both groups: pyalloc-owner-pid tells whose each is.
 *
 * Locking: the file lock and each heap lock are only tried (as io_uring's
 * fdinfo does), so that reading fdinfo can never deadlock against a heap
 * operation, whatever the reader itself holds.
 */
#include <linux/delay.h>
#include <linux/seq_file.h>

#include "pyalloc.h"

static const char *mode_name(u32 mode)
{
	return mode == PYALLOC_MODE_PRIVATE ? "private" : "shared";
}

static void show_heap(struct seq_file *m, struct pya_heap *heap)
{
	struct pya_heap_snap *snap = kmalloc(sizeof(*snap), GFP_KERNEL);
	u64 in_use = 0, free = 0;
	unsigned int c;

	seq_printf(m, "pyalloc-heap-id:\t%llu\n", heap->id);
	if (!snap)
		return;
	pya_heap_snapshot(heap, snap);
	for (c = 0; c < snap->st.num_classes; c++) {
		in_use += snap->cls[c].blocks_in_use;
		free += snap->cls[c].blocks_free;
	}
	seq_printf(m, "pyalloc-owner-pid:\t%d\n", snap->pid);
	seq_printf(m, "pyalloc-owner-comm:\t%s\n", snap->comm);
	seq_printf(m, "pyalloc-state:\t%s\n", snap->broken ? "broken" : "ok");
	seq_printf(m, "pyalloc-pages:\t%llu\n", snap->st.pages);
	seq_printf(m, "pyalloc-arenas:\t%llu\n", snap->st.arenas_current);
	seq_printf(m, "pyalloc-bytes-in-use:\t%llu\n", snap->st.bytes_in_use);
	seq_printf(m, "pyalloc-bytes-free:\t%llu\n", snap->st.bytes_free);
	seq_printf(m, "pyalloc-blocks-in-use:\t%llu\n", in_use);
	seq_printf(m, "pyalloc-blocks-free:\t%llu\n", free);
	seq_printf(m, "pyalloc-limit-bytes:\t%llu\n", snap->st.mem_limit);
	seq_printf(m, "pyalloc-alloc-ioctls:\t%llu\n", snap->st.alloc_calls);
	seq_printf(m, "pyalloc-free-ioctls:\t%llu\n", snap->st.free_calls);
	seq_printf(m, "pyalloc-forks:\t%llu\n", snap->st.forks);
	kfree(snap);
}

void pya_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct pya_file *pf = file->private_data;
	struct pya_heap *heap, *first;
	int tries;

	for (tries = 0; !mutex_trylock(&pf->lock); tries++) {
		if (tries == 10) {
			seq_puts(m, "pyalloc-busy:\t1\n");
			return;
		}
		usleep_range(100, 200);
	}
	first = list_first_entry_or_null(&pf->heaps, struct pya_heap, link);
	seq_printf(m, "pyalloc-mode:\t%s\n", mode_name(pf->mode));
	if (first) {
		seq_printf(m, "pyalloc-granularity:\t%u\n",
			   1U << READ_ONCE(first->alloc.class_shift));
		seq_printf(m, "pyalloc-window-bytes:\t%llu\n",
			   pya_window_size(&first->alloc));
	}
	seq_printf(m, "pyalloc-heaps:\t%u\n", pf->nheaps);
	list_for_each_entry(heap, &pf->heaps, link)
		show_heap(m, heap);
	mutex_unlock(&pf->lock);
}
