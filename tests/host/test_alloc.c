// SPDX-License-Identifier: GPL-2.0
/*
 * Host unit tests of pyalloc's bookkeeping (kmod/pool.c, arena.c, alloc.c),
 * built with ASan and UBSan.  The fake backend (fake_backend.h) gives pages
 * from calloc(), window slots from an array, and can fail the n-th page or
 * slot allocation to check that every failure leaves the allocator as it
 * was.
 */
#include "fake_backend.h"

unsigned long host_warnings;
bool host_try_alloc_fails;

/* alloc.c's slot table says what the backend says, slot for slot. */
static bool table_matches(struct fake *f)
{
	u32 i;

	if (f->a.table_size > MAX_SLOTS)
		return false;
	for (i = 0; i < f->a.table_size; i++)
		if (f->a.table[i] != f->slots[i])
			return false;
	return true;
}

static int passed, failed, test_failed;
#define CHECK(cond) do {						\
	if (!(cond)) {							\
		printf("#   %s:%d: CHECK(%s) failed\n", __FILE__,	\
		       __LINE__, #cond);				\
		test_failed = 1;					\
	}								\
} while (0)

static void fake_destroy(struct fake *f)
{
	CHECK(table_matches(f));
	fake_reap(f);
	pya_allocator_destroy(&f->a);
	assert(f->pages_live == 0);
	free(f);
}

/* Totals and the class table, compared with memcmp() as one. */
struct full_stats {
	struct pyalloc_stats t;
	struct pyalloc_class_stats classes[PYALLOC_MAX_CLASSES];
};

static struct full_stats full_stats_of(struct fake *f)
{
	struct full_stats st;

	memset(&st, 0, sizeof(st));
	pya_allocator_stats(&f->a, &st.t, st.classes);
	return st;
}

static struct pyalloc_stats stats_of(struct fake *f)
{
	return full_stats_of(f).t;
}

/* --- a tiny TAP harness (CHECK() is above, with fake_destroy()) --- */

static void run(const char *name, void (*fn)(void))
{
	unsigned long warn0 = host_warnings;

	test_failed = 0;
	fn();
	if (host_warnings != warn0)
		test_failed = 1;
	printf("%s %d %s\n", test_failed ? "not ok" : "ok",
	       passed + failed + 1, name);
	if (test_failed)
		failed++;
	else
		passed++;
}

/* --- tests --- */

static void test_size_classes(void)
{
	CHECK(pya_class_of(6, 3) == 0 && pya_class_size(0, 3) == 8);
	CHECK(pya_class_of(42, 3) == 5 && pya_class_size(5, 3) == 48);
	CHECK(pya_class_of(8, 3) == 0 && pya_class_of(9, 3) == 1);
	CHECK(pya_class_of(512, 3) == 63 && pya_num_classes(3) == 64);
	CHECK(pya_class_of(17, 4) == 1 && pya_class_size(1, 4) == 32);
	CHECK(pya_num_classes(4) == 32);
	CHECK(pya_blocks_per_pool(512) == 8 && pya_blocks_per_pool(8) == 512);
}

/*
 * A pool's bitmap and offset arithmetic against the obvious versions: the
 * block index without a division (pya_pool_init()'s reciprocal) for every
 * offset in the page and every class size, and a batch taken in one pass
 * over the bitmap against one lowest-free-bit search per block.
 */
static void test_pool_arithmetic(void)
{
	static struct pya_pool pool, ref;
	unsigned int seed = 7, size, in, idx;

	for (size = 8; size <= PYALLOC_MAX_REQUEST; size += 8) {
		pya_pool_init(&pool, size / 8 - 1, size);
		for (in = 0; in < PAGE_SIZE; in++) {
			bool valid = in % size == 0 && in / size < pool.nblocks;
			int err = pya_pool_block_index(&pool, in, &idx);

			CHECK(valid ? !err && idx == in / size : err == -EINVAL);
		}
	}
	for (size = 8; size <= PYALLOC_MAX_REQUEST; size += 8) {
		int round;

		pya_pool_init(&pool, size / 8 - 1, size);
		pool.pgoff = 3;
		for (round = 0; round < 20; round++) {
			u64 out[PYA_POOL_MAX_BLOCKS];
			u32 want = 1 + rand_r(&seed) % pool.nblocks, got, i;

			/* Some blocks in use, at random; every fourth round
			 * none (pya_pool_alloc_blocks() carves such a pool as
			 * a run). */
			if (round % 4 == 0) {
				bitmap_zero(pool.map, PYA_POOL_MAX_BLOCKS);
				pool.nused = 0;
			}
			for (i = 0; round % 4 && i < pool.nblocks; i++) {
				if (rand_r(&seed) % 3)
					continue;
				if (test_bit(i, pool.map))
					__clear_bit(i, pool.map), pool.nused--;
				else
					__set_bit(i, pool.map), pool.nused++;
			}
			if (pya_pool_full(&pool))
				continue;
			u32 nfree = (u32)(pool.nblocks - pool.nused);

			ref = pool;
			got = pya_pool_alloc_blocks(&pool, out, want);
			CHECK(got == (want < nfree ? want : nfree));
			for (i = 0; i < got; i++) {
				u32 b = find_first_zero_bit(ref.map, ref.nblocks);

				__set_bit(b, ref.map);
				ref.nused++;
				CHECK(out[i] == 3 * PAGE_SIZE + (u64)b * size);
			}
			CHECK(pool.nused == ref.nused);
			CHECK(!memcmp(pool.map, ref.map, sizeof(pool.map)));
		}
	}
}

static void test_alloc_layout(void)
{
	struct fake *f = fake_new(1024);
	u64 offs[PYALLOC_MAX_BATCH];
	unsigned int size;

	for (size = 1; size <= PYALLOC_MAX_REQUEST; size += 37) {
		u32 bs = pya_class_size(pya_class_of(size, 3), 3);
		u32 i, j;

		CHECK(!pya_alloc_blocks(&f->a, size, 100, offs));
		for (i = 0; i < 100; i++) {
			u32 in = offs[i] & (PAGE_SIZE - 1);

			CHECK(in % bs == 0 && in + bs <= PAGE_SIZE);
			for (j = 0; j < i; j++)
				CHECK(offs[j] != offs[i]);
		}
	}
	CHECK(stats_of(f).blocks_allocated == 100 * 14);
	fake_destroy(f);
}

static void test_free_rejects(void)
{
	struct fake *f = fake_new(1024);
	struct pyalloc_stats before, after;
	u64 a[4], b[1], bad[3];
	u32 idx;

	CHECK(!pya_alloc_blocks(&f->a, 48, 4, a));
	CHECK(!pya_alloc_blocks(&f->a, 8, 1, b));
	before = stats_of(f);

	bad[0] = a[0]; bad[1] = a[0] + 1; bad[2] = a[1];	/* misaligned */
	CHECK(pya_free_blocks(&f->a, bad, 3, &idx) == -EINVAL && idx == 1);
	bad[1] = a[1] + 8;		/* misaligned, inside a block in use */
	CHECK(pya_free_blocks(&f->a, bad, 3, &idx) == -EINVAL && idx == 1);
	bad[1] = a[0];						/* duplicate */
	CHECK(pya_free_blocks(&f->a, bad, 3, &idx) == -EINVAL && idx == 1);
	bad[1] = 31ULL << 18;					/* no arena */
	CHECK(pya_free_blocks(&f->a, bad, 2, &idx) == -EINVAL && idx == 1);
	bad[1] = 1ULL << 40;					/* off window */
	CHECK(pya_free_blocks(&f->a, bad, 2, &idx) == -EINVAL && idx == 1);
	bad[1] = a[1];
	bad[2] = a[2] + (1ULL << 32);	/* the same low 32 bits, off window */
	CHECK(pya_free_blocks(&f->a, bad, 3, &idx) == -EINVAL && idx == 2);
	bad[1] = a[3] + 48;					/* never allocated */
	CHECK(pya_free_blocks(&f->a, bad, 2, &idx) == -EINVAL && idx == 1);
	bad[1] = (a[0] & ~(PAGE_SIZE - 1)) + 3 * PAGE_SIZE;	/* uncarved pool */
	CHECK(pya_free_blocks(&f->a, bad, 2, &idx) == -EINVAL && idx == 1);
	/* 4096 % 48 = 16: the offset 4080 is 48-aligned but past the last block */
	bad[1] = (a[0] & ~(PAGE_SIZE - 1)) + 85 * 48;
	CHECK(pya_free_blocks(&f->a, bad, 2, &idx) == -EINVAL && idx == 1);
	after = stats_of(f);
	CHECK(!memcmp(&before, &after, sizeof(before)));

	CHECK(!pya_free_blocks(&f->a, a, 4, &idx) && idx == 4);
	CHECK(pya_free_blocks(&f->a, a, 1, &idx) == -EINVAL && idx == 0);
	CHECK(!pya_free_blocks(&f->a, b, 1, &idx));
	CHECK(stats_of(f).bytes_in_use == 0);
	fake_destroy(f);
}

static void test_free_then_reuse(void)
{
	struct fake *f = fake_new(1024);
	u64 a, b;
	u32 idx;

	CHECK(!pya_alloc_blocks(&f->a, 100, 1, &a));
	CHECK(!pya_free_blocks(&f->a, &a, 1, &idx));
	CHECK(!pya_alloc_blocks(&f->a, 100, 1, &b));
	CHECK(a == b);
	fake_destroy(f);
}

/* Allocate @n 512-byte blocks, 8 per pool, 512 per arena. */
static void alloc_many(struct fake *f, u64 *offs, u32 n, u32 size)
{
	u32 done = 0;

	while (done < n) {
		u32 k = n - done < PYALLOC_MAX_BATCH ? n - done : PYALLOC_MAX_BATCH;

		CHECK(!pya_alloc_blocks(&f->a, size, k, offs + done));
		done += k;
	}
}

static void free_many(struct fake *f, u64 *offs, u32 n)
{
	u32 done = 0, idx;

	while (done < n) {
		u32 k = n - done < PYALLOC_MAX_BATCH ? n - done : PYALLOC_MAX_BATCH;

		CHECK(!pya_free_blocks(&f->a, offs + done, k, &idx));
		done += k;
	}
}

/*
 * FREE batches whose blocks alternate between 20 arenas; pools empty all
 * through the batches and 19 arenas go away inside the last one, their
 * slots leaving the slot table (alloc.c) while the batch runs.  A batch
 * rejected at its last entry leaves everything as it was.
 */
static void test_free_across_arenas(void)
{
	enum { NARENAS = 20, PER = 512 };
	static u64 offs[NARENAS * PER], mixed[NARENAS * PER];
	struct fake *f = fake_new(2048);
	struct full_stats before, after;
	struct pyalloc_stats st;
	u32 i, k, idx, last = NARENAS * PER - PYALLOC_MAX_BATCH;
	u64 saved;

	alloc_many(f, offs, NARENAS * PER, 512);
	CHECK(stats_of(f).arenas_current == NARENAS);
	for (i = 0; i < PER; i++)
		for (k = 0; k < NARENAS; k++)
			mixed[i * NARENAS + k] = offs[k * PER + i];
	free_many(f, mixed, last);
	st = stats_of(f);
	CHECK(st.arenas_current == NARENAS && st.pools_empty > 0);

	before = full_stats_of(f);
	saved = mixed[NARENAS * PER - 1];
	mixed[NARENAS * PER - 1] = mixed[last + 3];	/* a duplicate */
	CHECK(pya_free_blocks(&f->a, mixed + last, PYALLOC_MAX_BATCH, &idx) ==
	      -EINVAL && idx == PYALLOC_MAX_BATCH - 1);
	after = full_stats_of(f);
	CHECK(!memcmp(&before, &after, sizeof(before)));
	mixed[NARENAS * PER - 1] = saved;

	CHECK(!pya_free_blocks(&f->a, mixed + last, PYALLOC_MAX_BATCH, &idx));
	st = stats_of(f);
	CHECK(st.arenas_current == 1 && st.arenas_reclaimed == NARENAS - 1);
	CHECK(st.bytes_in_use == 0 && st.pages == 64 && f->pages_live == 64);
	alloc_many(f, offs, PER, 512);
	CHECK(stats_of(f).arenas_current == 1);
	free_many(f, offs, PER);
	fake_destroy(f);
}

static void test_arena_release(void)
{
	struct fake *f = fake_new(1024);
	static u64 offs[3 * 512];
	struct pyalloc_stats st;

	alloc_many(f, offs, 3 * 512, 512);
	st = stats_of(f);
	CHECK(st.arenas_current == 3 && st.pages == 3 * 64);
	free_many(f, offs, 3 * 512);
	st = stats_of(f);
	/* One empty arena is kept, the others go back, unmapped first. */
	CHECK(st.arenas_current == 1 && st.arenas_reclaimed == 2);
	CHECK(st.pages == 64 && st.pools_empty == 64);
	CHECK(f->unmaps == 2 && f->unmapped_pages == 128);
	CHECK(f->pages_live == 64);
	CHECK(st.arenas_highwater == 3 && st.arenas_allocated == 3);
	/* The kept arena serves again without a new one. */
	alloc_many(f, offs, 512, 512);
	st = stats_of(f);
	CHECK(st.arenas_current == 1 && st.arenas_allocated == 3 &&
	      st.pages == 64);
	/* Trim releases nothing in use... */
	CHECK(pya_allocator_trim(&f->a) == 0);
	CHECK(stats_of(f).pages == 64);
	/* ...and the kept empty arena once everything is free. */
	free_many(f, offs, 512);
	CHECK(pya_allocator_trim(&f->a) == 64);
	st = stats_of(f);
	CHECK(st.arenas_current == 0 && st.pages == 0 && st.pools_empty == 0);
	CHECK(st.arenas_reclaimed == 3 && f->unmaps == 3 && f->pages_live == 0);
	/* And the heap works on. */
	alloc_many(f, offs, 10, 8);
	CHECK(stats_of(f).arenas_current == 1);
	fake_destroy(f);
}

/*
 * Purging: a trim gives back the page of each empty pool of an arena in use
 * (one unmap per run of neighbours), a purged pool serves again with a
 * fresh zeroed page, and a failed call that revived one purges it again.
 */
static void test_purge(void)
{
	struct fake *f = fake_new(1024);
	struct full_stats before, after;
	static u64 offs[4 * 8], more[1 + 8], failed[2 * 8];
	u32 purged_before, idx, i;
	struct pyalloc_stats st;
	struct pya_arena *ar;

	alloc_many(f, offs, 4 * 8, 512);	/* pools 0..3 of arena 0 */
	ar = f->slots[0];
	memset(ar->pools[2].page, 0xa5, PAGE_SIZE);
	free_many(f, offs + 8, 2 * 8);		/* pools 1 and 2 empty */
	st = stats_of(f);
	CHECK(st.pages == 4 && st.pools_empty == 2 && f->pages_live == 4);
	CHECK(pya_allocator_trim(&f->a) == 2);
	st = stats_of(f);
	CHECK(st.pages == 2 && st.pools_empty == 0 && f->pages_live == 2);
	CHECK(st.arenas_current == 1 && st.arenas_reclaimed == 0);
	CHECK(f->purge_unmaps == 1 && f->purge_unmapped == 2 &&
	      f->last_purge_pgoff == 1 && f->unmaps == 0);
	CHECK(ar->ncarved == 4 && ar->npurged == 2 && pools_purged(f) == 2);
	CHECK(!ar->pools[1].page && !ar->pools[2].page);
	/* Nothing more to purge; blocks of purged pools are not allocated. */
	CHECK(pya_allocator_trim(&f->a) == 0 && f->purge_unmaps == 1);
	CHECK(pya_free_blocks(&f->a, &offs[8], 1, &idx) == -EINVAL);

	/* A new pool revives a purged one before carving pool 4: zeroed. */
	CHECK(!pya_alloc_blocks(&f->a, 16, 1, more));
	CHECK(more[0] >> PAGE_SHIFT == 1 || more[0] >> PAGE_SHIFT == 2);
	CHECK(ar->ncarved == 4 && ar->npurged == 1 && f->pages_live == 3);
	for (i = 0; i < PAGE_SIZE; i++)
		if (((unsigned char *)ar->pools[more[0] >> PAGE_SHIFT].page)[i])
			break;
	CHECK(i == PAGE_SIZE);

	/* A call that revives the last purged pool, then fails to carve. */
	before = full_stats_of(f);
	purged_before = ar->npurged;
	f->fail_countdown = 2;
	CHECK(pya_alloc_blocks(&f->a, 512, 2 * 8, failed) == -ENOMEM);
	f->fail_countdown = 0;
	after = full_stats_of(f);
	CHECK(!memcmp(&before, &after, sizeof(before)));
	CHECK(ar->npurged == purged_before && f->pages_live == 3 &&
	      ar->ncarved == 4 && pools_purged(f) == purged_before);

	/* Everything freed: the arena goes back whole, purged pools too. */
	CHECK(!pya_alloc_blocks(&f->a, 512, 8, more + 1));
	CHECK(ar->npurged == 0 && f->pages_live == 4);
	free_many(f, offs, 8);
	free_many(f, offs + 3 * 8, 8);
	free_many(f, more, 1 + 8);
	CHECK(pya_allocator_trim(&f->a) == 4);
	st = stats_of(f);
	CHECK(st.arenas_current == 0 && st.pages == 0 && st.pools_empty == 0);
	CHECK(f->pages_live == 0 && pools_purged(f) == 0);
	fake_destroy(f);
}

/*
 * The decay's ticks: a pool, or an arena kept empty, goes back only once it
 * has been empty for the given number of ticks, and the tick says whether
 * anything is still kept (whether to tick again).
 */
static void test_decay_ages(void)
{
	struct fake *f = fake_new(1024);
	static u64 offs[2 * 8];

	f->a.keep_empty = UINT32_MAX;	/* as with a decay: keep them all */
	alloc_many(f, offs, 2 * 8, 512);
	free_many(f, offs + 8, 8);			/* pool 1, at tick 0 */
	CHECK(pya_allocator_decay(&f->a, 2) == 0 &&
	      pya_allocator_keeps_empty(&f->a));
	free_many(f, offs, 1);				/* pool 0 still used */
	CHECK(pya_allocator_decay(&f->a, 2) == 1 &&
	      !pya_allocator_keeps_empty(&f->a));
	CHECK(stats_of(f).pages == 1 && pools_purged(f) == 1);
	free_many(f, offs + 1, 7);			/* arena empty, tick 2 */
	CHECK(stats_of(f).arenas_current == 1);
	CHECK(pya_allocator_decay(&f->a, 2) == 0 &&
	      pya_allocator_keeps_empty(&f->a));
	CHECK(stats_of(f).arenas_current == 1 && stats_of(f).pages == 1);
	CHECK(pya_allocator_decay(&f->a, 2) == 1 &&
	      !pya_allocator_keeps_empty(&f->a));
	CHECK(stats_of(f).arenas_current == 0 && f->pages_live == 0);
	CHECK(pools_purged(f) == 0);
	fake_destroy(f);

	/*
	 * An undone ALLOC (its delivery faulted: ioctl.c) that had taken an
	 * empty pool puts it back as old as it was: purged on time.
	 */
	f = fake_new(1024);
	f->a.keep_empty = UINT32_MAX;
	alloc_many(f, offs, 2 * 8, 512);
	free_many(f, offs + 8, 8);			/* pool 1, at tick 0 */
	CHECK(pya_allocator_decay(&f->a, 3) == 0);
	CHECK(pya_allocator_decay(&f->a, 3) == 0);
	CHECK(!pya_alloc_blocks(&f->a, 512, 1, offs + 8));	/* takes pool 1 */
	pya_alloc_undo(&f->a, offs + 8, 1);
	CHECK(pya_allocator_decay(&f->a, 3) == 1 && pools_purged(f) == 1);
	free_many(f, offs, 8);
	fake_destroy(f);
}

static void test_most_used_arena_first(void)
{
	struct fake *f = fake_new(1024);
	static u64 offs[2 * 512];
	u64 extra;
	u32 idx, i;

	alloc_many(f, offs, 2 * 512, 512);
	/* Empty 40 pools of arena 0 and 10 pools of arena 1. */
	for (i = 0; i < 512; i++) {
		u64 slot = offs[i] >> 18, pool = (offs[i] >> 12) & 63;

		if ((slot == 0 && pool < 40) || (slot == 1 && pool < 10))
			CHECK(!pya_free_blocks(&f->a, &offs[i], 1, &idx));
	}
	for (i = 512; i < 1024; i++) {
		u64 slot = offs[i] >> 18, pool = (offs[i] >> 12) & 63;

		if ((slot == 0 && pool < 40) || (slot == 1 && pool < 10))
			CHECK(!pya_free_blocks(&f->a, &offs[i], 1, &idx));
	}
	/* A new pool comes from the fuller arena (1). */
	CHECK(!pya_alloc_blocks(&f->a, 16, 1, &extra));
	CHECK(extra >> 18 == 1);
	fake_destroy(f);
}

/*
 * ALLOC's slow path (ioctl.c) gives a batch back when delivering it failed
 * after the lock was dropped: other calls have run since, and a sibling
 * thread may have freed one of the blocks by guessing its offset.  The
 * blocks all go back, no warning, and the counts read as the call and one
 * FREE of what was left.
 */
static void test_give_back(void)
{
	struct fake *f = fake_new(1024);
	static u64 pre[100], offs[64], other[10];
	struct pyalloc_stats before, after;
	struct full_stats cls;
	unsigned int c = pya_class_of(48, f->a.class_shift);
	u32 idx;

	alloc_many(f, pre, 100, 48);
	before = stats_of(f);
	CHECK(!pya_alloc_blocks(&f->a, 48, 64, offs));	/* the slow path's */
	CHECK(!pya_alloc_blocks(&f->a, 48, 10, other));	/* other threads' */
	CHECK(!pya_free_blocks(&f->a, pre, 5, &idx));
	CHECK(!pya_free_blocks(&f->a, &offs[7], 1, &idx));	/* a guess */
	pya_alloc_give_back(&f->a, offs, 64);
	after = stats_of(f);
	/* A call that allocated 64 blocks and one that freed 63 of them. */
	CHECK(after.alloc_calls == before.alloc_calls + 2);
	CHECK(after.free_calls == before.free_calls + 3);
	CHECK(after.blocks_allocated == before.blocks_allocated + 64 + 10);
	CHECK(after.blocks_freed == before.blocks_freed + 5 + 1 + 63);
	cls = full_stats_of(f);
	CHECK(cls.classes[c].blocks_in_use == 100 + 10 - 5);
	/* Each given-back block is free: freeing it again is refused. */
	CHECK(pya_free_blocks(&f->a, &offs[0], 1, &idx) == -EINVAL);
	CHECK(pya_free_blocks(&f->a, &offs[63], 1, &idx) == -EINVAL);
	free_many(f, pre + 5, 95);
	free_many(f, other, 10);
	CHECK(full_stats_of(f).classes[c].blocks_in_use == 0);
	fake_destroy(f);
}

/* Fail the n-th backend allocation for every n until the call succeeds. */
static void test_failure_sweep(void)
{
	u32 sizes[] = { 8, 48, 512 };
	unsigned int s;

	for (s = 0; s < 3; s++) {
		struct fake *f = fake_new(1024);
		static u64 pre[600], offs[PYALLOC_MAX_BATCH];
		struct full_stats before, after;
		long n;
		int err;
		u32 idx;

		/* Start from a heap with a kept empty arena and some use. */
		alloc_many(f, pre, 600, 512);
		free_many(f, pre + 100, 500);
		before = full_stats_of(f);
		for (n = 1; ; n++) {
			f->fail_countdown = n;
			err = pya_alloc_blocks(&f->a, sizes[s],
					       PYALLOC_MAX_BATCH, offs);
			if (!err)
				break;
			CHECK(err == -ENOMEM);
			after = full_stats_of(f);
			CHECK(!memcmp(&before, &after, sizeof(before)));
			if (n > 10000)
				break;
		}
		CHECK(!err);
		/* 512 blocks of 512 bytes need more pools than are empty. */
		if (sizes[s] == 512)
			CHECK(n > 2);
		f->fail_countdown = 0;
		/* And the exact undo of a successful call. */
		pya_alloc_undo(&f->a, offs, PYALLOC_MAX_BATCH);
		after = full_stats_of(f);
		CHECK(!memcmp(&before, &after, sizeof(before)));
		CHECK(!pya_alloc_blocks(&f->a, sizes[s], 5, offs));
		CHECK(!pya_free_blocks(&f->a, offs, 5, &idx));
		fake_destroy(f);
	}
}

static void test_memory_limit(void)
{
	struct fake *f = fake_new(3);
	struct pyalloc_stats before, after;
	u64 offs[32], one;
	u32 idx;

	CHECK(!pya_alloc_blocks(&f->a, 512, 24, offs));	/* 3 pages */
	before = stats_of(f);
	CHECK(pya_alloc_blocks(&f->a, 512, 1, &one) == -ENOMEM);
	CHECK(pya_alloc_blocks(&f->a, 16, 1, &one) == -ENOMEM);
	after = stats_of(f);
	CHECK(!memcmp(&before, &after, sizeof(before)));
	/* An emptied pool may serve another class at the limit. */
	CHECK(!pya_free_blocks(&f->a, offs, 8, &idx));
	CHECK(!pya_alloc_blocks(&f->a, 16, 1, &one));
	CHECK(stats_of(f).pages == 3);
	fake_destroy(f);
}

static void test_granularity(void)
{
	struct fake *f = fake_new(1024);
	u64 off;

	CHECK(pya_allocator_set_granularity(&f->a, 12) == -EINVAL);
	CHECK(!pya_allocator_set_granularity(&f->a, 16));
	CHECK(f->a.nclasses == 32);
	CHECK(!pya_alloc_blocks(&f->a, 17, 1, &off));
	CHECK(off % 32 == 0);
	CHECK(full_stats_of(f).classes[1].block_size == 32);
	CHECK(pya_allocator_set_granularity(&f->a, 8) == -EBUSY);
	fake_destroy(f);
}

/* Random batches against a shadow set of live offsets. */
static void test_random_model(void)
{
	enum { LIVE_MAX = 20000 };
	struct fake *f = fake_new(1024);
	static u64 live[LIVE_MAX];
	static u32 live_size[LIVE_MAX];
	u64 offs[64];
	u32 nlive = 0, round, i, idx;
	unsigned int seed = 12345;

	for (round = 0; round < 3000; round++) {
		u32 k = rand_r(&seed) % 64 + 1;

		if (nlive + k < LIVE_MAX && rand_r(&seed) % 2) {
			u32 size = rand_r(&seed) % 512 + 1;

			CHECK(!pya_alloc_blocks(&f->a, size, k, offs));
			for (i = 0; i < k; i++) {
				live[nlive] = offs[i];
				live_size[nlive++] = size;
			}
		} else if (nlive >= k) {
			for (i = 0; i < k; i++) {
				u32 j = rand_r(&seed) % nlive;

				offs[i] = live[j];
				live[j] = live[--nlive];
				live_size[j] = live_size[nlive];
			}
			CHECK(!pya_free_blocks(&f->a, offs, k, &idx));
		}
		/* Purges now and then: pages and blocks must still add up. */
		if (round % 97 == 0)
			pya_allocator_trim(&f->a);
		if (round % 500 == 0) {
			struct pyalloc_stats st = stats_of(f);
			u64 bytes = 0;

			for (i = 0; i < nlive; i++)
				bytes += pya_class_size(pya_class_of(live_size[i], 3), 3);
			CHECK(st.bytes_in_use == bytes);
			CHECK(st.pages == f->pages_live);
			CHECK(table_matches(f));
		}
	}
	while (nlive) {
		offs[0] = live[--nlive];
		CHECK(!pya_free_blocks(&f->a, offs, 1, &idx));
	}
	CHECK(stats_of(f).arenas_current <= 1);
	CHECK(stats_of(f).bytes_in_use == 0);
	fake_destroy(f);
}

/*
 * Free @batch (@n entries, at most one call's) in one call on @f, and one
 * block at a time, last entry first, on @c, a clone of @f from before: a
 * FREE commits its runs of entries in one page backwards (alloc.c), so it
 * must leave the heap as those single frees do, lists and their order
 * included, which statistics and the next allocations of every size in
 * @sizes show.  The free calls counted differ; nothing else may.  Then
 * @bytes_after bytes must be in use.
 */
static void check_free_is_reverse_singles(struct fake *f, struct fake *c,
					  const u64 *batch, u32 n,
					  u64 bytes_after,
					  const u32 *sizes, u32 nsizes)
{
	static u64 o1[64], o2[64];
	struct full_stats sf, sc;
	u32 i, idx;

	CHECK(n <= PYALLOC_MAX_BATCH);
	CHECK(!pya_free_blocks(&f->a, batch, n, &idx));
	for (i = n; i-- > 0; )
		CHECK(!pya_free_blocks(&c->a, &batch[i], 1, &idx));
	sf = full_stats_of(f);
	sc = full_stats_of(c);
	sc.t.free_calls = sf.t.free_calls;
	CHECK(!memcmp(&sf, &sc, sizeof(sf)));
	CHECK(sf.t.bytes_in_use == bytes_after);
	for (i = 0; i < 2 * nsizes; i++) {
		CHECK(!pya_alloc_blocks(&f->a, sizes[i % nsizes], 64, o1));
		CHECK(!pya_alloc_blocks(&c->a, sizes[i % nsizes], 64, o2));
		CHECK(!memcmp(o1, o2, sizeof(o1)));
	}
}

/*
 * The batch has a full pool in three runs that empties, a full pool whose
 * first run has two blocks and that does not empty, and a pool emptied in
 * reverse order.
 */
static void test_free_runs(void)
{
	enum { PER_POOL = 4096 / 48 };		/* 85 blocks of 48 bytes */
	static u64 offs[3 * PER_POOL], batch[3 * PER_POOL], o1[1];
	static const u32 sizes[] = { 512, 48 };
	struct fake *f = fake_new(1024), *c = fake_new(1024);
	u64 *p = offs, *q = offs + PER_POOL, *r = offs + 2 * PER_POOL;
	u32 n = 0, i;

	alloc_many(f, offs, 3 * PER_POOL, 48);	/* pools P, Q, R, all full */
	CHECK(!pya_alloc_blocks(&f->a, 48, 1, o1));	/* and a fourth */
	CHECK((p[0] >> 12) != (q[0] >> 12) && (q[0] >> 12) != (r[0] >> 12));
	CHECK(!pya_allocator_clone(&c->a, &f->a));

	for (i = 0; i < 10; i++)		/* P: 10 */
		batch[n++] = p[i];
	batch[n++] = q[0];			/* Q: 2, first run */
	batch[n++] = q[1];
	for (i = 10; i < 20; i++)		/* P: 10 more */
		batch[n++] = p[i];
	for (i = PER_POOL; i-- > 0; )		/* R, all, backwards */
		batch[n++] = r[i];
	for (i = 20; i < PER_POOL; i++)		/* P: the rest */
		batch[n++] = p[i];
	for (i = 2; i < 6; i++)			/* Q: 4 more */
		batch[n++] = q[i];

	check_free_is_reverse_singles(f, c, batch, n,
				      (u64)(PER_POOL - 6 + 1) * 48, sizes, 2);
	fake_destroy(c);
	fake_destroy(f);
}

/*
 * Where the order of a batch's commits shows (check_free_is_reverse_singles):
 * which pool the next allocation takes when two full pools get a block back
 * (usedpools) or two pools empty (their arena's empty pools), and which of
 * two arenas emptied by one batch is kept.
 */
static void test_free_order(void)
{
	enum { PER_POOL = 4096 / 48, PER_ARENA = 64 * 8 };
	static u64 offs[2 * PER_ARENA], batch[2];
	static const u32 sizes[] = { 48, 512 };
	struct fake *f, *c;
	int k;

	for (k = 0; k < 3; k++) {
		f = fake_new(1024);
		c = fake_new(1024);
		if (k < 2) {
			/* Pools P and Q full of 48-byte blocks. */
			alloc_many(f, offs, 2 * PER_POOL, 48);
			batch[0] = offs[0];
			batch[1] = offs[PER_POOL];
			/* 1: every block but the batch's freed first. */
			if (k == 1) {
				free_many(f, offs + 1, PER_POOL - 1);
				free_many(f, offs + PER_POOL + 1, PER_POOL - 1);
			}
		} else {
			/* Two arenas of 512-byte blocks, one block left in each. */
			alloc_many(f, offs, 2 * PER_ARENA, 512);
			CHECK((offs[0] >> 18) != (offs[PER_ARENA] >> 18));
			batch[0] = offs[0];
			batch[1] = offs[PER_ARENA];
			free_many(f, offs + 1, PER_ARENA - 1);
			free_many(f, offs + PER_ARENA + 1, PER_ARENA - 1);
		}
		CHECK(!pya_allocator_clone(&c->a, &f->a));
		check_free_is_reverse_singles(f, c, batch, 2,
					      k ? 0 : (2 * PER_POOL - 2) * 48,
					      sizes, 2);
		fake_destroy(c);
		fake_destroy(f);
	}
}

/*
 * The slot table (alloc.c) mirrors the backend's slots and grows as higher
 * slots are used, by doubling from 64.  When it cannot grow, nothing fails:
 * the slots past its end are looked up in the backend, blocks there are
 * freed and bad offsets there rejected as anywhere else, and the next
 * growth takes those slots in.
 */
static void test_slot_table(void)
{
	enum { PER = 512, N1 = 70, N2 = 150, N3 = 160 };
	static u64 offs[N3 * PER];
	struct fake *f = fake_new_slots(N3 * 64, 200);
	struct full_stats before, after;
	u64 bad;
	u32 i, idx;

	/* 70 arenas of 512-byte blocks: the table grows to 128 slots. */
	alloc_many(f, offs, N1 * PER, 512);
	CHECK(stats_of(f).arenas_current == N1);
	CHECK(f->a.table_size == 128 && table_matches(f));

	/* Slots 128..149 while it cannot grow: looked up in the backend. */
	host_try_alloc_fails = true;
	alloc_many(f, offs + N1 * PER, (N2 - N1) * PER, 512);
	CHECK(stats_of(f).arenas_current == N2);
	CHECK(f->a.table_size == 128 && table_matches(f));
	CHECK(f->slots[N2 - 1] && (offs[N2 * PER - 1] >> 18) == N2 - 1);
	/* A block of slot 140 frees; a free one and a misaligned one don't. */
	CHECK(!pya_free_blocks(&f->a, &offs[140 * PER], 1, &idx));
	before = full_stats_of(f);
	CHECK(pya_free_blocks(&f->a, &offs[140 * PER], 1, &idx) == -EINVAL);
	bad = offs[141 * PER] + 8;
	CHECK(pya_free_blocks(&f->a, &bad, 1, &idx) == -EINVAL && idx == 0);
	bad = (u64)199 << 18;		/* a slot without an arena */
	CHECK(pya_free_blocks(&f->a, &bad, 1, &idx) == -EINVAL);
	after = full_stats_of(f);
	CHECK(!memcmp(&before, &after, sizeof(before)));
	CHECK(!pya_alloc_blocks(&f->a, 512, 1, &offs[140 * PER]));

	/* Growing again fills in what it missed, up to the window's 200. */
	host_try_alloc_fails = false;
	alloc_many(f, offs + N2 * PER, (N3 - N2) * PER, 512);
	CHECK(f->a.table_size == 200 && table_matches(f));
	CHECK(f->a.table[N2 - 1] == f->slots[N2 - 1] && f->slots[N2 - 1]);

	/* Arenas that go leave it; the one kept stays. */
	free_many(f, offs, N3 * PER);
	CHECK(stats_of(f).arenas_current == 1 && table_matches(f));
	CHECK(pya_allocator_trim(&f->a) == 64);
	CHECK(stats_of(f).arenas_current == 0 && table_matches(f));
	for (i = 0; i < f->a.table_size; i++)
		CHECK(!f->a.table[i]);
	fake_destroy(f);

	/*
	 * With retirement, as in the module: a retired slot leaves the table
	 * at once, stays reserved while its arena waits to be reaped (a new
	 * arena goes elsewhere), and serves again once reaped.
	 */
	f = fake_new_ops(N3 * 64, 200, &fake_retire_ops);
	alloc_many(f, offs, 4 * PER, 512);
	/* Arenas 1..3 empty: the first is kept, the other two retire. */
	free_many(f, offs + PER, 3 * PER);
	CHECK(f->slots[1] && f->retired[2] && f->retired[3] && !f->slots[2]);
	CHECK(table_matches(f) && !f->a.table[2] && !f->a.table[3]);
	bad = offs[2 * PER];		/* a block of a retired arena */
	CHECK(pya_free_blocks(&f->a, &bad, 1, &idx) == -EINVAL && idx == 0);
	alloc_many(f, offs + PER, 3 * PER, 512);
	CHECK(f->slots[4] && f->slots[5] && !f->slots[2] && table_matches(f));
	CHECK(fake_reap(f) == 2 && table_matches(f));
	alloc_many(f, offs + 4 * PER, PER, 512);
	CHECK(f->slots[2] && f->a.table[2] == f->slots[2]);
	free_many(f, offs, 5 * PER);
	CHECK(table_matches(f));
	fake_destroy(f);
}

/*
 * A fork copy: after random use, the clone has the same statistics, the
 * same blocks (freeing every live offset works in both), the same page
 * contents, and makes the same choices afterwards.  Every failure point of
 * the copy leaves the original untouched and the partial copy freeable.
 */
static void test_clone(void)
{
	enum { LIVE_MAX = 4000 };
	struct fake *f = fake_new(1024), *c;
	static u64 live[LIVE_MAX];
	struct full_stats before, after;
	u64 offs[64], o1[64], o2[64];
	u32 nlive = 0, round, i, idx;
	unsigned int seed = 777;
	long n;
	int err;

	for (round = 0; round < 600; round++) {
		u32 k = rand_r(&seed) % 64 + 1;

		if (nlive + k < LIVE_MAX && rand_r(&seed) % 3) {
			CHECK(!pya_alloc_blocks(&f->a, rand_r(&seed) % 512 + 1,
						k, offs));
			for (i = 0; i < k; i++)
				live[nlive++] = offs[i];
		} else if (nlive >= k) {
			for (i = 0; i < k; i++) {
				u32 j = rand_r(&seed) % nlive;

				offs[i] = live[j];
				live[j] = live[--nlive];
			}
			CHECK(!pya_free_blocks(&f->a, offs, k, &idx));
		}
		/* Purged pools, some revived since, are copied too. */
		if (round == 300 || round == 590)
			pya_allocator_trim(&f->a);
	}
	CHECK(pools_purged(f) > 0);
	/* Mark every page so the copy of contents can be checked. */
	for (i = 0; i < MAX_SLOTS; i++) {
		struct pya_arena *ar = f->slots[i];
		u32 p;

		for (p = 0; ar && p < ar->ncarved; p++)
			if (ar->pools[p].page)	/* not purged */
				memset(ar->pools[p].page,
				       (int)(i * 64 + p) & 0xff, 16);
	}
	before = full_stats_of(f);

	for (n = 1; ; n++) {
		c = fake_new(1024);
		c->fail_countdown = n;
		err = pya_allocator_clone(&c->a, &f->a);
		if (!err)
			break;
		CHECK(err == -ENOMEM);
		fake_destroy(c);	/* frees a partial copy, checks pages */
		after = full_stats_of(f);
		CHECK(!memcmp(&before, &after, sizeof(before)));
		if (n > 100000)
			break;
	}
	CHECK(!err);
	c->fail_countdown = 0;
	CHECK(table_matches(c) && c->a.table_size == f->a.table_size);
	{
		struct full_stats cs = full_stats_of(c);

		CHECK(!memcmp(&before, &cs, sizeof(before)));
	}
	CHECK(c->pages_live == f->pages_live);
	for (i = 0; i < MAX_SLOTS; i++) {
		struct pya_arena *ar = f->slots[i], *cr = c->slots[i];
		u32 p;

		CHECK(!ar == !cr);
		CHECK(!ar || !cr || (cr->ncarved == ar->ncarved &&
				     cr->npurged == ar->npurged));
		for (p = 0; ar && cr && p < ar->ncarved; p++) {
			if (!ar->pools[p].page) {
				CHECK(!cr->pools[p].page);
				continue;
			}
			CHECK(cr->pools[p].page != ar->pools[p].page);
			CHECK(!memcmp(cr->pools[p].page, ar->pools[p].page,
				      PAGE_SIZE));
		}
	}
	/* Same choices from now on. */
	for (round = 0; round < 20; round++) {
		u32 size = rand_r(&seed) % 512 + 1;

		CHECK(!pya_alloc_blocks(&f->a, size, 64, o1));
		CHECK(!pya_alloc_blocks(&c->a, size, 64, o2));
		CHECK(!memcmp(o1, o2, sizeof(o1)));
	}
	/* Independent: the original's live blocks free in the copy too. */
	for (i = 0; i < nlive; i++) {
		CHECK(!pya_free_blocks(&c->a, &live[i], 1, &idx));
		CHECK(!pya_free_blocks(&f->a, &live[i], 1, &idx));
	}
	CHECK(pya_free_blocks(&c->a, &live[0], 1, &idx) == -EINVAL ||
	      !nlive);
	fake_destroy(c);
	fake_destroy(f);
}

int main(void)
{
	/* The plan goes last (TAP allows it there): no count to keep in
	 * step with the list below. */
	printf("TAP version 13\n");
	run("size_classes", test_size_classes);
	run("pool_arithmetic", test_pool_arithmetic);
	run("alloc_layout", test_alloc_layout);
	run("free_rejects", test_free_rejects);
	run("free_then_reuse", test_free_then_reuse);
	run("arena_release", test_arena_release);
	run("free_across_arenas", test_free_across_arenas);
	run("purge", test_purge);
	run("decay_ages", test_decay_ages);
	run("most_used_arena_first", test_most_used_arena_first);
	run("failure_sweep", test_failure_sweep);
	run("give_back", test_give_back);
	run("memory_limit", test_memory_limit);
	run("granularity", test_granularity);
	run("random_model", test_random_model);
	run("free_runs", test_free_runs);
	run("free_order", test_free_order);
	run("slot_table", test_slot_table);
	run("clone", test_clone);
	printf("1..%d\n", passed + failed);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
