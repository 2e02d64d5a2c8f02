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
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/device.h>
#include <linux/pseudo_fs.h>

#include "pyalloc.h"

unsigned int pya_arena_kb = 256;
module_param_named(arena_kb, pya_arena_kb, uint, 0444);
MODULE_PARM_DESC(arena_kb,
		 "Arena size in KiB: a power of two from 4 to 4096 (default 256 = 64 pools)");

/*
 * Writable parameters are validated when written, so that no heap can be
 * created with an unusable window or limit; a bad value is refused with
 * EINVAL and the old one stays.
 */
static int param_set_ulong_range(const char *val, const struct kernel_param *kp,
				 unsigned long min, unsigned long max)
{
	unsigned long v;
	int err = kstrtoul(val, 0, &v);

	if (err)
		return err;
	if (v < min || v > max)
		return -EINVAL;
	WRITE_ONCE(*(unsigned long *)kp->arg, v);
	return 0;
}

unsigned long pya_heap_limit_mb = 1024;

/* 1 MiB .. 16 TiB of pool pages per heap. */
static int heap_limit_set(const char *val, const struct kernel_param *kp)
{
	return param_set_ulong_range(val, kp, 1, PYA_MAX_WINDOW_MB);
}

static const struct kernel_param_ops heap_limit_ops = {
	.set = heap_limit_set,
	.get = param_get_ulong,
};
module_param_cb(heap_limit_mb, &heap_limit_ops, &pya_heap_limit_mb, 0644);
MODULE_PARM_DESC(heap_limit_mb,
		 "Memory limit of a new heap in MiB of pool pages (default 1024, 1..16777216); a heap may lower its own");

unsigned long pya_window_mb = 4096;

/* At least one arena (arena_kb is fixed at load), at most 2^44 bytes. */
static int window_set(const char *val, const struct kernel_param *kp)
{
	return param_set_ulong_range(val, kp,
				     DIV_ROUND_UP(pya_arena_kb, 1024),
				     PYA_MAX_WINDOW_MB);
}

static const struct kernel_param_ops window_ops = {
	.set = window_set,
	.get = param_get_ulong,
};
module_param_cb(window_mb, &window_ops, &pya_window_mb, 0644);
MODULE_PARM_DESC(window_mb,
		 "Offset window of a new heap in MiB (default 4096, one arena..16777216): the most a heap may map; a heap may ask for less");

/* 0 at load time: half of RAM, computed in pya_init(). */
unsigned long pya_total_limit_mb;

static int total_limit_set(const char *val, const struct kernel_param *kp)
{
	return param_set_ulong_range(val, kp, 1, ULONG_MAX >> 20);
}

static const struct kernel_param_ops total_limit_ops = {
	.set = total_limit_set,
	.get = param_get_ulong,
};
module_param_cb(total_limit_mb, &total_limit_ops, &pya_total_limit_mb, 0644);
MODULE_PARM_DESC(total_limit_mb,
		 "Pool pages all heaps together may hold, in MiB (default: half of RAM); binds root too");

atomic_long_t pya_pages_held = ATOMIC_LONG_INIT(0);
atomic_t pya_heaps_open = ATOMIC_INIT(0);
atomic64_t pya_forks = ATOMIC64_INIT(0);
/* Guards pya_files; outside every file and heap lock (pyalloc.h). */
DEFINE_MUTEX(pya_files_lock);
LIST_HEAD(pya_files);

static int pages_held_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&pya_pages_held));
}

static const struct kernel_param_ops pages_held_ops = {
	.get = pages_held_get,
};
module_param_cb(pages_held, &pages_held_ops, NULL, 0444);
MODULE_PARM_DESC(pages_held, "Pool pages held by all heaps (read-only)");

static int heaps_param_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&pya_heaps_open));
}

static const struct kernel_param_ops heaps_ops = {
	.get = heaps_param_get,
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
	.open = pya_file_open,
	.release = pya_file_release,
	.unlocked_ioctl = pya_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = pya_mmap,
	.llseek = noop_llseek,
	.show_fdinfo = pya_show_fdinfo,
};

/*
 * Module-wide totals, one value per file, in /sys/class/misc/pyalloc/.
 */
static ssize_t heaps_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&pya_heaps_open));
}
static DEVICE_ATTR_RO(heaps);

static ssize_t pages_held_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&pya_pages_held));
}
static DEVICE_ATTR_RO(pages_held);

static ssize_t pages_limit_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lu\n", pya_pages_limit());
}
static DEVICE_ATTR_RO(pages_limit);

static ssize_t forks_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%lld\n", atomic64_read(&pya_forks));
}
static DEVICE_ATTR_RO(forks);

static struct attribute *pya_attrs[] = {
	&dev_attr_heaps.attr,
	&dev_attr_pages_held.attr,
	&dev_attr_pages_limit.attr,
	&dev_attr_forks.attr,
	NULL,
};
ATTRIBUTE_GROUPS(pya);

static struct miscdevice pya_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "pyalloc",
	.fops = &pya_fops,
	.mode = 0666,
	.groups = pya_groups,
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
	if (!pya_total_limit_mb)
		pya_total_limit_mb = max(1UL, (totalram_pages() >> 1) >>
						(20 - PAGE_SHIFT));
	pya_mnt = kern_mount(&pya_fs_type);
	if (IS_ERR(pya_mnt))
		return PTR_ERR(pya_mnt);
	err = misc_register(&pya_misc);
	if (err) {
		kern_unmount(pya_mnt);
		return err;
	}
	pya_debugfs_init();
	pr_info("ABI %d, pools of %lu bytes, arenas of %u KiB\n",
		PYALLOC_ABI_VERSION, PAGE_SIZE, pya_arena_kb);
	return 0;
}

static void __exit pya_exit(void)
{
	pya_debugfs_exit();
	misc_deregister(&pya_misc);
	kern_unmount(pya_mnt);
}

module_init(pya_init);
module_exit(pya_exit);

MODULE_DESCRIPTION("pymalloc-style small-object allocator as a service");
MODULE_AUTHOR("The pyalloc developers");
MODULE_LICENSE("GPL");
