// SPDX-License-Identifier: GPL-2.0
/*
 * /sys/kernel/debug/pyalloc/heaps: every heap on the machine, one row each,
 * like /proc/slabinfo: a versioned header, then stable whitespace-separated
 * columns; then the per-class figures of every heap.  debugfs is root only
 * and no stable ABI; the version line says when the columns change.
 *
 * Iteration holds pya_files_lock, so files cannot open or close meanwhile,
 * and each file's lock, so its heaps cannot come or go; a heap's figures
 * come from pya_heap_snapshot(), which only tries the heap lock.
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>

#include "pyalloc.h"

static struct dentry *pya_debugfs_dir;

static void comm_no_spaces(char *comm)
{
	for (; *comm; comm++)
		if (*comm == ' ' || *comm == '\t')
			*comm = '_';
}

static void show_heap_row(struct seq_file *m, struct pya_heap *heap,
			  struct pya_heap_snap *snap, bool classes)
{
	u64 in_use = 0, free = 0;
	unsigned int c;

	pya_heap_snapshot(heap, snap);
	if (classes) {
		for (c = 0; c < snap->st.num_classes; c++) {
			const struct pyalloc_class_stats *cs = &snap->cls[c];

			if (!cs->pools)
				continue;
			seq_printf(m, "%llu %u %u %u %llu %llu\n", heap->id, c,
				   cs->block_size, cs->pools,
				   cs->blocks_in_use, cs->blocks_free);
		}
		return;
	}
	for (c = 0; c < snap->st.num_classes; c++) {
		in_use += snap->cls[c].blocks_in_use;
		free += snap->cls[c].blocks_free;
	}
	comm_no_spaces(snap->comm);
	seq_printf(m, "%llu %d %s %s %s %llu %llu %llu %llu %llu %llu %llu\n",
		   heap->id, snap->pid, snap->comm,
		   snap->st.mode == PYALLOC_MODE_PRIVATE ? "private" : "shared",
		   snap->broken ? "broken" : "ok", snap->st.pages,
		   snap->st.arenas_current, in_use, free, snap->st.bytes_in_use,
		   snap->st.bytes_free, snap->st.mem_limit);
}

static void show_all(struct seq_file *m, struct pya_heap_snap *snap,
		     bool classes)
{
	struct pya_file *pf;
	struct pya_heap *heap;

	list_for_each_entry(pf, &pya_files, all_link) {
		mutex_lock(&pf->lock);
		list_for_each_entry(heap, &pf->heaps, link)
			show_heap_row(m, heap, snap, classes);
		mutex_unlock(&pf->lock);
	}
}

static int heaps_show(struct seq_file *m, void *unused)
{
	struct pya_heap_snap *snap = kmalloc(sizeof(*snap), GFP_KERNEL);

	if (!snap)
		return -ENOMEM;
	mutex_lock(&pya_files_lock);
	seq_puts(m, "# pyalloc heaps, version 1\n");
	seq_puts(m, "# heap_id pid command mode state pages arenas blocks_in_use blocks_free bytes_in_use bytes_free limit_bytes\n");
	show_all(m, snap, false);
	seq_puts(m, "\n# pyalloc classes, version 1\n");
	seq_puts(m, "# heap_id class block_size pools blocks_in_use blocks_free\n");
	show_all(m, snap, true);
	mutex_unlock(&pya_files_lock);
	kfree(snap);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(heaps);

void pya_debugfs_init(void)
{
	/* debugfs is optional: failures leave the module working. */
	pya_debugfs_dir = debugfs_create_dir("pyalloc", NULL);
	debugfs_create_file("heaps", 0444, pya_debugfs_dir, NULL, &heaps_fops);
}

void pya_debugfs_exit(void)
{
	debugfs_remove_recursive(pya_debugfs_dir);
}
