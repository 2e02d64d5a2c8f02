// SPDX-License-Identifier: GPL-2.0
/*
 * pyalloc: CPython's small-object allocator (pymalloc) as a kernel service.
 *
 * The module registers the misc device /dev/pyalloc.  Every open of it is a
 * heap (heap.c) whose blocks user space allocates and frees in batches
 * (ioctl.c, alloc.c) and reaches through one shared mapping (mmap.c).
 *
 * This file holds what is module-wide: parameters, counters, the device and
 * a small pseudo filesystem that gives each heap an inode of its own.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/log2.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pseudo_fs.h>

#include "pyalloc.h"

unsigned int pya_arena_kb = 256;
module_param_named(arena_kb, pya_arena_kb, uint, 0444);
MODULE_PARM_DESC(arena_kb,
		 "Arena size in KiB: a power of two from 4 to 4096 (default 256 = 64 pools)");

unsigned long pya_heap_limit_mb = 1024;
module_param_named(heap_limit_mb, pya_heap_limit_mb, ulong, 0644);
MODULE_PARM_DESC(heap_limit_mb,
		 "Memory limit of a new heap in MiB of pool pages (default 1024); a heap may lower its own");

unsigned long pya_window_mb = 4096;
module_param_named(window_mb, pya_window_mb, ulong, 0644);
MODULE_PARM_DESC(window_mb,
		 "Offset window of a new heap in MiB (default 4096): the span user space maps");

atomic_long_t pya_pages_held = ATOMIC_LONG_INIT(0);
atomic_t pya_heaps_open = ATOMIC_INIT(0);

static int pages_held_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&pya_pages_held));
}

static const struct kernel_param_ops pages_held_ops = {
	.get = pages_held_get,
};
module_param_cb(pages_held, &pages_held_ops, NULL, 0444);
MODULE_PARM_DESC(pages_held, "Pool pages held by all heaps (read-only)");

static int heaps_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&pya_heaps_open));
}

static const struct kernel_param_ops heaps_ops = {
	.get = heaps_get,
};
module_param_cb(heaps, &heaps_ops, NULL, 0444);
MODULE_PARM_DESC(heaps, "Open heaps (read-only)");

/*
 * Each heap needs an address_space of its own, so that unmapping an arena
 * reaches every mapping of that heap and no other.  Like DRM, take inodes
 * from an internal pseudo filesystem; it is never registered or visible.
 */
#define PYALLOC_FS_MAGIC	0x70796131	/* "pya1" */

static int pya_fs_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, PYALLOC_FS_MAGIC) ? 0 : -ENOMEM;
}

static struct file_system_type pya_fs_type = {
	.name = "pyalloc",
	.init_fs_context = pya_fs_init_fs_context,
	.kill_sb = kill_anon_super,
};

static struct vfsmount *pya_mnt;

struct inode *pya_alloc_inode(void)
{
	return alloc_anon_inode(pya_mnt->mnt_sb);
}

static const struct file_operations pya_fops = {
	.owner = THIS_MODULE,
	.open = pya_heap_open,
	.release = pya_heap_release,
	.unlocked_ioctl = pya_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = pya_mmap,
	.llseek = noop_llseek,
};

static struct miscdevice pya_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "pyalloc",
	.fops = &pya_fops,
	.mode = 0666,
};

static int __init pya_init(void)
{
	int err;

	if (!is_power_of_2(pya_arena_kb) ||
	    pya_arena_kb < PAGE_SIZE / 1024 || pya_arena_kb > 4096) {
		pr_err("arena_kb=%u: want a power of two from %lu to 4096\n",
		       pya_arena_kb, PAGE_SIZE / 1024);
		return -EINVAL;
	}
	pya_mnt = kern_mount(&pya_fs_type);
	if (IS_ERR(pya_mnt))
		return PTR_ERR(pya_mnt);
	err = misc_register(&pya_misc);
	if (err) {
		kern_unmount(pya_mnt);
		return err;
	}
	pr_info("ABI %d, pools of %lu bytes, arenas of %u KiB\n",
		PYALLOC_ABI_VERSION, PAGE_SIZE, pya_arena_kb);
	return 0;
}

static void __exit pya_exit(void)
{
	misc_deregister(&pya_misc);
	kern_unmount(pya_mnt);
}

module_init(pya_init);
module_exit(pya_exit);

MODULE_DESCRIPTION("pymalloc-style small-object allocator as a service");
MODULE_AUTHOR("The pyalloc developers");
MODULE_LICENSE("GPL");
