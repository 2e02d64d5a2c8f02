// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * demo: allocate and free through libpyalloc, say what happened, and print
 * the heap's table in the layout of CPython's sys._debugmallocstats().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pyalloc.h>

#define NOBJ 20000

int main(void)
{
	static void *obj[NOBJ];
	struct pya_stats st;
	unsigned int seed = 42;
	size_t i, round;
	void *big;

	/* The seed's examples: 6 bytes -> an 8-byte block, 42 -> 48. */
	void *a = pya_malloc(6), *b = pya_malloc(42);

	if (!a || !b) {
		fprintf(stderr, "demo: pya_malloc: %s%s\n", strerror(errno),
			errno == ENODEV ? " (is the pyalloc module loaded?)" : "");
		return 1;
	}
	printf("pya_malloc(6)  -> %p, usable %zu bytes\n", a, pya_usable_size(a));
	printf("pya_malloc(42) -> %p, usable %zu bytes\n", b, pya_usable_size(b));
	big = pya_malloc(100000);
	printf("pya_malloc(100000) -> %p, usable %zu bytes (from the OS)\n",
	       big, pya_usable_size(big));

	/* A workload: keep NOBJ objects of random small sizes alive, replacing
	 * one at random each step, as an interpreter's short-lived objects do. */
	for (i = 0; i < NOBJ; i++)
		obj[i] = pya_malloc(1 + rand_r(&seed) % 512);
	for (round = 0; round < 200000; round++) {
		i = rand_r(&seed) % NOBJ;
		pya_free(obj[i]);
		obj[i] = pya_malloc(1 + rand_r(&seed) % 512);
		if (!obj[i]) {
			perror("demo: pya_malloc");
			return 1;
		}
		memset(obj[i], 0xab, 8);
	}
	printf("%d objects live after 200000 replace steps\n\n", NOBJ);
	pya_print_stats(stdout);

	for (i = 0; i < NOBJ; i++)
		pya_free(obj[i]);
	pya_free(a);
	pya_free(b);
	pya_free(big);
	if (pya_heap_stats(NULL, &st) == 0)
		printf("\nall freed: %llu small allocations, %llu alloc + %llu "
		       "free ioctls (%.1f operations per ioctl)\n",
		       (unsigned long long)st.small_allocs,
		       (unsigned long long)st.ioctl_alloc,
		       (unsigned long long)st.ioctl_free,
		       (double)(st.small_allocs + st.small_frees) /
		       (double)(st.ioctl_alloc + st.ioctl_free + !(st.ioctl_alloc + st.ioctl_free)));
	return 0;
}
