/* SPDX-License-Identifier: GPL-2.0 */
/* The benchmarks' random numbers: identical for every allocator. */
#ifndef PYABENCH_RNG_H
#define PYABENCH_RNG_H

#include <stdint.h>

/* xorshift64*: fast, and identical for every allocator. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n) without a division. */
static inline uint32_t rng_below(uint64_t *s, uint32_t n)
{
	return (uint32_t)(((rng_next(s) >> 32) * (uint64_t)n) >> 32);
}

/* Fisher-Yates: @a[0, n) in a uniformly random order. */
static inline void rng_shuffle(uint64_t *s, uint64_t *a, uint32_t n)
{
	uint32_t i, j;
	uint64_t t;

	for (i = n ? n - 1 : 0; i > 0; i--) {
		j = rng_below(s, i + 1);
		t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}

#endif /* PYABENCH_RNG_H */
