// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Heaps: opening and closing them, the default heap, and the table that
 * tells which heap a pointer belongs to.
 *
 * A heap is one open of /dev/pyalloc plus one MAP_SHARED mapping of its
 * whole window, so a block's address is base + the offset the kernel gave.
 * pya_free() must find the heap from the address alone: the default heap's
 * window is checked first (one subtraction and compare), then the table of
 * open heaps.  The table is read without a lock, each entry under a
 * seqlock, because a program may free blocks of one heap while another
 * thread opens or closes an unrelated one; the entry itself carries the
 * window's bounds so a reader never touches a heap that is being freed.
 * The table index doubles as the heap's slot in each thread's array of
 * magazine sets, hence the fixed PYA_MAX_HEAPS.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

pthread_mutex_t pyai_lock = PTHREAD_MUTEX_INITIALIZER;
struct pya_heap *pyai_default;
bool pyai_env_debug;

static pthread_once_t pyai_global_once = PTHREAD_ONCE_INIT;
static pthread_once_t pyai_default_once = PTHREAD_ONCE_INIT;
static int pyai_default_errno;

struct pyai_heap_ent {
	unsigned int seq;	/* odd while the entry is being rewritten */
	uintptr_t base;
	uint64_t size;
	struct pya_heap *heap;
};

static struct pyai_heap_ent pyai_table[PYA_MAX_HEAPS];
static unsigned int pyai_table_used;	/* entries ever used, grows only */

static bool env_flag(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

static void pyai_global_init_once(void)
{
	pyai_env_debug = env_flag("PYALLOC_DEBUG");
	pyai_magazine_init();
	pthread_atfork(pyai_fork_prepare, pyai_fork_parent, pyai_fork_child);
}

void pyai_global_init(void)
{
	pthread_once(&pyai_global_once, pyai_global_init_once);
}

/* Seqlock writer side; pyai_lock is held. */
static void table_set(int slot, struct pya_heap *h)
{
	struct pyai_heap_ent *e = &pyai_table[slot];

	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&e->base, h ? (uintptr_t)h->base : 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->size, h ? h->window_size : 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->heap, h, __ATOMIC_RELAXED);
	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE);
}

static struct pya_heap *table_match(unsigned int i, const void *p)
{
	struct pyai_heap_ent *e = &pyai_table[i];
	struct pya_heap *h;
	unsigned int seq;
	uintptr_t base;
	uint64_t size;

	do {
		seq = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
		base = __atomic_load_n(&e->base, __ATOMIC_RELAXED);
		size = __atomic_load_n(&e->size, __ATOMIC_RELAXED);
		h = __atomic_load_n(&e->heap, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((seq & 1) || seq != __atomic_load_n(&e->seq, __ATOMIC_RELAXED));
	return (uintptr_t)p - base < size ? h : NULL;
}

struct pya_heap *pyai_heap_of(const void *p)
{
	struct pya_heap *h = __atomic_load_n(&pyai_default, __ATOMIC_ACQUIRE);
	unsigned int i, used;

	if (h && pyai_in_window(h, p))
		return h;
	used = __atomic_load_n(&pyai_table_used, __ATOMIC_ACQUIRE);
	for (i = 0; i < used; i++) {
		h = table_match(i, p);
		if (h)
			return h;
	}
	return NULL;
}

void pyai_heap_foreach(void (*fn)(struct pya_heap *h, void *arg), void *arg)
{
	unsigned int i;

	for (i = 0; i < pyai_table_used; i++)
		if (pyai_table[i].heap)
			fn(pyai_table[i].heap, arg);
}

int pyai_heap_ioctl(struct pya_heap *h, struct pyai_counters *ctr,
		    unsigned long request, void *arg)
{
	if (ctr)
		PYAI_BUMP(ctr->ioctl_other, 1);
	else
		PYAI_ADD(h->retired.ioctl_other, 1);
	return pyai_dev_ioctl(h->fd, request, arg);
}

/* Geometry derived from the granularity; see pyai_block_class(). */
static void heap_geometry(struct pya_heap *h)
{
	unsigned int c;

	h->nclasses = PYALLOC_MAX_REQUEST >> h->shift;
	for (c = 0; c < h->nclasses; c++) {
		uint32_t size = pyai_class_size(h, c);
		uint32_t b = PYAI_MAG_BYTES / size;

		if (b > PYAI_MAG_BATCH_MAX)
			b = PYAI_MAG_BATCH_MAX;
		if (b < PYAI_MAG_BATCH_MIN)
			b = PYAI_MAG_BATCH_MIN;
		h->batch[c] = b;
		h->limit[c] = (PYAI_PAGE_SIZE / size) * size;
		h->divmagic[c] = UINT64_MAX / size + 1;
	}
}

static int heap_configure(struct pya_heap *h, unsigned int gran,
			  uint64_t limit)
{
	struct pyalloc_config cfg = { 0 };

	if (gran != PYALLOC_GRANULARITY_8)
		cfg.flags |= PYALLOC_CONFIG_GRANULARITY;
	cfg.granularity = gran;
	if (limit && limit < h->info.mem_limit) {
		cfg.flags |= PYALLOC_CONFIG_MEM_LIMIT;
		cfg.mem_limit = limit;
	}
	if (cfg.flags && pyai_heap_ioctl(h, NULL, PYALLOC_IOC_CONFIG, &cfg) < 0)
		return -1;
	/* Read the geometry back rather than assume it. */
	if (pyai_heap_ioctl(h, NULL, PYALLOC_IOC_INFO, &h->info) < 0)
		return -1;
	if (h->info.granularity != gran || h->info.pool_size != PYAI_PAGE_SIZE ||
	    h->info.max_request != PYALLOC_MAX_REQUEST) {
		errno = EPROTO;
		return -1;
	}
	h->shift = gran == 16 ? 4 : 3;
	heap_geometry(h);
	return 0;
}

static int heap_map(struct pya_heap *h)
{
	size_t table = h->window_size >> PYAI_PAGE_SHIFT;

	h->base = pyai_dev_map(h->fd, h->window_size);
	if (h->base == MAP_FAILED) {
		h->base = NULL;
		return -1;
	}
	h->page_class = mmap(NULL, table, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h->page_class == MAP_FAILED) {
		h->page_class = NULL;
		return -1;
	}
	return 0;
}

static void heap_destroy(struct pya_heap *h)
{
	if (h->page_class)
		munmap(h->page_class, h->window_size >> PYAI_PAGE_SHIFT);
	if (h->base)
		pyai_dev_unmap(h->base, h->window_size);
	if (h->fd >= 0)
		pyai_dev_close(h->fd);
	free(h);
}

/* Give @h a slot in the table, or fail with EMFILE. */
static int heap_publish(struct pya_heap *h)
{
	unsigned int i;

	pthread_mutex_lock(&pyai_lock);
	for (i = 0; i < PYA_MAX_HEAPS; i++)
		if (!pyai_table[i].heap)
			break;
	if (i == PYA_MAX_HEAPS) {
		pthread_mutex_unlock(&pyai_lock);
		errno = EMFILE;
		return -1;
	}
	h->slot = i;
	table_set(i, h);
	if (i >= pyai_table_used)
		__atomic_store_n(&pyai_table_used, i + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&pyai_lock);
	return 0;
}

static struct pya_heap *heap_open(const struct pya_heap_options *opts)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;
	struct pya_heap *h;
	int err;

	pyai_global_init();
	if (opts) {
		/* Accept older (smaller) option structs; newer ones must not
		 * ask for something we do not know. */
		if (opts->size < offsetof(struct pya_heap_options, mem_limit) +
				 sizeof(o.mem_limit) || opts->size > 4096) {
			errno = EINVAL;
			return NULL;
		}
		memcpy(&o, opts, sizeof(o));
		for (size_t i = sizeof(o); i < opts->size; i++)
			if (((const char *)opts)[i]) {
				errno = EINVAL;
				return NULL;
			}
	}
	if (o.granularity == 0)
		o.granularity = PYALLOC_GRANULARITY_8;
	if ((o.granularity != 8 && o.granularity != 16) ||
	    (o.flags & ~PYA_HEAP_DEBUG)) {
		errno = EINVAL;
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->fd = -1;
	h->slot = -1;
	h->flags = o.flags | (pyai_env_debug ? PYA_HEAP_DEBUG : 0);

	h->fd = pyai_dev_open();
	if (h->fd < 0)
		goto fail;
	if (pyai_heap_ioctl(h, NULL, PYALLOC_IOC_INFO, &h->info) < 0)
		goto fail;
	if (h->info.abi_version != PYALLOC_ABI_VERSION) {
		errno = EPROTO;
		goto fail;
	}
	if (o.mem_limit > h->info.mem_limit) {
		errno = EINVAL;
		goto fail;
	}
	if (heap_configure(h, o.granularity, o.mem_limit) < 0)
		goto fail;
	h->window_size = h->info.window_size;
	if (heap_map(h) < 0)
		goto fail;
	if (heap_publish(h) < 0)
		goto fail;
	return h;
fail:
	err = errno;
	heap_destroy(h);
	errno = err;
	return NULL;
}

pya_heap_t *pya_heap_open(const struct pya_heap_options *opts)
{
	return heap_open(opts);
}

int pya_heap_close(pya_heap_t *h)
{
	if (!h) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&pyai_lock);
	if (h->is_default || h->slot < 0 || h->slot >= PYA_MAX_HEAPS ||
	    pyai_table[h->slot].heap != h) {
		pthread_mutex_unlock(&pyai_lock);
		errno = EINVAL;
		return -1;
	}
	/* Return what every thread has cached, then forget those caches. */
	pyai_heap_detach_caches(h);
	table_set(h->slot, NULL);
	pthread_mutex_unlock(&pyai_lock);
	heap_destroy(h);
	return 0;
}

static void default_open(void)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;
	const char *g = getenv("PYALLOC_GRANULARITY");
	struct pya_heap *h;

	if (g && strcmp(g, "16") == 0)
		o.granularity = 16;
	h = heap_open(&o);
	if (!h) {
		pyai_default_errno = errno;
		return;
	}
	h->is_default = true;
	__atomic_store_n(&pyai_default, h, __ATOMIC_RELEASE);
}

struct pya_heap *pyai_default_heap(void)
{
	struct pya_heap *h = __atomic_load_n(&pyai_default, __ATOMIC_ACQUIRE);

	if (likely(h))
		return h;
	pthread_once(&pyai_default_once, default_open);
	h = __atomic_load_n(&pyai_default, __ATOMIC_ACQUIRE);
	if (!h)
		errno = pyai_default_errno;
	return h;
}

pya_heap_t *pya_default_heap(void)
{
	return pyai_default_heap();
}
