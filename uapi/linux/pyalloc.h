/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * pyalloc: CPython's small-object allocator (pymalloc) as a kernel service.
 *
 * Each open of /dev/pyalloc is an independent heap.  A heap hands out blocks
 * of 1..PYALLOC_MAX_REQUEST bytes, rounded up to a size class, as offsets in
 * one window that user space maps once with mmap(MAP_SHARED): a block's
 * address is the mapping's base plus its offset.  All allocator metadata
 * lives in kernel memory, so nothing user space writes can corrupt it and
 * every bad free is detected.
 *
 * ABI rules: only __u32/__u64 fields, user pointers as __u64, no implicit
 * padding.  Every flag and reserved field is checked (unknown bits or non-zero
 * reserved -> EINVAL).  Structs are extensible: the size encoded in the ioctl
 * number is the size user space was built with; a smaller (older) struct is
 * accepted as long as it covers the first version, a larger (newer) one as
 * long as the bytes the kernel does not know are zero (else E2BIG).
 * Unknown commands fail with ENOTTY.
 *
 * Heap modes.  A heap is shared (PYALLOC_MODE_SHARED, the default) or private
 * across fork (PYALLOC_MODE_PRIVATE), chosen with PYALLOC_IOC_CONFIG before
 * the heap's first allocation or mapping.  A shared heap is one heap for
 * every process that holds the descriptor or a mapping: after fork() parent
 * and child allocate from, free into and see the same blocks.  A private heap
 * belongs to the process (mm) that opened it; at fork() the kernel gives the
 * child its own copy, taken inside fork itself: the same blocks at the same
 * offsets, the same statistics, and its own pages holding the parent's
 * contents as of the fork, mapped at the same address.  From then on the two
 * heaps are independent: the child's ioctls on the inherited descriptor and
 * its page faults act on the child's heap only.  A process that holds a
 * private heap's descriptor but has no heap of its own in it (it received
 * the descriptor, or inherited it from a parent that had not mapped the
 * window) gets EPERM; a child whose copy could not be made (out of memory,
 * over a limit) gets EIO from every ioctl and SIGBUS from every access to the
 * window, and never touches the parent's heap.  A private heap is released
 * when its process exits or execs (with its last mapping), or with the last
 * reference to the file.
 */
#ifndef _UAPI_LINUX_PYALLOC_H
#define _UAPI_LINUX_PYALLOC_H

#include <linux/const.h>
#include <linux/ioctl.h>
#include <linux/types.h>

#define PYALLOC_ABI_VERSION	2

/* Largest request served by the device; larger objects come from the OS. */
#define PYALLOC_MAX_REQUEST	512
/* Most entries one PYALLOC_IOC_ALLOC or PYALLOC_IOC_FREE call handles. */
#define PYALLOC_MAX_BATCH	512
/* Size-class granularities a heap may use (bytes). */
#define PYALLOC_GRANULARITY_8	8
#define PYALLOC_GRANULARITY_16	16
/* Number of size classes at the finest granularity (512 / 8). */
#define PYALLOC_MAX_CLASSES	64

/* Heap modes (struct pyalloc_config.mode, pyalloc_info.mode). */
#define PYALLOC_MODE_SHARED	0
#define PYALLOC_MODE_PRIVATE	1

/*
 * Features of the running module (struct pyalloc_info.features), so that
 * user space can tell "not supported" from a zero in a zero-extended struct.
 */
#define PYALLOC_FEATURE_PRIVATE		_BITULL(0) /* PYALLOC_MODE_PRIVATE */
#define PYALLOC_FEATURE_WINDOW_SIZE	_BITULL(1) /* CONFIG of the window */
#define PYALLOC_FEATURE_TRIM		_BITULL(2) /* PYALLOC_IOC_TRIM */
#define PYALLOC_FEATURE_MEMLOCK		_BITULL(3) /* RLIMIT_MEMLOCK charged */
#define PYALLOC_FEATURE_CLASS_STATS	_BITULL(4) /* stats.classes pointer */
#define PYALLOC_FEATURE_DECAY		_BITULL(5) /* config.decay_ms */
#define PYALLOC_FEATURE_PURGE		_BITULL(6) /* trim, decay: empty pools */

/**
 * struct pyalloc_info - the allocator's geometry (PYALLOC_IOC_INFO)
 * @abi_version:     PYALLOC_ABI_VERSION of the running module
 * @pool_size:       bytes in a pool (one page)
 * @arena_size:      bytes in an arena
 * @pools_per_arena: arena_size / pool_size
 * @num_classes:     size classes of this heap (64 at granularity 8, 32 at 16)
 * @granularity:     this heap's class step in bytes (8 or 16)
 * @max_request:     PYALLOC_MAX_REQUEST
 * @max_batch:       PYALLOC_MAX_BATCH
 * @window_size:     bytes of offset space; map [0, window_size) once
 * @mem_limit:       this heap's memory limit in bytes
 * @features:        PYALLOC_FEATURE_* bits of the running module
 * @mode:            PYALLOC_MODE_SHARED or PYALLOC_MODE_PRIVATE
 * @reserved:        zero
 * @heap_id:         the heap's unique id (as in fdinfo and debugfs); a
 *                   private heap's child copy has an id of its own
 */
struct pyalloc_info {
	__u32 abi_version;
	__u32 pool_size;
	__u32 arena_size;
	__u32 pools_per_arena;
	__u32 num_classes;
	__u32 granularity;
	__u32 max_request;
	__u32 max_batch;
	__u64 window_size;
	__u64 mem_limit;
	__u64 features;
	__u32 mode;
	__u32 reserved;
	__u64 heap_id;
};

/* Fields of struct pyalloc_config to apply. */
#define PYALLOC_CONFIG_GRANULARITY	0x1U
#define PYALLOC_CONFIG_MEM_LIMIT	0x2U
#define PYALLOC_CONFIG_WINDOW_SIZE	0x4U
#define PYALLOC_CONFIG_MODE		0x8U
#define PYALLOC_CONFIG_DECAY		0x10U
#define PYALLOC_CONFIG_FLAGS		(PYALLOC_CONFIG_GRANULARITY | \
					 PYALLOC_CONFIG_MEM_LIMIT | \
					 PYALLOC_CONFIG_WINDOW_SIZE | \
					 PYALLOC_CONFIG_MODE | \
					 PYALLOC_CONFIG_DECAY)

/* The longest a heap may keep emptied arenas (struct pyalloc_config). */
#define PYALLOC_MAX_DECAY_MS		60000

/**
 * struct pyalloc_config - configure a heap (PYALLOC_IOC_CONFIG)
 * @flags:       PYALLOC_CONFIG_* bits: which of the fields below to apply
 * @granularity: 8 or 16 (else EINVAL)
 * @mem_limit:   new memory limit in bytes; may only be lowered (else EPERM)
 * @window_size: bytes of offset space: a non-zero multiple of the arena size
 *               (else EINVAL), at most the module's window_mb (else EPERM);
 *               a 32-bit process, which cannot map 4 GiB, asks for less
 * @mode:        PYALLOC_MODE_SHARED or PYALLOC_MODE_PRIVATE (else EINVAL)
 * @decay_ms:    how long emptied arenas stay, pages and mappings included,
 *               before they are given back; 0 (the default): at once but
 *               for one kept arena, as pymalloc does; at most
 *               PYALLOC_MAX_DECAY_MS (else EINVAL).  A program that
 *               allocates and frees in waves then reuses its arenas instead
 *               of having pages zeroed and faulted in again every wave, and
 *               still gets all of them back once they stayed empty this
 *               long (jemalloc's dirty_decay_ms), and with them the pages
 *               of the pools that are empty in arenas still in use;
 *               PYALLOC_IOC_TRIM gives them back at once.  May change at
 *               any time, from then on: set to 0, what is kept goes back at
 *               once; shortened, within 1.25 times the new decay.
 *
 * The granularity may only change before the heap's first allocation, the
 * window size and the mode before its first allocation or mapping (else
 * EBUSY).  Either everything requested is applied or nothing is.
 */
struct pyalloc_config {
	__u32 flags;
	__u32 granularity;
	__u64 mem_limit;
	__u64 window_size;
	__u32 mode;
	__u32 decay_ms;
};

/**
 * struct pyalloc_alloc - allocate @count blocks of one size (PYALLOC_IOC_ALLOC)
 * @size:       requested bytes, 1..PYALLOC_MAX_REQUEST (else EINVAL)
 * @count:      number of blocks, 1..PYALLOC_MAX_BATCH (else EINVAL)
 * @flags:      must be 0
 * @block_size: out: the size class the request was rounded up to
 * @offsets:    user pointer to __u64[@count]; on success, the blocks' offsets
 *
 * All or nothing: on any error (ENOMEM when the heap's memory limit or window
 * is exhausted, EFAULT for a bad @offsets) no block is allocated; @offsets
 * may then hold offsets of blocks that were given back.  Blocks are
 * aligned to the largest power of two dividing their size (at most a page).
 * Fresh pages read as zero; a reused block keeps what was last written to it.
 */
struct pyalloc_alloc {
	__u32 size;
	__u32 count;
	__u32 flags;
	__u32 block_size;
	__u64 offsets;
};

/**
 * struct pyalloc_free - free @count blocks (PYALLOC_IOC_FREE)
 * @count:       number of offsets, 1..PYALLOC_MAX_BATCH (else EINVAL)
 * @flags:       must be 0
 * @offsets:     user pointer to __u64[@count], the blocks to free
 * @error_index: out: when the call fails with EINVAL because of an entry,
 *               that entry's index; @count when the call succeeds
 * @reserved:    must be 0
 *
 * All or nothing.  Every offset must name an allocated block of this heap, at
 * the start of the block, and appear once in the batch; anything else (double
 * free, wild or misaligned offset) fails with EINVAL and frees nothing.
 */
struct pyalloc_free {
	__u32 count;
	__u32 flags;
	__u64 offsets;
	__u32 error_index;
	__u32 reserved;
};

/**
 * struct pyalloc_class_stats - one size class of a heap
 * @block_size:    bytes per block
 * @pools:         pools currently holding blocks of this class
 * @blocks_in_use: allocated blocks
 * @blocks_free:   free blocks in this class's pools
 */
struct pyalloc_class_stats {
	__u32 block_size;
	__u32 pools;
	__u64 blocks_in_use;
	__u64 blocks_free;
};

/**
 * struct pyalloc_stats - a heap's statistics (PYALLOC_IOC_STATS)
 * @granularity:        class step in bytes
 * @num_classes:        size classes of the heap
 * @arenas_current:     arenas held now
 * @arenas_highwater:   most arenas held at once
 * @arenas_allocated:   arenas allocated since the heap was opened
 * @arenas_reclaimed:   arenas released (pages returned to the kernel)
 * @pages:              pool pages held (resident in kernel memory)
 * @pools_empty:        pages of pools that hold no block ("unused pools")
 * @bytes_in_use:       bytes in allocated blocks
 * @bytes_free:         bytes in free blocks of pools in use
 * @bytes_quantization: bytes at the end of pools too small for a block
 * @mem_limit:          the heap's memory limit in bytes
 * @alloc_calls:        successful PYALLOC_IOC_ALLOC calls
 * @free_calls:         successful PYALLOC_IOC_FREE calls
 * @blocks_allocated:   blocks handed out by those calls
 * @blocks_freed:       blocks taken back by those calls
 * @mode:               PYALLOC_MODE_SHARED or PYALLOC_MODE_PRIVATE
 * @classes_count:      in: entries at @classes (may be 0); out: entries
 *                      written, min(in, @num_classes)
 * @classes:            in: user pointer to struct pyalloc_class_stats
 *                      [@classes_count], or 0 for totals only
 * @heap_id:            the heap's unique id
 * @forks:              private copies made of this heap at fork()
 *
 * The per-class table goes through a pointer and a count rather than an
 * inline array, so that totals added later do not have to follow 1.5 KiB of
 * classes, and a caller that wants totals copies 160 bytes.
 */
struct pyalloc_stats {
	__u32 granularity;
	__u32 num_classes;
	__u64 arenas_current;
	__u64 arenas_highwater;
	__u64 arenas_allocated;
	__u64 arenas_reclaimed;
	__u64 pages;
	__u64 pools_empty;
	__u64 bytes_in_use;
	__u64 bytes_free;
	__u64 bytes_quantization;
	__u64 mem_limit;
	__u64 alloc_calls;
	__u64 free_calls;
	__u64 blocks_allocated;
	__u64 blocks_freed;
	__u32 mode;
	__u32 classes_count;
	__u64 classes;
	__u64 heap_id;
	__u64 forks;
};

/**
 * struct pyalloc_trim - give empty arenas and pools back (PYALLOC_IOC_TRIM)
 * @flags:    must be 0
 * @reserved: must be 0
 * @pages:    out: pool pages returned to the kernel
 *
 * Like pymalloc, a heap keeps one entirely empty arena, pages included, so
 * that a program hovering around an arena boundary does not allocate and
 * free pages over and over.  PYALLOC_IOC_TRIM releases it now (as
 * malloc_trim() does for glibc); the next allocation that needs it starts a
 * new one.  It also gives back the page of every empty pool of the arenas
 * still in use (PYALLOC_FEATURE_PURGE): the page leaves the mapping, and
 * the pool gets a fresh zeroed page when it serves again.
 */
struct pyalloc_trim {
	__u32 flags;
	__u32 reserved;
	__u64 pages;
};

/*
 * 'Y' is free in the kernel's Documentation/userspace-api/ioctl/
 * ioctl-number.rst (ABI 1 used 0xB7, which nsfs and remoteproc own).  A
 * command is ours only if its type, number and direction are and its size is
 * one we accept (see above); anything else is ENOTTY.
 */
#define PYALLOC_IOC_MAGIC	'Y'

#define PYALLOC_IOC_INFO	_IOR(PYALLOC_IOC_MAGIC, 0x00, struct pyalloc_info)
#define PYALLOC_IOC_CONFIG	_IOW(PYALLOC_IOC_MAGIC, 0x01, struct pyalloc_config)
#define PYALLOC_IOC_ALLOC	_IOWR(PYALLOC_IOC_MAGIC, 0x02, struct pyalloc_alloc)
#define PYALLOC_IOC_FREE	_IOWR(PYALLOC_IOC_MAGIC, 0x03, struct pyalloc_free)
#define PYALLOC_IOC_STATS	_IOWR(PYALLOC_IOC_MAGIC, 0x04, struct pyalloc_stats)
#define PYALLOC_IOC_TRIM	_IOWR(PYALLOC_IOC_MAGIC, 0x05, struct pyalloc_trim)

/* Sizes of the first version of each struct: the smallest accepted. */
#define PYALLOC_INFO_SIZE_VER0		72
#define PYALLOC_CONFIG_SIZE_VER0	32
#define PYALLOC_ALLOC_SIZE_VER0		24
#define PYALLOC_FREE_SIZE_VER0		24
#define PYALLOC_STATS_SIZE_VER0		152
#define PYALLOC_TRIM_SIZE_VER0		16

#endif /* _UAPI_LINUX_PYALLOC_H */
