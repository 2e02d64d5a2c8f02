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
 *
 * Modes.  A heap is private across fork by default (PYALLOC_MODE_PRIVATE:
 * the kernel gives a forked child its own copy of every block, at the
 * instant of fork), as a malloc must be; PYA_HEAP_SHARED asks for the
 * kernel's shared mode, where parent and child use one heap.  The page
 * class table follows the heap: MAP_PRIVATE for a private heap, so the
 * child's copy of the table describes the child's copy of the heap, and
 * MAP_SHARED for a shared one.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

pthread_mutex_t pyai_lock = PTHREAD_MUTEX_INITIALIZER;
struct pya_heap *pyai_default;
bool pyai_env_debug;
bool pyai_verbose;

static pthread_once_t pyai_global_once = PTHREAD_ONCE_INIT;
static pthread_once_t pyai_default_once = PTHREAD_ONCE_INIT;
static int pyai_default_errno;

/*
 * The process the library's state belongs to.  The atfork child handler
 * updates it; a child created without the handlers (the raw fork system
 * call, _Fork(), clone()) still holds the parent's pid here, and
 * pyai_lock_take() notices.  Negative while a thread repairs the state.
 */
static pid_t pyai_pid;

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
	pyai_verbose = env_flag("PYALLOC_VERBOSE");
	pyai_set_pid();
	pyai_magazine_init();
	pthread_atfork(pyai_fork_prepare, pyai_fork_parent, pyai_fork_child);
}

void pyai_global_init(void)
{
	pthread_once(&pyai_global_once, pyai_global_init_once);
}

/* The atfork child handler: this process owns the state now. */
void pyai_set_pid(void)
{
	__atomic_store_n(&pyai_pid, getpid(), __ATOMIC_RELEASE);
}

/*
 * Take pyai_lock.  Only slow paths do (a thread's first use of a heap,
 * thread exit, heap open and close, statistics), so they can afford one
 * getpid() to check that the state is this process's.  A child forked
 * without the atfork handlers may have inherited the lock held by a thread
 * that does not exist in it: the first thread of the child to get here
 * re-initialises the lock and forgets the other threads (see
 * pyai_after_raw_fork()); threads that arrive meanwhile wait.  The fast
 * paths never take the lock, so they need no such check.  A vfork() child
 * must not allocate (it shares the parent's memory), as everywhere.
 */
void pyai_lock_take(void)
{
	pid_t me = getpid(), seen;

	for (;;) {
		seen = __atomic_load_n(&pyai_pid, __ATOMIC_ACQUIRE);
		if (seen == me || seen == 0)
			break;
		if (seen != -me &&
		    __atomic_compare_exchange_n(&pyai_pid, &seen, -me, false,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			pthread_mutex_init(&pyai_lock, NULL);
			pthread_mutex_lock(&pyai_lock);
			pyai_after_raw_fork();
			__atomic_store_n(&pyai_pid, me, __ATOMIC_RELEASE);
			return;
		}
		sched_yield();
	}
	pthread_mutex_lock(&pyai_lock);
}

/*
 * A spinlock of the library's that stays taken (a depot's) may be held by
 * a thread that does not exist here, in a child forked without the atfork
 * handlers: the repair of pyai_lock_take() resets those locks too.
 */
void pyai_repair_if_forked(void)
{
	if (getpid() != __atomic_load_n(&pyai_pid, __ATOMIC_ACQUIRE)) {
		pyai_lock_take();
		pyai_lock_release();
	}
}

void pyai_lock_release(void)
{
	pthread_mutex_unlock(&pyai_lock);
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

/*
 * Mark @h unusable for the reason @err (see struct pya_heap.lost); said
 * once on stderr when PYALLOC_VERBOSE asks for it (the drop-in malloc).
 */
void pyai_heap_lose(struct pya_heap *h, int err)
{
	int zero = 0;

	/* A heap whose window faults: this thread's fast paths keep off it
	 * (the fork handler does it for the forking thread, new tcaches are
	 * made without a window). */
	if (err == EIO || err == EPERM)
		pyai_tcache_lost(h);
	if (__atomic_compare_exchange_n(&h->lost, &zero, err, false,
					__ATOMIC_RELAXED, __ATOMIC_RELAXED) &&
	    pyai_verbose)
		pyai_say("pyalloc[%d]: the heap on descriptor %d is unusable: %s",
			 (int)getpid(), h->fd,
			 err == EBADF ? "the program closed or replaced its descriptor" :
			 err == EIO ? "the kernel could not copy it for this forked child" :
			 err == EPERM ? "this process has no heap of its own in it" :
			 "device error");
}

/*
 * Is h->fd still our heap?  A program that closes every descriptor it does
 * not know, or dup2()s over one, must not have our ioctls acted on by some
 * other file.  The command numbers see to most of it: they carry a magic
 * no other driver uses ('Y', Documentation/userspace-api/ioctl/
 * ioctl-number.rst), so any other file refuses them (ENOTTY), and a reply
 * that does not look like pyalloc's is fatal (kernel_alloc()).  So a heap with
 * PYAI_HEAP_CHECK_FD checks its descriptor only when an ioctl fails,
 * before reading anything into the failure: fstat() compares the device
 * and inode, and a heap that fails is lost (EBADF).  That is one system
 * call per refill or drain instead of two.
 */
static int heap_fd_is_ours(struct pya_heap *h)
{
	struct stat st;

	return !(h->flags & PYAI_HEAP_CHECK_FD) ||
	       (fstat(h->fd, &st) == 0 && st.st_dev == h->fd_dev &&
		st.st_ino == h->fd_ino && st.st_rdev == h->fd_rdev);
}

/* 0, or -1 with errno when @h is lost (struct pya_heap.lost). */
int pyai_heap_usable(struct pya_heap *h)
{
	int lost = __atomic_load_n(&h->lost, __ATOMIC_RELAXED);

	if (unlikely(lost)) {
		errno = lost;
		return -1;
	}
	return 0;
}

/* An ioctl on @h's descriptor; a failure first checks the descriptor. */
int pyai_heap_xioctl(struct pya_heap *h, unsigned long request, void *arg)
{
	int err;

	if (likely(pyai_dev_ioctl(h->fd, request, arg) == 0))
		return 0;
	err = errno;
	if (!heap_fd_is_ours(h)) {
		pyai_heap_lose(h, EBADF);
		err = EBADF;
	}
	errno = err;
	return -1;
}

int pyai_heap_ioctl(struct pya_heap *h, struct pyai_counters *ctr,
		    unsigned long request, void *arg)
{
	if (pyai_heap_usable(h) < 0)
		return -1;
	if (ctr)
		PYAI_BUMP(ctr->ioctl_other, 1);
	else
		PYAI_ADD(h->retired.ioctl_other, 1);
	return pyai_heap_xioctl(h, request, arg);
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
		h->maxcap[c] = 2 * b;
		while (2 * h->maxcap[c] <= PYALLOC_MAX_BATCH &&
		       2 * h->maxcap[c] <= PYAI_MAG_STREAK_BYTES / size)
			h->maxcap[c] *= 2;
		h->limit[c] = (PYAI_PAGE_SIZE / size) * size;
		h->divmagic[c] = UINT64_MAX / size + 1;
		/* A NULL guard word below each slot array (struct
		 * pyai_mag): the tcache's mapping comes zeroed. */
		h->slots_off[c] = h->slots_total + 1;
		h->slots_total += 1 + h->maxcap[c];
	}
}

static int heap_configure(struct pya_heap *h, unsigned int gran,
			  uint64_t limit, unsigned int decay_ms)
{
	struct pyalloc_config cfg = { 0 };
	uint32_t mode = h->private_mode ? PYALLOC_MODE_PRIVATE :
					  PYALLOC_MODE_SHARED;

	if (gran != PYALLOC_GRANULARITY_8)
		cfg.flags |= PYALLOC_CONFIG_GRANULARITY;
	cfg.granularity = gran;
	if (limit && limit < h->info.mem_limit) {
		cfg.flags |= PYALLOC_CONFIG_MEM_LIMIT;
		cfg.mem_limit = limit;
	}
	if (h->private_mode) {
		/* A module that cannot copy a heap at fork must not be used
		 * as if it could: the child would share the parent's blocks. */
		if (!(h->info.features & PYALLOC_FEATURE_PRIVATE)) {
			errno = EOPNOTSUPP;
			return -1;
		}
		cfg.flags |= PYALLOC_CONFIG_MODE;
		cfg.mode = mode;
	}
	/* A module from before the decay releases emptied arenas at once. */
	if (decay_ms && (h->info.features & PYALLOC_FEATURE_DECAY)) {
		cfg.flags |= PYALLOC_CONFIG_DECAY;
		cfg.decay_ms = decay_ms;
	}
	if (cfg.flags && pyai_heap_ioctl(h, NULL, PYALLOC_IOC_CONFIG, &cfg) < 0)
		return -1;
	/* Read the geometry back rather than assume it. */
	if (pyai_heap_ioctl(h, NULL, PYALLOC_IOC_INFO, &h->info) < 0)
		return -1;
	if (h->info.granularity != gran || h->info.pool_size != PYAI_PAGE_SIZE ||
	    h->info.max_request != PYALLOC_MAX_REQUEST || h->info.mode != mode ||
	    h->info.max_batch != PYALLOC_MAX_BATCH ||
	    h->info.window_size < PYAI_PAGE_SIZE ||
	    /* Whole pages: the page-class table and the refill's window
	     * check, once a page (magazine.c), count on it. */
	    h->info.window_size & (PYAI_PAGE_SIZE - 1)) {
		errno = EPROTO;
		return -1;
	}
	h->shift = gran == 16 ? 4 : 3;
	heap_geometry(h);
	return pyai_depot_init(h);
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
			     (h->private_mode ? MAP_PRIVATE : MAP_SHARED) |
			     MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h->page_class == MAP_FAILED) {
		h->page_class = NULL;
		return -1;
	}
	return 0;
}

static void heap_destroy(struct pya_heap *h)
{
	pyai_depot_destroy(h);
	if (h->page_class)
		munmap(h->page_class, h->window_size >> PYAI_PAGE_SHIFT);
	if (h->base)
		pyai_dev_unmap(h->base, h->window_size);
	if (h->fd >= 0)
		pyai_dev_close(h->fd);
	pyai_meta_free(h, sizeof(*h));
}

/*
 * PYAI_HEAP_CHECK_FD: move the descriptor out of the way of programs that
 * dup2() onto low numbers or close ranges of them (shells keep theirs at
 * 10 and up, bash at 255): to 1000 and up when the descriptor limit
 * allows, else into the top quarter below the limit.  Stays O_CLOEXEC, so
 * an exec()ed program never inherits it.  Then remember what it is.
 */
static int heap_own_fd(struct pya_heap *h)
{
	struct rlimit rl;
	struct stat st;
	long lo = 1000;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur <= 2048)
		lo = (long)(rl.rlim_cur * 3 / 4);
	if (lo > h->fd)
		h->fd = pyai_dev_move_fd(h->fd, (int)lo);
	if (fstat(h->fd, &st) < 0)
		return -1;
	h->fd_dev = st.st_dev;
	h->fd_ino = st.st_ino;
	h->fd_rdev = st.st_rdev;
	return 0;
}

/* Give @h a slot in the table, or fail with EMFILE. */
static int heap_publish(struct pya_heap *h)
{
	unsigned int i;

	pyai_lock_take();
	for (i = 0; i < PYA_MAX_HEAPS; i++)
		if (!pyai_table[i].heap)
			break;
	if (i == PYA_MAX_HEAPS) {
		pyai_lock_release();
		errno = EMFILE;
		return -1;
	}
	h->slot = i;
	table_set(i, h);
	if (i >= pyai_table_used)
		__atomic_store_n(&pyai_table_used, i + 1, __ATOMIC_RELEASE);
	pyai_lock_release();
	return 0;
}

struct pya_heap *pyai_heap_open(const struct pya_heap_options *opts,
				unsigned int internal_flags)
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
		memcpy(&o, opts, opts->size < sizeof(o) ? opts->size : sizeof(o));
		for (size_t i = sizeof(o); i < opts->size; i++)
			if (((const char *)opts)[i]) {
				errno = EINVAL;
				return NULL;
			}
	}
	if (o.granularity == 0)
		o.granularity = PYALLOC_GRANULARITY_8;
	if ((o.granularity != 8 && o.granularity != 16) ||
	    o.decay_ms > PYA_DECAY_MAX_MS || o.reserved ||
	    (o.flags & ~(PYA_HEAP_DEBUG | PYA_HEAP_SHARED | PYA_HEAP_NO_DECAY))) {
		errno = EINVAL;
		return NULL;
	}
	h = pyai_meta_alloc(sizeof(*h));
	if (!h)
		return NULL;
	h->fd = -1;
	h->slot = -1;
	h->flags = o.flags | internal_flags |
		   (pyai_env_debug ? PYA_HEAP_DEBUG : 0);
	h->private_mode = !(o.flags & PYA_HEAP_SHARED);

	h->fd = pyai_dev_open();
	if (h->fd < 0)
		goto fail;
	if ((h->flags & PYAI_HEAP_CHECK_FD) && heap_own_fd(h) < 0)
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
	if (!o.decay_ms)
		o.decay_ms = PYA_DECAY_DEFAULT_MS;
	if (o.flags & PYA_HEAP_NO_DECAY)
		o.decay_ms = 0;
	if (heap_configure(h, o.granularity, o.mem_limit, o.decay_ms) < 0)
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
	return pyai_heap_open(opts, 0);
}

int pya_heap_close(pya_heap_t *h)
{
	if (!h) {
		errno = EINVAL;
		return -1;
	}
	pyai_lock_take();
	if (h->is_default || h->slot < 0 || h->slot >= PYA_MAX_HEAPS ||
	    pyai_table[h->slot].heap != h) {
		pyai_lock_release();
		errno = EINVAL;
		return -1;
	}
	/* Return what every thread has cached, then forget those caches. */
	pyai_heap_detach_caches(h);
	table_set(h->slot, NULL);
	pyai_lock_release();
	heap_destroy(h);
	return 0;
}

/*
 * PYALLOC_DECAY_MS for the heaps the library opens on the program's behalf
 * (the default heap, the drop-in malloc's): milliseconds, 0 for none; a
 * value that is not a number up to PYA_DECAY_MAX_MS is ignored.
 */
void pyai_env_decay(struct pya_heap_options *o)
{
	const char *v = getenv("PYALLOC_DECAY_MS");
	char *end;
	unsigned long ms;

	if (!v || !*v)
		return;
	errno = 0;
	ms = strtoul(v, &end, 10);
	if (errno || *end || ms > PYA_DECAY_MAX_MS || *v == '-')
		return;
	if (ms)
		o->decay_ms = (unsigned int)ms;
	else
		o->flags |= PYA_HEAP_NO_DECAY;
}

static void default_open(void)
{
	struct pya_heap_options o = PYA_HEAP_OPTIONS_INIT;
	const char *g = getenv("PYALLOC_GRANULARITY");
	struct pya_heap *h;

	if (g && strcmp(g, "16") == 0)
		o.granularity = 16;
	pyai_env_decay(&o);
	h = pyai_heap_open(&o, 0);
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
