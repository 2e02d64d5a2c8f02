// SPDX-License-Identifier: GPL-2.0
/*
 * PYALLOC_IOC_CONFIG: granularity (8 or 16, before the first allocation
 * only), memory limit (may only be lowered), unknown flags, and the
 * all-or-nothing rule.  Every rejection is tested on its own with otherwise
 * valid input and must leave the heap exactly as it was.
 */
#include "pyalloc_util.h"

PYA_HEAP_FIXTURE(heap)

/* A rejected CONFIG changes neither INFO nor STATS. */
static void expect_config_rejected(struct __test_metadata *_metadata, int fd,
				   struct pyalloc_config *c, int err)
{
	struct pyalloc_info i0, i1;
	struct pya_kstats s0, s1;

	ASSERT_EQ(0, pya_info(fd, &i0));
	ASSERT_EQ(0, pya_stats(fd, &s0));
	EXPECT_EQ(-err, pya_ioctl(fd, PYALLOC_IOC_CONFIG, c))
		TH_LOG("flags %#x granularity %u mem_limit %llu",
		       c->flags, c->granularity,
		       (unsigned long long)c->mem_limit);
	ASSERT_EQ(0, pya_info(fd, &i1));
	ASSERT_EQ(0, pya_stats(fd, &s1));
	EXPECT_EQ(0, memcmp(&i0, &i1, sizeof(i0)));
	pya_expect_stats_equal(&s0, &s1);
}

TEST_F(heap, granularity_8_accepted)
{
	struct pyalloc_info info;

	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_GRANULARITY, 8, 0));
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(8, info.granularity);
	EXPECT_EQ(64, info.num_classes);
}

/* 16 and back to 8: allowed any number of times before the first alloc. */
TEST_F(heap, granularity_switch_back_before_alloc)
{
	struct pyalloc_info info;

	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_GRANULARITY, 16, 0));
	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_GRANULARITY, 8, 0));
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(8, info.granularity);
	EXPECT_EQ(64, info.num_classes);
}

TEST_F(heap, granularity_invalid_values)
{
	static const __u32 bad[] = { 0, 1, 4, 12, 24, 32, 64, 4096,
				     0x80000008, 0xffffffff };
	unsigned int n;

	for (n = 0; n < sizeof(bad) / sizeof(bad[0]); n++) {
		struct pyalloc_config c = {
			.flags = PYALLOC_CONFIG_GRANULARITY,
			.granularity = bad[n],
		};

		expect_config_rejected(_metadata, self->fd, &c, EINVAL);
	}
}

TEST_F(heap, granularity_after_alloc_ebusy)
{
	struct pyalloc_config c = {
		.flags = PYALLOC_CONFIG_GRANULARITY,
		.granularity = 16,
	};
	__u64 off;

	ASSERT_EQ(0, pya_alloc(self->fd, 24, 1, &off, NULL));
	expect_config_rejected(_metadata, self->fd, &c, EBUSY);
	/* Setting the current value is a change of granularity too late. */
	c.granularity = 8;
	expect_config_rejected(_metadata, self->fd, &c, EBUSY);
}

/* "Only before the heap's first allocation": freeing it all is no reset. */
TEST_F(heap, granularity_after_alloc_and_free_ebusy)
{
	struct pyalloc_config c = {
		.flags = PYALLOC_CONFIG_GRANULARITY,
		.granularity = 16,
	};
	__u64 off;

	ASSERT_EQ(0, pya_alloc(self->fd, 24, 1, &off, NULL));
	ASSERT_EQ(0, pya_free(self->fd, &off, 1, NULL));
	expect_config_rejected(_metadata, self->fd, &c, EBUSY);
}

/* A failed allocation is not a first allocation. */
TEST_F(heap, granularity_after_failed_alloc_accepted)
{
	__u64 off;

	ASSERT_EQ(-EINVAL, pya_alloc(self->fd, 0, 1, &off, NULL));
	ASSERT_EQ(-EINVAL, pya_alloc(self->fd, 513, 1, &off, NULL));
	EXPECT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_GRANULARITY, 16, 0));
}

TEST_F(heap, unknown_flags_einval)
{
	unsigned int bit;

	for (bit = 0; bit < 32; bit++) {
		struct pyalloc_config c = {
			.flags = 1U << bit,
			.granularity = 16,
			.mem_limit = self->info.mem_limit / 2,
		};

		if (c.flags & PYALLOC_CONFIG_FLAGS)
			continue;
		expect_config_rejected(_metadata, self->fd, &c, EINVAL);
		/* Mixed with a valid flag: still nothing applied. */
		c.flags |= PYALLOC_CONFIG_GRANULARITY;
		expect_config_rejected(_metadata, self->fd, &c, EINVAL);
	}
}

TEST_F(heap, mem_limit_lowered)
{
	struct pya_kstats st;
	struct pyalloc_info info;
	__u64 limit = self->info.mem_limit / 2;

	ASSERT_NE(0, limit);
	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_MEM_LIMIT, 0, limit));
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(limit, info.mem_limit);
	ASSERT_EQ(0, pya_stats(self->fd, &st));
	EXPECT_EQ(limit, st.mem_limit);
	/* Only the limit changed. */
	EXPECT_EQ(self->info.granularity, info.granularity);
	EXPECT_EQ(self->info.window_size, info.window_size);
	/* Lowering again works; the new value sticks. */
	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_MEM_LIMIT, 0,
				4 * PYA_PAGE));
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(4 * PYA_PAGE, info.mem_limit);
}

TEST_F(heap, mem_limit_raise_eperm)
{
	struct pyalloc_config c = {
		.flags = PYALLOC_CONFIG_MEM_LIMIT,
		.mem_limit = self->info.mem_limit + PYA_PAGE,
	};

	expect_config_rejected(_metadata, self->fd, &c, EPERM);
	c.mem_limit = ~0ULL;
	expect_config_rejected(_metadata, self->fd, &c, EPERM);
	/* After lowering, going back up to the old default is raising too. */
	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_MEM_LIMIT, 0,
				self->info.mem_limit / 2));
	c.mem_limit = self->info.mem_limit;
	expect_config_rejected(_metadata, self->fd, &c, EPERM);
}

/* Both fields requested, one invalid: neither is applied. */
TEST_F(heap, all_or_nothing_bad_limit)
{
	struct pyalloc_config c = {
		.flags = PYALLOC_CONFIG_GRANULARITY | PYALLOC_CONFIG_MEM_LIMIT,
		.granularity = 16,
		.mem_limit = self->info.mem_limit + PYA_PAGE,
	};

	expect_config_rejected(_metadata, self->fd, &c, EPERM);
}

TEST_F(heap, all_or_nothing_bad_granularity)
{
	struct pyalloc_config c = {
		.flags = PYALLOC_CONFIG_GRANULARITY | PYALLOC_CONFIG_MEM_LIMIT,
		.granularity = 12,
		.mem_limit = self->info.mem_limit / 2,
	};

	expect_config_rejected(_metadata, self->fd, &c, EINVAL);
}

TEST_F(heap, all_or_nothing_busy_granularity)
{
	struct pyalloc_config c = {
		.flags = PYALLOC_CONFIG_GRANULARITY | PYALLOC_CONFIG_MEM_LIMIT,
		.granularity = 16,
		.mem_limit = self->info.mem_limit / 2,
	};
	__u64 off;

	ASSERT_EQ(0, pya_alloc(self->fd, 8, 1, &off, NULL));
	expect_config_rejected(_metadata, self->fd, &c, EBUSY);
}

TEST_F(heap, both_fields_applied)
{
	struct pyalloc_info info;

	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_GRANULARITY |
				PYALLOC_CONFIG_MEM_LIMIT, 16,
				self->info.mem_limit / 4));
	ASSERT_EQ(0, pya_info(self->fd, &info));
	EXPECT_EQ(16, info.granularity);
	EXPECT_EQ(32, info.num_classes);
	EXPECT_EQ(self->info.mem_limit / 4, info.mem_limit);
}

/* The limit of one heap does not touch another heap. */
TEST_F(heap, mem_limit_is_per_heap)
{
	struct pyalloc_info other;
	int fd2;

	ASSERT_EQ(0, pya_config(self->fd, PYALLOC_CONFIG_MEM_LIMIT, 0,
				8 * PYA_PAGE));
	fd2 = pya_open();
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, pya_info(fd2, &other));
	EXPECT_EQ(self->info.mem_limit, other.mem_limit);
	close(fd2);
}

PYALLOC_TEST_MAIN
