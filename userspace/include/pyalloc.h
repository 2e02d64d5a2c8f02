/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libpyalloc: a malloc-shaped API over /dev/pyalloc, CPython's small-object
 * allocator (pymalloc) run as a kernel service.
 *
 * Requests of at most 512 bytes are served by the device in size classes of
 * 8 (default) or 16 bytes, through per-thread magazines that talk to the
 * kernel in batches.  Larger requests are mapped straight from the OS, as
 * CPython does.  See userspace/README.md for the full contract: magazine
 * bounds, fork(), debug mode and what happens on an invalid free.
 *
 * Every function that can fail returns NULL (or -1) and sets errno:
 *   ENOMEM  out of memory, or the heap's memory limit was reached
 *   ENODEV  /dev/pyalloc does not exist (module not loaded)
 *   EINVAL  a bad argument (alignment, option, handle)
 *   EMFILE  too many heaps open at once (PYA_MAX_HEAPS)
 *
 * pya_free(NULL) does nothing.  Passing pya_free(), pya_realloc() or
 * pya_usable_size() a pointer the library did not hand out prints
 * "pya_free(): invalid pointer 0x..." on stderr and calls abort(), as
 * glibc's free() does.
 */
#ifndef PYALLOC_H
#define PYALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PYA_API __attribute__((visibility("default")))
#define PYA_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define PYA_API
#define PYA_MALLOC_ATTR
#endif

/* Requests above this many bytes bypass the device. */
#define PYA_SMALL_MAX		512
/* Most size classes a heap can have (at granularity 8). */
#define PYA_MAX_CLASSES		64
/* Most heaps (the default one included) open at the same time. */
#define PYA_MAX_HEAPS		64

/* An explicit heap: one open of /dev/pyalloc. */
typedef struct pya_heap pya_heap_t;

/* pya_heap_options.flags */
/* Debug mode: no magazines, every allocation and free is its own ioctl, so
 * the kernel checks each free when it happens (double and invalid frees
 * abort at the call site). */
#define PYA_HEAP_DEBUG		(1U << 0)
/* Share the heap with forked children (PYALLOC_MODE_SHARED): parent and
 * child then allocate from, free into and see the same blocks.  Without it
 * a heap is private across fork, like malloc's: the child gets its own copy
 * of every block, taken by the kernel at the instant of fork(). */
#define PYA_HEAP_SHARED		(1U << 1)
/* Emptied arenas go back to the kernel at once (see decay_ms below). */
#define PYA_HEAP_NO_DECAY	(1U << 2)

/**
 * struct pya_heap_options - how to open a heap
 * @size:        sizeof(struct pya_heap_options); lets the struct grow
 * @flags:       PYA_HEAP_* bits
 * @granularity: size-class step, 8 or 16 bytes; 0 means 8
 * @mem_limit:   bytes of device memory the heap may hold; 0 keeps the
 *               module's limit, which can only be lowered (higher: EINVAL)
 * @decay_ms:    how long arenas that became empty stay mapped, pages and
 *               all, for the program's next wave of allocations (like
 *               jemalloc's dirty_decay_ms); 0 means PYA_DECAY_DEFAULT_MS.
 *               PYA_HEAP_NO_DECAY gives them back at once instead (all but
 *               one, pymalloc's policy).  pya_heap_trim() gives every
 *               empty arena back at any time.  Up to 60000; a module
 *               without the decay (PYALLOC_FEATURE_DECAY) ignores it.
 * @reserved:    0 (EINVAL otherwise)
 */
struct pya_heap_options {
	size_t size;
	unsigned int flags;
	unsigned int granularity;
	uint64_t mem_limit;
	unsigned int decay_ms;
	unsigned int reserved;	/* 0 */
};

#define PYA_HEAP_OPTIONS_INIT { sizeof(struct pya_heap_options), 0, 0, 0, 0, 0 }

/* Emptied arenas stay this long by default (PYALLOC_DECAY_MS overrides it
 * for the default heap and the drop-in malloc). */
#define PYA_DECAY_DEFAULT_MS	500
#define PYA_DECAY_MAX_MS	60000

/* The default heap: malloc-shaped calls, opened at first use. */
PYA_API PYA_MALLOC_ATTR void *pya_malloc(size_t size);
PYA_API PYA_MALLOC_ATTR void *pya_calloc(size_t nmemb, size_t size);
PYA_API void *pya_realloc(void *ptr, size_t size);
PYA_API void pya_free(void *ptr);
PYA_API size_t pya_usable_size(void *ptr);
PYA_API PYA_MALLOC_ATTR void *pya_aligned_alloc(size_t alignment, size_t size);

/* The default heap itself (opening it if needed), or NULL + errno. */
PYA_API pya_heap_t *pya_default_heap(void);

/* Explicit heaps.  @opts may be NULL for the defaults. */
PYA_API pya_heap_t *pya_heap_open(const struct pya_heap_options *opts);
/* Returns every block of the heap to the kernel at once; the caller must
 * make sure no thread uses the heap or any of its blocks any more.
 * Closing the default heap fails with EINVAL. */
PYA_API int pya_heap_close(pya_heap_t *heap);

PYA_API PYA_MALLOC_ATTR void *pya_heap_malloc(pya_heap_t *heap, size_t size);
PYA_API PYA_MALLOC_ATTR void *pya_heap_calloc(pya_heap_t *heap, size_t nmemb,
					       size_t size);
PYA_API void *pya_heap_realloc(pya_heap_t *heap, void *ptr, size_t size);
/* @ptr must come from @heap (or be a large block, or NULL); else abort. */
PYA_API void pya_heap_free(pya_heap_t *heap, void *ptr);
PYA_API PYA_MALLOC_ATTR void *pya_heap_aligned_alloc(pya_heap_t *heap,
						      size_t alignment,
						      size_t size);

/* Return the calling thread's cached blocks of @heap (NULL: the default
 * heap) to the kernel.  Never needed for correctness. */
PYA_API int pya_heap_flush(pya_heap_t *heap);

/* malloc_trim() for @heap (NULL: the default heap): flush the calling
 * thread's cached blocks, then have the kernel release the entirely empty
 * arena it keeps to avoid thrashing.  0, or -1 + errno. */
PYA_API int pya_heap_trim(pya_heap_t *heap);

/**
 * struct pya_class_stats - one size class
 * @block_size:    bytes per block
 * @pools:         pools (pages) holding blocks of this class (kernel)
 * @blocks_in_use: blocks the kernel has handed out (includes @blocks_cached)
 * @blocks_free:   free blocks in this class's pools (kernel)
 * @blocks_cached: blocks sitting in the magazines of live threads and in
 *                the heap's depot (library)
 */
struct pya_class_stats {
	uint32_t block_size;
	uint32_t pools;
	uint64_t blocks_in_use;
	uint64_t blocks_free;
	uint64_t blocks_cached;
};

/**
 * struct pya_stats - a heap's figures: the kernel's, then the library's
 *
 * Kernel (PYALLOC_IOC_STATS), see uapi/linux/pyalloc.h for each field.
 * Library counters cover every thread that used the heap, live or exited:
 * @small_allocs/@small_frees:  device-served allocations and frees
 * @mag_hits:    allocations served from a magazine without a syscall
 * @mag_misses:  allocations that had to refill a magazine
 * @free_hits:   frees absorbed by a magazine without a syscall
 * @free_drains: frees that had to drain a full magazine
 * @direct_ops:  operations sent to the kernel one by one (debug mode, a
 *               thread that is exiting)
 * @ioctl_alloc/@ioctl_free: PYALLOC_IOC_ALLOC / _FREE calls made
 * @ioctls:      every ioctl the library issued on this heap
 * @forks_dropped: blocks dropped from inherited magazines after fork()
 *               (shared heaps only: a private heap's child keeps them)
 * @large_*:     allocations above PYA_SMALL_MAX, process-wide
 * @shared:      1 for a PYA_HEAP_SHARED heap, 0 for a private one
 * @heap_id:     the kernel's id of the heap (a forked child's private copy
 *               has an id of its own)
 * @forks:       private copies the kernel made of this heap at fork()
 * @lost_blocks: blocks freed after the heap became unusable (its
 *               descriptor closed by the program, or a child whose copy
 *               failed), dropped rather than returned
 */
struct pya_stats {
	/* kernel */
	uint32_t granularity;
	uint32_t num_classes;
	uint64_t pool_size;
	uint64_t arena_size;
	uint64_t arenas_current;
	uint64_t arenas_highwater;
	uint64_t arenas_allocated;
	uint64_t arenas_reclaimed;
	uint64_t pages;
	uint64_t pools_empty;
	uint64_t bytes_in_use;
	uint64_t bytes_free;
	uint64_t bytes_quantization;
	uint64_t mem_limit;
	uint64_t kernel_alloc_calls;
	uint64_t kernel_free_calls;
	uint64_t kernel_blocks_allocated;
	uint64_t kernel_blocks_freed;
	struct pya_class_stats classes[PYA_MAX_CLASSES];
	/* library */
	uint64_t small_allocs;
	uint64_t small_frees;
	uint64_t mag_hits;
	uint64_t mag_misses;
	uint64_t free_hits;
	uint64_t free_drains;
	uint64_t direct_ops;
	uint64_t ioctl_alloc;
	uint64_t ioctl_free;
	uint64_t ioctls;
	uint64_t blocks_cached;
	uint64_t forks_dropped;
	uint64_t large_allocs;
	uint64_t large_frees;
	uint64_t large_live;
	uint64_t large_live_bytes;
	uint32_t shared;
	uint32_t reserved;
	uint64_t heap_id;
	uint64_t forks;
	uint64_t lost_blocks;
};

/* Fill @st for @heap (NULL: the default heap).  0, or -1 + errno. */
PYA_API int pya_heap_stats(pya_heap_t *heap, struct pya_stats *st);
/* Print @heap's table in the layout of CPython's sys._debugmallocstats(). */
PYA_API int pya_heap_print_stats(pya_heap_t *heap, FILE *out);
/* The same for the default heap. */
PYA_API int pya_print_stats(FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* PYALLOC_H */
