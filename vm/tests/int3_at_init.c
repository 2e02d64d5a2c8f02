// SPDX-License-Identifier: GPL-2.0
/*
 * A module whose init executes a breakpoint: the kernel dies of
 * "Oops: int3" outside pyalloc, as it does when QEMU's multi-threaded TCG
 * races the kernel's live code patching.  vm/selftest.sh loads it in place
 * of pyalloc.ko to prove that vm/run.sh runs such a run once more, says
 * so, and still fails it when the trap comes back.
 */
#include <linux/module.h>

static int __init int3_at_init_init(void)
{
	asm volatile("int3");
	return 0;
}

static void __exit int3_at_init_exit(void)
{
}

module_init(int3_at_init_init);
module_exit(int3_at_init_exit);

MODULE_DESCRIPTION("Traps at init, to test the pyalloc VM runner");
MODULE_LICENSE("GPL");
