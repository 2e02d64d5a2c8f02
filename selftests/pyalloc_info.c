// SPDX-License-Identifier: GPL-2.0
/*
 * PYALLOC_IOC_INFO and the initial PYALLOC_IOC_STATS of a heap: the geometry
 * the contract promises and its agreement with the module parameters.
 */
#include "pyalloc_util.h"

PYA_HEAP_FIXTURE(heap)

TEST_F(heap, geometry)
{
	const struct pyalloc_info *i = &self->info;

	EXPECT_EQ(PYALLOC_ABI_VERSION, i->abi_version);
	EXPECT_EQ(PYA_PAGE, i->pool_size);
	EXPECT_EQ((__u32)sysconf(_SC_PAGESIZE), i->pool_size);
	ASSERT_NE(0, i->arena_size);
	EXPECT_EQ(0, i->arena_size % i->pool_size);
	EXPECT_EQ(i->arena_size / i->pool_size, i->pools_per_arena);
	EXPECT_EQ(0, i->arena_size & (i->arena_size - 1))
		TH_LOG("arena size %u is not a power of two", i->arena_size);
	EXPECT_EQ(PYALLOC_MAX_CLASSES, i->num_classes);
	EXPECT_EQ(PYALLOC_GRANULARITY_8, i->granularity);
	EXPECT_EQ(PYALLOC_MAX_REQUEST, i->max_request);
	EXPECT_EQ(PYALLOC_MAX_BATCH, i->max_batch);
	EXPECT_GE(i->window_size, i->arena_size);
	EXPECT_EQ(0, i->window_size % i->arena_size);
	EXPECT_NE(0, i->mem_limit);
}

/* arena_kb (load time, default 256) decides the arena size. */
TEST_F(heap, arena_size_matches_arena_kb)
{
	long long kb = pya_param("arena_kb");

	if (kb < 0)
		SKIP(return, "arena_kb is not readable in sysfs");
	EXPECT_EQ((__u64)kb * 1024, self->info.arena_size);
}

/* New heaps take their window and limit from window_mb and heap_limit_mb. */
TEST_F(heap, window_and_limit_match_parameters)
{
	long long window_mb = pya_param("window_mb");
	long long limit_mb = pya_param("heap_limit_mb");

	ASSERT_LE(0, window_mb);
	ASSERT_LE(0, limit_mb);
	EXPECT_EQ((__u64)window_mb << 20, self->info.window_size);
	EXPECT_EQ((__u64)limit_mb << 20, self->info.mem_limit);
}

/* INFO is repeatable and does not disturb the heap. */
TEST_F(heap, info_is_stable)
{
	struct pyalloc_info again;
	struct pya_kstats a, b;

	ASSERT_EQ(0, pya_stats(self->fd, &a));
	ASSERT_EQ(0, pya_info(self->fd, &again));
	EXPECT_EQ(0, memcmp(&self->info, &again, sizeof(again)));
	ASSERT_EQ(0, pya_stats(self->fd, &b));
	pya_expect_stats_equal(&a, &b);
}

TEST_F(heap, fresh_stats_are_empty)
{
	struct pya_kstats st;
	unsigned int c;

	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(8, st.granularity);
	EXPECT_EQ(64, st.num_classes);
	EXPECT_EQ(0, st.arenas_current);
	EXPECT_EQ(0, st.arenas_highwater);
	EXPECT_EQ(0, st.arenas_allocated);
	EXPECT_EQ(0, st.arenas_reclaimed);
	EXPECT_EQ(0, st.pages);
	EXPECT_EQ(0, st.pools_empty);
	EXPECT_EQ(0, st.bytes_in_use);
	EXPECT_EQ(0, st.bytes_free);
	EXPECT_EQ(0, st.bytes_quantization);
	EXPECT_EQ(self->info.mem_limit, st.mem_limit);
	EXPECT_EQ(0, st.alloc_calls);
	EXPECT_EQ(0, st.free_calls);
	EXPECT_EQ(0, st.blocks_allocated);
	EXPECT_EQ(0, st.blocks_freed);
	for (c = 0; c < PYALLOC_MAX_CLASSES; c++) {
		EXPECT_EQ((c + 1) * 8, st.cls[c].block_size);
		EXPECT_EQ(0, st.cls[c].pools);
		EXPECT_EQ(0, st.cls[c].blocks_in_use);
		EXPECT_EQ(0, st.cls[c].blocks_free);
	}
	pya_check_stats(&st, &self->info);
}

/* Granularity 16: 32 classes of 16..512 bytes, the rest of the table zero. */
TEST_F(heap, granularity_16_geometry)
{
	struct pya_kstats st;
	struct pyalloc_info info;
	unsigned int c;

	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_GRANULARITY, 16, 0));
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(16, info.granularity);
	EXPECT_EQ(32, info.num_classes);
	EXPECT_EQ(self->info.arena_size, info.arena_size);
	EXPECT_EQ(self->info.window_size, info.window_size);
	EXPECT_EQ(self->info.mem_limit, info.mem_limit);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(16, st.granularity);
	EXPECT_EQ(32, st.num_classes);
	for (c = 0; c < 32; c++) {
		EXPECT_EQ((c + 1) * 16, st.cls[c].block_size);
	}
	for (; c < PYALLOC_MAX_CLASSES; c++) {
		EXPECT_EQ(0, st.cls[c].block_size);
	}
	pya_check_stats(&st, &info);
}

/* Each open is a heap of its own, with its own granularity. */
TEST_F(heap, granularity_is_per_heap)
{
	struct pyalloc_info other;
	int fd2 = pya_open();

	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_GRANULARITY, 16, 0));
	ASSERT_EQ(0, pya_info(fd2, &other));
	EXPECT_EQ(8, other.granularity);
	EXPECT_EQ(64, other.num_classes);
	close(fd2);
}

TEST(sysfs_counts_open_heaps)
{
	long long before = pya_param("heaps");
	int fd1, fd2;

	ASSERT_LE(0, before);
	fd1 = pya_open();
	ASSERT_LE(0, fd1);
	EXPECT_EQ(before + 1, pya_param("heaps"));
	fd2 = pya_open();
	ASSERT_LE(0, fd2);
	EXPECT_EQ(before + 2, pya_param("heaps"));
	close(fd1);
	EXPECT_EQ(before + 1, pya_param("heaps"));
	close(fd2);
	EXPECT_EQ(before, pya_param("heaps"));
}

/* The read-only counters are really read-only. */
TEST(sysfs_counters_read_only)
{
	static const char *const names[] = { "pages_held", "heaps" };
	unsigned int n;

	if (geteuid() != 0)
		SKIP(return, "needs root to prove write permission is absent");
	for (n = 0; n < 2; n++) {
		long long v = pya_param(names[n]);

		ASSERT_LE(0, v) TH_LOG("%s unreadable", names[n]);
		EXPECT_NE(0, pya_set_param(names[n], v + 1000))
			TH_LOG("%s accepted a write", names[n]);
		EXPECT_EQ(v, pya_param(names[n]));
	}
}

PYALLOC_TEST_MAIN
