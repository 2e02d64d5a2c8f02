// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Statistics: the kernel's figures for a heap (PYALLOC_IOC_STATS) next to
 * the library's own counters, and a table in the layout of CPython's
 * sys._debugmallocstats() (Objects/obmalloc.c, _PyObject_DebugMallocStats)
 * so that the two can be compared line by line.
 *
 * Blocks sitting in thread magazines are "in use" to the kernel but free
 * to the program; the table counts them as available, like CPython counts
 * a pool's free list, and says how many there are on a line of their own.
 */
#include <string.h>

#include "internal.h"

int pya_heap_stats(pya_heap_t *h, struct pya_stats *st)
{
	struct pyalloc_class_stats kc[PYA_MAX_CLASSES];
	struct pyalloc_stats ks;
	struct pyai_counters sum;
	uint64_t cached[PYA_MAX_CLASSES];
	unsigned int c;

	if (!st) {
		errno = EINVAL;
		return -1;
	}
	h = h ? h : pyai_default_heap();
	if (!h)
		return -1;
	memset(&ks, 0, sizeof(ks));
	memset(kc, 0, sizeof(kc));
	ks.classes = (uintptr_t)kc;
	ks.classes_count = PYA_MAX_CLASSES;
	if (pyai_heap_ioctl(h, NULL, PYALLOC_IOC_STATS, &ks) < 0)
		return -1;
	memset(st, 0, sizeof(*st));
	st->granularity = ks.granularity;
	st->num_classes = ks.num_classes;
	st->pool_size = h->info.pool_size;
	st->arena_size = h->info.arena_size;
	st->arenas_current = ks.arenas_current;
	st->arenas_highwater = ks.arenas_highwater;
	st->arenas_allocated = ks.arenas_allocated;
	st->arenas_reclaimed = ks.arenas_reclaimed;
	st->pages = ks.pages;
	st->pools_empty = ks.pools_empty;
	st->bytes_in_use = ks.bytes_in_use;
	st->bytes_free = ks.bytes_free;
	st->bytes_quantization = ks.bytes_quantization;
	st->mem_limit = ks.mem_limit;
	st->kernel_alloc_calls = ks.alloc_calls;
	st->kernel_free_calls = ks.free_calls;
	st->kernel_blocks_allocated = ks.blocks_allocated;
	st->kernel_blocks_freed = ks.blocks_freed;

	pyai_sum_counters(h, &sum, cached);
	for (c = 0; c < ks.classes_count && c < PYA_MAX_CLASSES; c++) {
		st->classes[c].block_size = kc[c].block_size;
		st->classes[c].pools = kc[c].pools;
		st->classes[c].blocks_in_use = kc[c].blocks_in_use;
		st->classes[c].blocks_free = kc[c].blocks_free;
		st->classes[c].blocks_cached = cached[c];
		st->blocks_cached += cached[c];
	}
	st->mag_hits = sum.mag_hits;
	st->mag_misses = sum.mag_misses;
	st->free_hits = sum.free_hits;
	st->free_drains = sum.free_drains;
	st->direct_ops = sum.direct_allocs + sum.direct_frees;
	st->small_allocs = sum.mag_hits + sum.mag_misses + sum.direct_allocs;
	st->small_frees = sum.free_hits + sum.free_drains + sum.direct_frees;
	st->ioctl_alloc = sum.ioctl_alloc;
	st->ioctl_free = sum.ioctl_free;
	st->ioctls = sum.ioctl_alloc + sum.ioctl_free + sum.ioctl_other;
	st->forks_dropped = sum.forks_dropped;
	st->lost_blocks = sum.lost_blocks;
	st->shared = ks.mode == PYALLOC_MODE_SHARED;
	st->heap_id = ks.heap_id;
	st->forks = ks.forks;
	pyai_large_stats(st);
	return 0;
}

/* CPython's printone(): label padded to 35 columns, '=', then the value
 * right-aligned in 21 columns with thousands separators. */
static uint64_t printone(FILE *out, const char *msg, uint64_t value)
{
	char buf[32];
	int i = sizeof(buf) - 1, k = 3;
	uint64_t v = value;

	buf[i--] = '\0';
	do {
		buf[i--] = (char)('0' + v % 10);
		v /= 10;
		if (--k == 0 && v) {
			buf[i--] = ',';
			k = 3;
		}
	} while (v);
	fprintf(out, "%-35s=%21s\n", msg, buf + i + 1);
	return value;
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static uint64_t cached_bytes(const struct pya_stats *st)
{
	uint64_t sum = 0;
	unsigned int c;

	for (c = 0; c < st->num_classes && c < PYA_MAX_CLASSES; c++)
		sum += st->classes[c].blocks_cached * st->classes[c].block_size;
	return sum;
}

int pya_heap_print_stats(pya_heap_t *h, FILE *out)
{
	struct pya_stats st;
	uint64_t total, cached, ops;
	char buf[128];
	unsigned int c;

	if (!out) {
		errno = EINVAL;
		return -1;
	}
	if (pya_heap_stats(h, &st) < 0)
		return -1;
	cached = cached_bytes(&st);

	fprintf(out, "Small block threshold = %d, in %u size classes.\n\n",
		PYALLOC_MAX_REQUEST, st.num_classes);
	fputs("class   size   num pools   blocks in use  avail blocks\n"
	      "-----   ----   ---------   -------------  ------------\n", out);
	for (c = 0; c < st.num_classes && c < PYA_MAX_CLASSES; c++) {
		const struct pya_class_stats *cs = &st.classes[c];

		if (!cs->pools && !cs->blocks_in_use)
			continue;
		fprintf(out, "%5u %6u %11u %15llu %13llu\n", c, cs->block_size,
			cs->pools,
			(unsigned long long)sub0(cs->blocks_in_use, cs->blocks_cached),
			(unsigned long long)(cs->blocks_free + cs->blocks_cached));
	}
	fputc('\n', out);
	printone(out, "# arenas allocated total", st.arenas_allocated);
	printone(out, "# arenas reclaimed", st.arenas_reclaimed);
	printone(out, "# arenas highwater mark", st.arenas_highwater);
	printone(out, "# arenas allocated current", st.arenas_current);
	snprintf(buf, sizeof(buf), "%llu arenas * %llu bytes/arena",
		 (unsigned long long)st.arenas_current,
		 (unsigned long long)st.arena_size);
	printone(out, buf, st.arenas_current * st.arena_size);
	fputc('\n', out);

	/* Where the pool pages go.  Pool headers and arena alignment cost
	 * nothing here (the metadata lives in the kernel), but the lines stay
	 * so the table reads like CPython's. */
	total = printone(out, "# bytes in allocated blocks",
			 sub0(st.bytes_in_use, cached));
	total += printone(out, "# bytes in available blocks",
			  st.bytes_free + cached);
	snprintf(buf, sizeof(buf), "%llu unused pools * %llu bytes",
		 (unsigned long long)st.pools_empty,
		 (unsigned long long)st.pool_size);
	total += printone(out, buf, st.pools_empty * st.pool_size);
	total += printone(out, "# bytes lost to pool headers", 0);
	total += printone(out, "# bytes lost to quantization",
			  st.bytes_quantization);
	total += printone(out, "# bytes lost to arena alignment", 0);
	printone(out, "Total", total);
	fputc('\n', out);

	/* The library's side: how often the kernel was asked. */
	ops = st.small_allocs + st.small_frees;
	printone(out, "# small allocations", st.small_allocs);
	printone(out, "# small frees", st.small_frees);
	printone(out, "# magazine hits", st.mag_hits + st.free_hits);
	printone(out, "# magazine misses", st.mag_misses + st.free_drains);
	printone(out, "# blocks in magazines and the depot", st.blocks_cached);
	printone(out, "# alloc ioctls", st.ioctl_alloc);
	printone(out, "# free ioctls", st.ioctl_free);
	printone(out, "# ioctls total", st.ioctls);
	snprintf(buf, sizeof(buf), "# operations per alloc/free ioctl");
	printone(out, buf, st.ioctl_alloc + st.ioctl_free ?
		 ops / (st.ioctl_alloc + st.ioctl_free) : ops);
	printone(out, "# large blocks in use", st.large_live);
	printone(out, "# bytes in large blocks", st.large_live_bytes);
	return ferror(out) ? -1 : 0;
}

int pya_print_stats(FILE *out)
{
	return pya_heap_print_stats(NULL, out);
}
