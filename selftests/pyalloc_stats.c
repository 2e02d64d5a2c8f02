// SPDX-License-Identifier: GPL-2.0
/*
 * PYALLOC_IOC_STATS and the module-wide counters: call and block counters,
 * byte totals, quantization, a random workload checked against a model of
 * what should be in use after every call, and the module's page count back
 * to where it was once a heap is closed.
 */
#include "pyalloc_util.h"

PYA_HEAP_FIXTURE(heap)

TEST_F(heap, call_counters)
{
	struct pya_kstats st;
	__u64 offs[20];

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 5, offs, NULL));
	ASSERT_EQ(0, pya_alloc(self->fd, 300, 15, offs + 5, NULL));
	ASSERT_EQ(0, pya_free(self->fd, offs, 3, NULL));
	/* Failed calls count for nothing. */
	ASSERT_EQ(-EINVAL, pya_alloc(self->fd, 0, 1, offs, NULL));
	ASSERT_EQ(-EINVAL, pya_free(self->fd, offs, 1, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(2, st.alloc_calls);
	EXPECT_EQ(1, st.free_calls);
	EXPECT_EQ(20, st.blocks_allocated);
	EXPECT_EQ(3, st.blocks_freed);
	EXPECT_EQ(2, st.cls[0].blocks_in_use);
	EXPECT_EQ(15, st.cls[300 / 8].blocks_in_use);
	EXPECT_EQ(2 * 8 + 15 * 304, st.bytes_in_use);
	EXPECT_EQ(17, pya_check_stats(&st, &self->info));
}

/* Concrete numbers for one block in each of a few classes. */
TEST_F(heap, bytes_and_quantization)
{
	static const __u32 sizes[] = { 24, 40, 96, 512, 8 };
	__u64 expect_q = 0, expect_free = 0, expect_used = 0;
	struct pya_kstats st;
	unsigned int n;
	__u64 off;

	for (n = 0; n < sizeof(sizes) / sizeof(sizes[0]); n++) {
		__u32 bs = sizes[n];

		ASSERT_EQ(0, pya_alloc(self->fd, bs, 1, &off, NULL));
		expect_q += PYA_PAGE % bs;
		expect_used += bs;
		expect_free += (PYA_PAGE / bs - 1) * bs;
	}
	/* 4096 % 24 = 16, % 40 = 16, % 96 = 64, % 512 = 0, % 8 = 0 */
	EXPECT_EQ(96, expect_q);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(expect_q, st.bytes_quantization);
	EXPECT_EQ(expect_used, st.bytes_in_use);
	EXPECT_EQ(expect_free, st.bytes_free);
	EXPECT_EQ(5, st.pages);
	EXPECT_EQ(0, st.pools_empty);
	EXPECT_EQ(1, st.arenas_current);
	EXPECT_EQ(1, st.arenas_highwater);
	EXPECT_EQ(1, st.arenas_allocated);
	EXPECT_EQ(0, st.arenas_reclaimed);
	EXPECT_EQ(5, pya_check_stats(&st, &self->info));
}

/* STATS is read-only: calling it does not change the heap. */
TEST_F(heap, stats_is_idempotent)
{
	struct pya_kstats a, b;
	__u64 offs[7];

	ASSERT_EQ(0, pya_alloc(self->fd, 77, 7, offs, NULL));
	ASSERT_EQ(0, pya_stats(self->fd, &a));
	ASSERT_EQ(0, pya_stats(self->fd, &b));
	pya_expect_stats_equal(&a, &b);
}

/* A small deterministic PRNG: runs are reproducible. */
static __u64 rnd(__u64 *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Random batches of allocations and frees, checked after every call
 * against a model of the live blocks: per-class counts, all invariants,
 * and every live block's pattern intact.
 */
TEST_F(heap, random_workload_matches_model)
{
	enum { MAXLIVE = 3000, STEPS = 400 };
	static __u64 live[MAXLIVE], batch[PYALLOC_MAX_BATCH];
	static __u32 live_bs[MAXLIVE];
	__u64 model[PYALLOC_MAX_CLASSES] = { 0 };
	unsigned int nlive = 0, step, c, i;
	struct pya_kstats st;
	__u64 seed = 0x5eed1234abcdULL;

	for (step = 0; step < STEPS; step++) {
		bool do_alloc = nlive < 64 || (nlive < MAXLIVE - 64 &&
					       rnd(&seed) % 100 < 55);

		if (do_alloc) {
			__u32 size = rnd(&seed) % 512 + 1;
			__u32 cnt = rnd(&seed) % 64 + 1, bs = 0;

			ASSERT_EQ(0, pya_alloc(self->fd, size, cnt, batch, &bs));
			ASSERT_EQ(pya_round(size, 8), bs);
			for (i = 0; i < cnt; i++) {
				ASSERT_TRUE(pya_well_placed(&self->info,
							    batch[i], bs));
				pya_fill(self->map, batch[i], bs, batch[i]);
				live[nlive] = batch[i];
				live_bs[nlive++] = bs;
			}
			model[pya_class(size, 8)] += cnt;
		} else {
			__u32 cnt = rnd(&seed) % 64 + 1;

			for (i = 0; i < cnt; i++) {
				unsigned int j = rnd(&seed) % nlive;

				ASSERT_TRUE(pya_check(self->map, live[j],
						      live_bs[j], live[j]))
					TH_LOG("step %u: block %#llx corrupted",
					       step,
					       (unsigned long long)live[j]);
				batch[i] = live[j];
				model[live_bs[j] / 8 - 1]--;
				live[j] = live[--nlive];
				live_bs[j] = live_bs[nlive];
			}
			ASSERT_EQ(0, pya_free(self->fd, batch, cnt, NULL));
		}
		ASSERT_EQ(0, pya_stats(self->fd, &st));
		for (c = 0; c < PYALLOC_MAX_CLASSES; c++) {
			ASSERT_EQ(model[c], st.cls[c].blocks_in_use)
				TH_LOG("step %u class %u", step, c);
		}
		ASSERT_EQ(nlive, pya_check_stats(&st, &self->info))
			TH_LOG("step %u", step);
	}
	for (i = 0; i < nlive; i++) {
		ASSERT_TRUE(pya_check(self->map, live[i], live_bs[i], live[i]));
	}
}

/* Closing a heap returns all its pages to the module's count. */
TEST(pages_held_back_after_close)
{
	long long held0 = pya_param("pages_held");
	long long heaps0 = pya_param("heaps");
	struct pya_kstats st;
	__u64 offs[PYALLOC_MAX_BATCH];
	unsigned int c;
	int fd;

	ASSERT_LE(0, held0);
	ASSERT_LE(0, heaps0);
	fd = pya_open();
	ASSERT_LE(0, fd);
	for (c = 0; c < 64; c += 3) {
		ASSERT_EQ(0, pya_alloc(fd, (c + 1) * 8, 100, offs, NULL));
	}
	ASSERT_EQ(0, pya_stats(fd, &st));
	ASSERT_LT(0, st.pages);
	EXPECT_EQ(held0 + (long long)st.pages, pya_param("pages_held"));
	close(fd);
	EXPECT_EQ(held0, pya_param("pages_held"));
	EXPECT_EQ(heaps0, pya_param("heaps"));
	/* With no other heap open, the module holds no page at all. */
	if (heaps0 == 0) {
		EXPECT_EQ(0, pya_param("pages_held"));
	}
}

/* Several heaps add up in pages_held; each close subtracts its own. */
TEST(pages_held_sums_heaps)
{
	long long held0 = pya_param("pages_held");
	struct pya_kstats s1, s2;
	__u64 offs[64];
	int fd1, fd2;

	ASSERT_LE(0, held0);
	fd1 = pya_open();
	fd2 = pya_open();
	ASSERT_LE(0, fd1);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, pya_alloc(fd1, 512, 64, offs, NULL));
	ASSERT_EQ(0, pya_alloc(fd2, 100, 64, offs, NULL));
	ASSERT_EQ(0, pya_stats(fd1, &s1));
	ASSERT_EQ(0, pya_stats(fd2, &s2));
	EXPECT_EQ(8, s1.pages);
	EXPECT_EQ(2, s2.pages);	/* 40 blocks of 104 per pool */
	EXPECT_EQ(held0 + 10, pya_param("pages_held"));
	close(fd1);
	EXPECT_EQ(held0 + 2, pya_param("pages_held"));
	close(fd2);
	EXPECT_EQ(held0, pya_param("pages_held"));
}

PYALLOC_TEST_MAIN
