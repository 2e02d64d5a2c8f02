/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel helpers pyalloc's pure bookkeeping uses, for host builds
 * (kmod/core_env.h includes this when __KERNEL__ is not defined).
 */
#ifndef _PYALLOC_HOST_ENV_H
#define _PYALLOC_HOST_ENV_H

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define BUILD_BUG_ON(cond)	_Static_assert(!(cond), #cond)
#define U32_MAX		UINT32_MAX
#define U64_MAX		UINT64_MAX
#define min_t(type, x, y)	((type)(x) < (type)(y) ? (type)(x) : (type)(y))
#define max_t(type, x, y)	((type)(x) > (type)(y) ? (type)(x) : (type)(y))
#define array_size(n, size)	((size_t)(n) * (size_t)(size))
#define ARRAY_SIZE(arr)		(sizeof(arr) / sizeof((arr)[0]))
#define likely(x)		__builtin_expect(!!(x), 1)

#define PAGE_SHIFT	12
#define PAGE_SIZE	(1UL << PAGE_SHIFT)

#define BITS_PER_LONG		(8 * (int)sizeof(long))
#define BITS_TO_LONGS(n)	(((n) + BITS_PER_LONG - 1) / BITS_PER_LONG)

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#define struct_size(p, member, n) \
	(sizeof(*(p)) + (size_t)(n) * sizeof((p)->member[0]))
#define array_index_nospec(idx, size)	(idx)
#define ilog2(n)	(63 - __builtin_clzll((unsigned long long)(n)))

/* A broken invariant is a test failure: count it and carry on like WARN_ON. */
extern unsigned long host_warnings;
#define WARN_ON(cond) ({						\
	bool __c = (cond);						\
	if (__c) {							\
		host_warnings++;					\
		fprintf(stderr, "WARN_ON(%s) at %s:%d\n", #cond,	\
			__FILE__, __LINE__);				\
	}								\
	__c;								\
})
#define WARN_ON_ONCE(cond)	WARN_ON(cond)

#define pya_zalloc(size)	calloc(1, size)
/*
 * An allocation the caller can do without (kernel: no warning when it
 * fails); while host_try_alloc_fails is set, every one fails.
 */
extern bool host_try_alloc_fails;
#define pya_zalloc_try(size)	(host_try_alloc_fails ? NULL : calloc(1, size))
#define pya_free_mem(ptr)	free(ptr)
#define pya_cond_resched()	do { } while (0)

/* Bitmaps */
static inline void __set_bit(unsigned long nr, unsigned long *map)
{
	map[nr / BITS_PER_LONG] |= 1UL << (nr % BITS_PER_LONG);
}

static inline void __clear_bit(unsigned long nr, unsigned long *map)
{
	map[nr / BITS_PER_LONG] &= ~(1UL << (nr % BITS_PER_LONG));
}

static inline bool test_bit(unsigned long nr, const unsigned long *map)
{
	return map[nr / BITS_PER_LONG] >> (nr % BITS_PER_LONG) & 1;
}

static inline bool __test_and_clear_bit(unsigned long nr, unsigned long *map)
{
	bool was = test_bit(nr, map);

	__clear_bit(nr, map);
	return was;
}

/* The lowest set bit of @word, which is not 0. */
static inline unsigned long __ffs(unsigned long word)
{
	return (unsigned long)__builtin_ctzl(word);
}

/* The bits of a bitmap's last word that are in the map (all if full). */
#define BITMAP_LAST_WORD_MASK(nbits) (~0UL >> (-(nbits) & (BITS_PER_LONG - 1)))

static inline void bitmap_zero(unsigned long *map, unsigned long nbits)
{
	memset(map, 0, BITS_TO_LONGS(nbits) * sizeof(long));
}

/* Bit by bit: the kernel's fills whole words, with the same result. */
static inline void bitmap_set(unsigned long *map, unsigned int start,
			      unsigned int nbits)
{
	for (; nbits; nbits--, start++)
		__set_bit(start, map);
}

static inline void bitmap_copy(unsigned long *dst, const unsigned long *src,
			       unsigned long nbits)
{
	memcpy(dst, src, BITS_TO_LONGS(nbits) * sizeof(long));
}

static inline unsigned long find_next_bit(const unsigned long *map,
					  unsigned long size,
					  unsigned long start)
{
	for (; start < size; start++)
		if (test_bit(start, map))
			return start;
	return size;
}

static inline unsigned long find_first_zero_bit(const unsigned long *map,
						unsigned long size)
{
	unsigned long i;

	for (i = 0; i < size; i++)
		if (!test_bit(i, map))
			return i;
	return size;
}

/* Doubly linked lists, as <linux/list.h> */
struct list_head {
	struct list_head *next, *prev;
};

static inline void INIT_LIST_HEAD(struct list_head *l)
{
	l->next = l;
	l->prev = l;
}

static inline void __list_add(struct list_head *n, struct list_head *prev,
			      struct list_head *next)
{
	next->prev = n;
	n->next = next;
	n->prev = prev;
	prev->next = n;
}

static inline void list_add(struct list_head *n, struct list_head *head)
{
	__list_add(n, head, head->next);
}

static inline void list_add_tail(struct list_head *n, struct list_head *head)
{
	__list_add(n, head->prev, head);
}

static inline void list_del(struct list_head *e)
{
	e->next->prev = e->prev;
	e->prev->next = e->next;
	e->next = NULL;
	e->prev = NULL;
}

static inline void list_del_init(struct list_head *e)
{
	e->next->prev = e->prev;
	e->prev->next = e->next;
	INIT_LIST_HEAD(e);
}

static inline void list_move_tail(struct list_head *e, struct list_head *head)
{
	e->next->prev = e->prev;
	e->prev->next = e->next;
	list_add_tail(e, head);
}

static inline bool list_empty(const struct list_head *head)
{
	return head->next == head;
}

#define list_entry(ptr, type, member)	container_of(ptr, type, member)
#define list_first_entry(ptr, type, member) \
	list_entry((ptr)->next, type, member)
#define list_for_each_entry(pos, head, member)				\
	for (pos = list_entry((head)->next, __typeof__(*pos), member);	\
	     &pos->member != (head);					\
	     pos = list_entry(pos->member.next, __typeof__(*pos), member))
#define list_for_each_entry_safe(pos, n, head, member)			\
	for (pos = list_entry((head)->next, __typeof__(*pos), member),	\
	     n = list_entry(pos->member.next, __typeof__(*pos), member);\
	     &pos->member != (head);					\
	     pos = n, n = list_entry(n->member.next, __typeof__(*n), member))

#endif /* _PYALLOC_HOST_ENV_H */
