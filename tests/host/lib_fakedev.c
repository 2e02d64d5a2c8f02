// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Fake /dev/pyalloc; see lib_fakedev.h.  Deliberately simple: a bitmap per
 * pool page, first fit with a per-class hint.  Speed only has to be good
 * enough for the stress tests under ASan.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/pyalloc.h>

#include "internal.h"
#include "lib_fakedev.h"

#define NPAGES		(FAKEDEV_WINDOW / 4096)
#define PAGES_PER_ARENA	(FAKEDEV_ARENA / 4096)
#define NARENAS		(NPAGES / PAGES_PER_ARENA)
#define MAX_FD		2048

struct fheap {
	pthread_mutex_t lock;		/* shared heaps: process-shared */
	pid_t lock_pid;			/* private heaps: holder's process */
	char *window;
	unsigned int shift;
	bool allocated_once;		/* or mapped: CONFIG is EBUSY now */
	bool private_mode;
	bool mapped;
	bool broken;			/* a child whose copy failed: EIO */
	bool no_heap;			/* a child without a copy: EPERM */
	pid_t owner;			/* private: the process it belongs to */
	dev_t rdev;			/* what the descriptor must still be */
	ino_t ino;
	uint64_t heap_id;
	uint64_t forks;
	uint64_t window_size;
	uint64_t mem_limit;
	uint64_t pages;
	uint8_t cls[NPAGES];		/* class + 1, 0: free page */
	uint16_t used[NPAGES];
	uint64_t bits[NPAGES][8];
	uint32_t arena_pages[NARENAS];
	uint32_t hint[PYA_MAX_CLASSES];
	struct pyalloc_stats st;	/* counters and arena figures */
};

struct fglobal {
	pthread_mutex_t lock;
	int open_error;
	unsigned long fail_cmd;
	int fail_err, fail_n;
	int fail_fork;
	int bad_offset_armed;
	uint64_t bad_offset;
	uint64_t next_id;
	uint64_t calls[8];
};

static struct fheap *fheaps[MAX_FD];
static struct fglobal *fg;
static pthread_once_t fg_once = PTHREAD_ONCE_INIT;

static void *shared_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void shared_lock_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
}

/*
 * A private heap's lock is a spinlock stamped with the holder's pid.  The
 * kernel serialises a heap's copy with its ioctls; the fake's copy is the
 * fork itself, and a raw fork system call (no atfork handlers) can copy
 * the lock held by a thread the child does not have: a lock held by
 * another process is therefore taken over.  (The fake's state can only be
 * torn that way by an ioctl that writes; the tests that fork without
 * handlers run only read-only ioctls in other threads.)
 */
static void fh_lock(struct fheap *f)
{
	pid_t me = getpid(), seen;

	if (!f->private_mode) {
		pthread_mutex_lock(&f->lock);
		return;
	}
	for (;;) {
		seen = 0;
		if (__atomic_compare_exchange_n(&f->lock_pid, &seen, me, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return;
		if (seen != me &&
		    __atomic_compare_exchange_n(&f->lock_pid, &seen, me, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return;
		sched_yield();
	}
}

static void fh_unlock(struct fheap *f)
{
	if (!f->private_mode)
		pthread_mutex_unlock(&f->lock);
	else
		__atomic_store_n(&f->lock_pid, 0, __ATOMIC_RELEASE);
}

static void fg_init(void)
{
	fg = shared_map(sizeof(*fg));
	shared_lock_init(&fg->lock);
}

/*
 * fork() and private heaps: hold each private heap's lock across the fork,
 * so the child's copy is never half-way through an ioctl.  Registered by a
 * constructor, before the library registers its own handlers, so this
 * prepare handler runs after the library's (prepare handlers run in reverse
 * order of registration).
 */
static void fake_prepare(void)
{
	int fd;

	for (fd = 0; fd < MAX_FD; fd++)
		if (fheaps[fd] && fheaps[fd]->private_mode)
			fh_lock(fheaps[fd]);
}

static void fake_parent(void)
{
	int fd;

	for (fd = 0; fd < MAX_FD; fd++)
		if (fheaps[fd] && fheaps[fd]->private_mode) {
			if (fheaps[fd]->mapped)
				fheaps[fd]->forks++;
			fh_unlock(fheaps[fd]);
		}
}

static void fake_child(void)
{
	int fd;

	for (fd = 0; fd < MAX_FD; fd++)
		if (fheaps[fd] && fheaps[fd]->private_mode)
			fh_unlock(fheaps[fd]);
}

__attribute__((constructor)) static void fake_register_atfork(void)
{
	pthread_once(&fg_once, fg_init);
	pthread_atfork(fake_prepare, fake_parent, fake_child);
}

void fakedev_fail_fork_copy(int n)
{
	pthread_once(&fg_once, fg_init);
	__atomic_store_n(&fg->fail_fork, n, __ATOMIC_RELAXED);
}

/*
 * A private heap's first ioctl in a process other than its owner: this is
 * a forked child's copy (fork() copied the MAP_PRIVATE state and window).
 * Adopt it as the kernel's copy would be: a new id, or EPERM when the
 * parent had no mapping to copy, or a failed copy on request.
 */
static void adopt_copy(struct fheap *f)
{
	f->owner = getpid();
	if (!f->mapped) {
		f->no_heap = true;
		return;
	}
	if (__atomic_load_n(&fg->fail_fork, __ATOMIC_RELAXED) > 0 &&
	    __atomic_sub_fetch(&fg->fail_fork, 1, __ATOMIC_RELAXED) >= 0) {
		f->broken = true;
		mprotect(f->window, f->window_size, PROT_NONE);
		return;
	}
	f->heap_id = __atomic_add_fetch(&fg->next_id, 1, __ATOMIC_RELAXED);
	f->forks = 0;
}

void fakedev_set_open_error(int err)
{
	pthread_once(&fg_once, fg_init);
	fg->open_error = err;
}

void fakedev_fail_ioctl(unsigned long cmd, int err, int n)
{
	pthread_once(&fg_once, fg_init);
	pthread_mutex_lock(&fg->lock);
	fg->fail_cmd = cmd;
	fg->fail_err = err;
	fg->fail_n = n;
	pthread_mutex_unlock(&fg->lock);
}

void fakedev_bad_alloc_offset(uint64_t off)
{
	pthread_once(&fg_once, fg_init);
	pthread_mutex_lock(&fg->lock);
	fg->bad_offset = off;
	fg->bad_offset_armed = 1;
	pthread_mutex_unlock(&fg->lock);
}

uint64_t fakedev_ioctl_count(unsigned long cmd)
{
	pthread_once(&fg_once, fg_init);
	return __atomic_load_n(&fg->calls[_IOC_NR(cmd) & 7], __ATOMIC_RELAXED);
}

uint64_t fakedev_blocks_in_use(int fd)
{
	struct fheap *f = fheaps[fd];
	uint64_t n = 0;
	size_t i;

	if (!f)
		return 0;
	fh_lock(f);
	for (i = 0; i < NPAGES; i++)
		n += f->used[i];
	fh_unlock(f);
	return n;
}

int pyai_dev_open(void)
{
	struct fheap *f;
	struct stat st;
	int fd;

	pthread_once(&fg_once, fg_init);
	if (fg->open_error) {
		errno = fg->open_error;
		return -1;
	}
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0 || fd >= MAX_FD) {
		if (fd >= 0)
			close(fd);
		errno = EMFILE;
		return -1;
	}
	f = shared_map(sizeof(*f));
	if (!f) {
		close(fd);
		return -1;
	}
	shared_lock_init(&f->lock);
	f->shift = 3;
	f->mem_limit = FAKEDEV_MEM_LIMIT;
	f->window_size = FAKEDEV_WINDOW;
	f->owner = getpid();
	f->heap_id = __atomic_add_fetch(&fg->next_id, 1, __ATOMIC_RELAXED);
	if (fstat(fd, &st) == 0) {
		f->rdev = st.st_rdev;
		f->ino = st.st_ino;
	}
	fheaps[fd] = f;
	return fd;
}

int pyai_dev_move_fd(int fd, int lo)
{
	int nfd;

	if (lo >= MAX_FD)
		lo = MAX_FD / 2;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, lo);
	if (nfd < 0 || nfd >= MAX_FD) {
		if (nfd >= 0)
			close(nfd);
		return fd;
	}
	fheaps[nfd] = fheaps[fd];
	fheaps[fd] = NULL;
	close(fd);
	return nfd;
}

void pyai_dev_close(int fd)
{
	if (fd >= 0 && fd < MAX_FD && fheaps[fd]) {
		munmap(fheaps[fd], sizeof(struct fheap));
		fheaps[fd] = NULL;
	}
	close(fd);
}

void *pyai_dev_map(int fd, size_t len)
{
	struct fheap *f = fd >= 0 && fd < MAX_FD ? fheaps[fd] : NULL;
	void *p;
	int mfd;

	if (!f || len != f->window_size) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	/* A named memfd, so that /proc/self/maps shows the window as the
	 * device's ("pyalloc" in the path), as tests of the preload expect. */
	mfd = memfd_create("pyalloc-fake-window", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, (off_t)len) < 0) {
		if (mfd >= 0)
			close(mfd);
		return MAP_FAILED;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 (f->private_mode ? MAP_PRIVATE : MAP_SHARED) | MAP_NORESERVE,
		 mfd, 0);
	close(mfd);
	if (p != MAP_FAILED) {
		f->window = p;
		f->mapped = true;
		f->allocated_once = true;
	}
	return p;
}

/*
 * CONFIG of the mode: a private heap's state moves to MAP_PRIVATE memory
 * with a process-private lock, so that fork() copies it.
 */
static struct fheap *set_private(int fd, struct fheap *f)
{
	struct fheap *n = mmap(NULL, sizeof(*n), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (n == MAP_FAILED)
		return NULL;
	memcpy(n, f, sizeof(*n));
	n->private_mode = true;
	n->lock_pid = getpid();		/* held: the caller unlocks it */
	fheaps[fd] = n;
	return n;
}

void pyai_dev_unmap(void *addr, size_t len)
{
	munmap(addr, len);
}

static uint32_t bsize(struct fheap *f, unsigned int c)
{
	return (uint32_t)(c + 1) << f->shift;
}

static void page_take(struct fheap *f, size_t pg, unsigned int c)
{
	size_t a = pg / PAGES_PER_ARENA;

	f->cls[pg] = c + 1;
	f->pages++;
	if (f->arena_pages[a]++ == 0) {
		f->st.arenas_allocated++;
		f->st.arenas_current++;
		if (f->st.arenas_current > f->st.arenas_highwater)
			f->st.arenas_highwater = f->st.arenas_current;
	}
}

static void page_release(struct fheap *f, size_t pg)
{
	size_t a = pg / PAGES_PER_ARENA;

	f->cls[pg] = 0;
	f->pages--;
	if (--f->arena_pages[a] == 0) {
		f->st.arenas_current--;
		f->st.arenas_reclaimed++;
	}
}

/* One block of class @c, or -1 at the limit. */
static int64_t alloc_one(struct fheap *f, unsigned int c)
{
	uint32_t size = bsize(f, c), per = 4096 / size, b;
	size_t pg, start = f->hint[c];

	for (pg = start; pg < start + NPAGES; pg++) {
		size_t p = pg % NPAGES;

		if (f->cls[p] == c + 1 && f->used[p] < per)
			goto found;
	}
	if ((f->pages + 1) * 4096 > f->mem_limit)
		return -1;
	for (pg = 0; pg < f->window_size / 4096; pg++)
		if (!f->cls[pg])
			break;
	if (pg == f->window_size / 4096)
		return -1;
	page_take(f, pg, c);
found:
	pg %= NPAGES;
	f->hint[c] = pg;
	for (b = 0; b < per; b++)
		if (!(f->bits[pg][b / 64] & (1ULL << (b % 64))))
			break;
	f->bits[pg][b / 64] |= 1ULL << (b % 64);
	f->used[pg]++;
	return (int64_t)(pg * 4096 + b * size);
}

/* Clear the bit of @off; false if @off is not an allocated block. */
static bool clear_one(struct fheap *f, uint64_t off)
{
	size_t pg = off / 4096;
	uint32_t in = off % 4096, size, b;

	if (off >= f->window_size || !f->cls[pg])
		return false;
	size = bsize(f, f->cls[pg] - 1);
	if (in % size || in / size >= 4096 / size)
		return false;
	b = in / size;
	if (!(f->bits[pg][b / 64] & (1ULL << (b % 64))))
		return false;
	f->bits[pg][b / 64] &= ~(1ULL << (b % 64));
	f->used[pg]--;
	return true;
}

static void set_one(struct fheap *f, uint64_t off)
{
	size_t pg = off / 4096;
	uint32_t b = (off % 4096) / bsize(f, f->cls[pg] - 1);

	f->bits[pg][b / 64] |= 1ULL << (b % 64);
	f->used[pg]++;
}

static int do_alloc(struct fheap *f, struct pyalloc_alloc *a)
{
	uint64_t *offs = (uint64_t *)(uintptr_t)a->offsets;
	unsigned int c;
	uint32_t i;

	if (a->size < 1 || a->size > PYALLOC_MAX_REQUEST || a->count < 1 ||
	    a->count > PYALLOC_MAX_BATCH || a->flags)
		return -EINVAL;
	c = (a->size - 1) >> f->shift;
	for (i = 0; i < a->count; i++) {
		int64_t off = alloc_one(f, c);

		if (off < 0) {
			while (i--) {	/* all or nothing */
				clear_one(f, offs[i]);
				if (!f->used[offs[i] / 4096])
					page_release(f, offs[i] / 4096);
			}
			return -ENOMEM;
		}
		offs[i] = (uint64_t)off;
	}
	f->allocated_once = true;
	a->block_size = bsize(f, c);
	f->st.alloc_calls++;
	f->st.blocks_allocated += a->count;
	return 0;
}

static int do_free(struct fheap *f, struct pyalloc_free *fr)
{
	uint64_t *offs = (uint64_t *)(uintptr_t)fr->offsets;
	uint32_t i;

	fr->error_index = fr->count;
	if (fr->count < 1 || fr->count > PYALLOC_MAX_BATCH || fr->flags ||
	    fr->reserved)
		return -EINVAL;
	for (i = 0; i < fr->count; i++) {
		if (!clear_one(f, offs[i])) {
			fr->error_index = i;
			while (i--)
				set_one(f, offs[i]);
			return -EINVAL;
		}
	}
	for (i = 0; i < fr->count; i++) {
		size_t pg = offs[i] / 4096;

		if (!f->cls[pg])	/* released by an earlier entry */
			continue;
		memset(f->window + offs[i], FAKEDEV_POISON,
		       bsize(f, f->cls[pg] - 1));
		if (!f->used[pg]) {
			memset(f->bits[pg], 0, sizeof(f->bits[pg]));
			page_release(f, pg);
		}
	}
	f->st.free_calls++;
	f->st.blocks_freed += fr->count;
	return 0;
}

static int do_stats(struct fheap *f, struct pyalloc_stats *s)
{
	unsigned int n = PYALLOC_MAX_REQUEST >> f->shift, c;
	struct pyalloc_class_stats cls[PYALLOC_MAX_CLASSES];
	struct pyalloc_class_stats *out = (void *)(uintptr_t)s->classes;
	uint32_t want = s->classes_count;
	size_t pg;

	if (want && !out)
		return -EFAULT;
	*s = f->st;
	s->granularity = 1U << f->shift;
	s->num_classes = n;
	s->pages = f->pages;
	s->mem_limit = f->mem_limit;
	s->mode = f->private_mode ? PYALLOC_MODE_PRIVATE : PYALLOC_MODE_SHARED;
	s->heap_id = f->heap_id;
	s->forks = f->forks;
	s->bytes_in_use = s->bytes_free = s->bytes_quantization = 0;
	memset(cls, 0, sizeof(cls));
	for (c = 0; c < n; c++)
		cls[c].block_size = bsize(f, c);
	for (pg = 0; pg < NPAGES; pg++) {
		uint32_t size, per;

		if (!f->cls[pg])
			continue;
		c = f->cls[pg] - 1;
		size = bsize(f, c);
		per = 4096 / size;
		cls[c].pools++;
		cls[c].blocks_in_use += f->used[pg];
		cls[c].blocks_free += per - f->used[pg];
		s->bytes_in_use += (uint64_t)f->used[pg] * size;
		s->bytes_free += (uint64_t)(per - f->used[pg]) * size;
		s->bytes_quantization += 4096 - per * size;
	}
	s->classes_count = want < n ? want : n;
	s->classes = (uintptr_t)out;
	if (s->classes_count)
		memcpy(out, cls, s->classes_count * sizeof(*out));
	return 0;
}

int pyai_dev_ioctl(int fd, unsigned long cmd, void *arg)
{
	struct fheap *f = fd >= 0 && fd < MAX_FD ? fheaps[fd] : NULL;
	struct stat st;
	int ret = 0;

	if (!f) {
		errno = EBADF;
		return -1;
	}
	/* As the kernel would: a descriptor the program closed is EBADF, one
	 * it replaced with another file refuses our commands (ENOTTY). */
	if (fstat(fd, &st) < 0)
		return -1;
	if (st.st_rdev != f->rdev || st.st_ino != f->ino) {
		errno = ENOTTY;
		return -1;
	}
	pthread_mutex_lock(&fg->lock);
	__atomic_fetch_add(&fg->calls[_IOC_NR(cmd) & 7], 1, __ATOMIC_RELAXED);
	if (fg->fail_n && fg->fail_cmd == cmd) {
		fg->fail_n--;
		errno = fg->fail_err;
		pthread_mutex_unlock(&fg->lock);
		return -1;
	}
	pthread_mutex_unlock(&fg->lock);

	fh_lock(f);
	if (f->private_mode && f->owner != getpid())
		adopt_copy(f);
	if (f->no_heap || f->broken) {
		ret = f->no_heap ? -EPERM : -EIO;
		goto out;
	}
	switch (cmd) {
	case PYALLOC_IOC_INFO: {
		struct pyalloc_info *i = arg;

		memset(i, 0, sizeof(*i));
		i->abi_version = PYALLOC_ABI_VERSION;
		i->pool_size = 4096;
		i->arena_size = FAKEDEV_ARENA;
		i->pools_per_arena = PAGES_PER_ARENA;
		i->num_classes = PYALLOC_MAX_REQUEST >> f->shift;
		i->granularity = 1U << f->shift;
		i->max_request = PYALLOC_MAX_REQUEST;
		i->max_batch = PYALLOC_MAX_BATCH;
		i->window_size = f->window_size;
		i->mem_limit = f->mem_limit;
		i->features = PYALLOC_FEATURE_PRIVATE |
			      PYALLOC_FEATURE_WINDOW_SIZE |
			      PYALLOC_FEATURE_TRIM |
			      PYALLOC_FEATURE_CLASS_STATS;
		i->mode = f->private_mode ? PYALLOC_MODE_PRIVATE :
					    PYALLOC_MODE_SHARED;
		i->heap_id = f->heap_id;
		break;
	}
	case PYALLOC_IOC_CONFIG: {
		struct pyalloc_config *c = arg;
		const uint32_t early = PYALLOC_CONFIG_GRANULARITY |
				       PYALLOC_CONFIG_WINDOW_SIZE |
				       PYALLOC_CONFIG_MODE;

		if (c->flags & ~PYALLOC_CONFIG_FLAGS)
			ret = -EINVAL;
#ifdef PYALLOC_CONFIG_DECAY
		else if ((c->flags & PYALLOC_CONFIG_DECAY) &&
			 c->decay_ms > PYALLOC_MAX_DECAY_MS)
			ret = -EINVAL;	/* the fake keeps no empty arena anyway */
#endif
		else if ((c->flags & PYALLOC_CONFIG_GRANULARITY) &&
			 c->granularity != 8 && c->granularity != 16)
			ret = -EINVAL;
		else if ((c->flags & PYALLOC_CONFIG_MODE) &&
			 c->mode != PYALLOC_MODE_SHARED &&
			 c->mode != PYALLOC_MODE_PRIVATE)
			ret = -EINVAL;
		else if ((c->flags & PYALLOC_CONFIG_WINDOW_SIZE) &&
			 (!c->window_size || c->window_size % FAKEDEV_ARENA))
			ret = -EINVAL;
		else if ((c->flags & PYALLOC_CONFIG_WINDOW_SIZE) &&
			 c->window_size > FAKEDEV_WINDOW)
			ret = -EPERM;
		else if ((c->flags & early) && f->allocated_once)
			ret = -EBUSY;
		else if ((c->flags & PYALLOC_CONFIG_MEM_LIMIT) &&
			 c->mem_limit > f->mem_limit)
			ret = -EPERM;
		if (ret)
			break;
		if ((c->flags & PYALLOC_CONFIG_MODE) &&
		    (c->mode == PYALLOC_MODE_PRIVATE) != f->private_mode) {
			struct fheap *n;

			if (c->mode != PYALLOC_MODE_PRIVATE) {
				ret = -EINVAL;	/* the fake only goes one way */
				break;
			}
			n = set_private(fd, f);
			if (!n) {
				ret = -ENOMEM;
				break;
			}
			/* The old state, lock included, goes; the new one
			 * is born locked. */
			fh_unlock(f);
			munmap(f, sizeof(*f));
			f = n;
		}
		if (c->flags & PYALLOC_CONFIG_GRANULARITY)
			f->shift = c->granularity == 16 ? 4 : 3;
		if (c->flags & PYALLOC_CONFIG_WINDOW_SIZE)
			f->window_size = c->window_size;
		if (c->flags & PYALLOC_CONFIG_MEM_LIMIT)
			f->mem_limit = c->mem_limit;
		break;
	}
	case PYALLOC_IOC_ALLOC:
		ret = do_alloc(f, arg);
		pthread_mutex_lock(&fg->lock);
		if (!ret && fg->bad_offset_armed) {
			struct pyalloc_alloc *a = arg;

			fg->bad_offset_armed = 0;
			((uint64_t *)(uintptr_t)a->offsets)[0] = fg->bad_offset;
		}
		pthread_mutex_unlock(&fg->lock);
		break;
	case PYALLOC_IOC_FREE:
		ret = do_free(f, arg);
		break;
	case PYALLOC_IOC_STATS:
		ret = do_stats(f, arg);
		break;
	case PYALLOC_IOC_TRIM: {
		struct pyalloc_trim *t = arg;

		if (t->flags || t->reserved)
			ret = -EINVAL;
		t->pages = 0;	/* the fake keeps no empty arena */
		break;
	}
	default:
		ret = -ENOTTY;
	}
out:
	fh_unlock(f);
	if (ret) {
		errno = -ret;
		return -1;
	}
	return 0;
}
