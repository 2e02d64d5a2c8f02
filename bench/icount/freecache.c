// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel's FREE bookkeeping (kmod/alloc.c, pool.c, arena.c) on the host,
 * over the host tests' fake backend, for cachegrind: what a FREE batch
 * costs in first-level cache misses, which an emulator cannot show.
 *
 *   freecache order|scattered [ROUNDS]
 *
 * As bench/batchbench does in the VM: 262,144 blocks of 16..128 B taken in
 * ALLOC batches of 512 (one size a batch), then given back in FREE batches
 * of 512, in the order they came or shuffled over the whole heap (some
 * 4,600 pools; nearly every block of a scattered batch in another pool).
 * bench/icount/freecache.sh runs it under cachegrind and reports the FREE
 * path's misses per block.
 */
#include "../../tests/host/fake_backend.h"
#include "../rng.h"

unsigned long host_warnings;
bool host_try_alloc_fails;

#define BLOCKS	262144
#define BATCH	512

static u64 offsets[BLOCKS];

int main(int argc, char **argv)
{
	bool scattered = argc > 1 && !strcmp(argv[1], "scattered");
	int rounds = argc > 2 ? atoi(argv[2]) : 4;
	struct fake *f = fake_new_slots(1 << 20, MAX_SLOTS);
	uint64_t rng = 42;
	u32 i, bad;

	if (argc < 2 || (!scattered && strcmp(argv[1], "order"))) {
		fprintf(stderr, "usage: freecache order|scattered [ROUNDS]\n");
		return 2;
	}
	while (rounds-- > 0) {
		for (i = 0; i < BLOCKS; i += BATCH)
			if (pya_alloc_blocks(&f->a, 16 + 16 * rng_below(&rng, 8),
					     BATCH, offsets + i)) {
				fprintf(stderr, "freecache: ALLOC failed\n");
				return 1;
			}
		if (scattered)
			rng_shuffle(&rng, offsets, BLOCKS);
		for (i = 0; i < BLOCKS; i += BATCH)
			if (pya_free_blocks(&f->a, offsets + i, BATCH, &bad)) {
				fprintf(stderr, "freecache: FREE failed\n");
				return 1;
			}
	}
	return host_warnings ? 1 : 0;
}
