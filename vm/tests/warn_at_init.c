// SPDX-License-Identifier: GPL-2.0
/*
 * A module whose init warns: vm/selftest.sh loads it in place of pyalloc.ko
 * to prove that a kernel warning fails a VM run, with the warning quoted.
 */
#include <linux/bug.h>
#include <linux/module.h>

static int __init warn_at_init_init(void)
{
	WARN_ON(1);
	return 0;
}

static void __exit warn_at_init_exit(void)
{
}

module_init(warn_at_init_init);
module_exit(warn_at_init_exit);

MODULE_DESCRIPTION("Warns at init, to test the pyalloc VM runner");
MODULE_LICENSE("GPL");
