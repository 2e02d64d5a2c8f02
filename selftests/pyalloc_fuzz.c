// SPDX-License-Identifier: GPL-2.0
/*
 * A fuzzer for /dev/pyalloc: random ioctls, pointers and window mappings
 * from several threads of several processes, some killed mid-operation.
 *
 *   pyalloc_fuzz [-s SEED] [-n OPS] [-p PROCS] [-t THREADS] [-w SECS]
 *
 *   -s SEED     replay a run (the seed is the first line printed)
 *   -n OPS      operations in all (default $PYALLOC_FUZZ_OPS or 20000)
 *   -p PROCS    worker processes per round (default 3)
 *   -t THREADS  threads per worker (default 4)
 *   -w SECS     no progress for this long is a hang (default 300)
 *
 * The run is a series of rounds.  Each round the parent opens a heap and
 * maps it, then forks the workers, which inherit it and open two heaps of
 * their own.  Modes vary by round: the parent's heap is shared in half of
 * the rounds and private (every worker gets a fork copy) in the other half;
 * a worker's first heap is private, its second shared; and in every other
 * round the workers drop to an unprivileged user (uid 65534, RLIMIT_MEMLOCK
 * 16 MiB) before opening their heaps, so the memlock accounting and its
 * ENOMEM paths are fuzzed too.  Every thread of a worker then draws operations from its own
 * random stream (derived from the seed, the round, the worker and the
 * thread, so one thread's sequence replays exactly; the interleaving of
 * threads does not):
 *
 *   - ALLOC and FREE, mostly well formed, with wrong sizes, counts, flags,
 *     reserved fields, duplicate, wild and misaligned offsets, offsets of
 *     other threads and heaps
 *   - INFO, STATS, CONFIG, TRIM and random commands: wrong magic, number,
 *     direction and size
 *   - as the user pointer of any of them (the struct or the offsets array):
 *     NULL, an address below mmap_min_addr, a kernel and a non-canonical
 *     address, read-only and PROT_NONE pages, a buffer ending at a guard
 *     page, misaligned buffers, and addresses inside a heap window - that
 *     heap's own (the module must not deadlock on its own lock) or another's
 *   - mmap of odd ranges and offsets of the window (also private, exec,
 *     beyond the window), munmap, mremap (shrink, move, grow), mprotect,
 *     madvise (DONTNEED, populate, ...), mlock and msync of odd ranges
 *   - touching random offsets of the window, reading and writing blocks
 *     (SIGBUS and SIGSEGV are expected there and caught)
 *   - the kernel copying to and from the window (read, write, vmsplice
 *     into a pipe, which pins the pages)
 *   - replacing a heap under the other threads' feet (dup2 of a new open)
 *   - fork from a thread, the child working on the inherited heaps, and
 *     sometimes killed at once
 *
 * and the parent kills some workers with SIGKILL at a random point.
 *
 * Nothing about the results is asserted beyond what must hold whatever the
 * input: no operation crashes the fuzzer or hangs (a watchdog reports the
 * stuck tasks' kernel stacks), and once every heap is closed the module
 * holds no page and no heap.  The kernel's own checkers (KASAN, lockdep,
 * kmemleak, ...) and vm/run.sh's scan of the kernel log do the rest.
 *
 * Exits 0 on success, 1 on failure, 4 (skip) without /dev/pyalloc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/pyalloc.h>

#define DEV		"/dev/pyalloc"
#define PARAMS		"/sys/module/pyalloc/parameters/"
#define PAGE		4096UL
#define KSFT_SKIP	4
#define NOBODY		65534

#define NHEAPS		3	/* per worker: the round's shared heap + 2 */
#define NLIVE		1024	/* blocks a thread remembers per heap */
#define SLACK		(1UL << 20)	/* PROT_NONE after each window */
#define ARGBUF		(32 * 1024)	/* room for any _IOC_SIZE (16383) */
#define FLUSH_EVERY	32	/* ops between updates of the shared count */
#define MAX_PROCS	16
#define MAX_THREADS	16

/* ---- random numbers: one splitmix64 stream per thread ---- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ULL;
	return mix(*s);
}

/* Uniform in [0, n) (n > 0; the bias is irrelevant here). */
static uint64_t below(uint64_t *s, uint64_t n)
{
	return rnd(s) % n;
}

static bool chance(uint64_t *s, unsigned int percent)
{
	return below(s, 100) < percent;
}

/* ---- shared state ---- */

enum {
	OP_ALLOC, OP_FREE, OP_IOCTL, OP_TOUCH, OP_MM, OP_KCOPY, OP_FORK,
	OP_REPLACE, NOPS
};

static const char *const op_names[NOPS] = {
	"alloc", "free", "ioctl", "touch", "mm", "kcopy", "fork", "replace",
};

/* Counters in memory shared by all processes of the run. */
struct shared {
	uint64_t ops[MAX_PROCS];	/* per worker slot, this round */
	uint64_t total;			/* all rounds, flushed ops */
	uint64_t count[NOPS];		/* per kind of operation */
	uint64_t ns[NOPS];		/* time spent in them */
};

struct heap {
	int fd;
	char *base;		/* the window's home; SLACK of PROT_NONE after */
	uint64_t wsize;		/* window_size */
	uint64_t arena;		/* arena_size */
};

struct worker {
	pthread_barrier_t start;	/* every thread created: begin */
	unsigned int slot;
	uint64_t seed;
	uint64_t quota;		/* ops per thread */
	bool unprivileged;	/* drop to NOBODY before opening heaps */
	struct heap heaps[NHEAPS];
	struct shared *sh;
};

struct thread {
	struct worker *w;
	unsigned int id;
	uint64_t rng;
	uint64_t ops, unflushed;
	char *argbuf;		/* ARGBUF bytes, then a PROT_NONE guard page */
	char *ro;		/* a read-only page */
	char *none;		/* a PROT_NONE page */
	char *hole;		/* an address with nothing mapped (at start) */
	int pipe[2];		/* non-blocking, for vmsplice and write */
	uint64_t live[NHEAPS][NLIVE];
	unsigned int nlive[NHEAPS];
};

static unsigned int opt_procs = 3, opt_threads = 4, opt_watchdog = 300;

/* ---- messages without stdio (no locks, no malloc in workers) ---- */

static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	if (n > 0)
		(void)!write(STDOUT_FILENO, buf, n);
}

/* ---- SIGBUS/SIGSEGV where they are expected ---- */

static __thread sigjmp_buf touch_jmp;
static __thread volatile sig_atomic_t touching;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	if (touching) {
		touching = 0;
		siglongjmp(touch_jmp, sig);
	}
	/* Not ours to expect: die of it, with the default action. */
	signal(sig, SIG_DFL);
}

static void catch_faults(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/* Read or write 8 bytes at @p; a fault there is fine. */
static void touch(void *p, bool write, uint64_t val)
{
	if (sigsetjmp(touch_jmp, 1) == 0) {
		touching = 1;
		if (write)
			*(volatile uint64_t *)p = val;
		else
			(void)*(volatile uint64_t *)p;
	}
	touching = 0;
}

/* ---- choosing things ---- */

static struct heap *pick_heap(struct thread *t, unsigned int *idx)
{
	unsigned int i = below(&t->rng, NHEAPS);

	if (idx)
		*idx = i;
	return &t->w->heaps[i];
}

/* An offset in the window, mostly where arenas are. */
static uint64_t pick_off(struct thread *t, struct heap *h)
{
	unsigned int i = h - t->w->heaps;

	switch (below(&t->rng, 10)) {
	case 0:
		return below(&t->rng, h->wsize);
	case 1:		/* near the end, or beyond */
		return h->wsize - PAGE * 4 + below(&t->rng, PAGE * 8);
	case 2:
	case 3:
	case 4:
	case 5:
	case 6:
		if (t->nlive[i])
			return t->live[i][below(&t->rng, t->nlive[i])] +
			       (chance(&t->rng, 80) ? 0 : below(&t->rng, 600));
		/* fall through */
	default:
		return below(&t->rng, 16 * h->arena);
	}
}

/* A page-aligned (mostly) odd range in the first arenas of the window. */
static void pick_range(struct thread *t, struct heap *h, char **addr,
		       size_t *len)
{
	uint64_t off = below(&t->rng, 8 * h->arena / PAGE) * PAGE;
	size_t l = (1 + below(&t->rng, 80)) * PAGE;

	if (chance(&t->rng, 10))
		off += below(&t->rng, PAGE);
	if (chance(&t->rng, 10))
		l += below(&t->rng, PAGE);
	if (chance(&t->rng, 5))
		off = h->wsize - below(&t->rng, 16) * PAGE;
	*addr = h->base + off;
	*len = l;
}

enum ptr_kind {
	PTR_GOOD, PTR_NULL, PTR_LOW, PTR_KERNEL, PTR_NONCANON, PTR_RO,
	PTR_NONE, PTR_HOLE, PTR_GUARD, PTR_MISALIGNED, PTR_WINDOW,
	PTR_OTHER_WINDOW, PTR_KINDS
};

/*
 * A user pointer for the kernel to read @len bytes from or write them to.
 * PTR_GOOD is argbuf; the rest are bad or odd in one way each.
 */
static void *pick_ptr(struct thread *t, struct heap *h, size_t len,
		      bool mostly_good)
{
	unsigned int k = mostly_good && chance(&t->rng, 80) ? PTR_GOOD :
			 below(&t->rng, PTR_KINDS);
	struct heap *o;

	if (len > ARGBUF)
		len = ARGBUF;
	switch (k) {
	case PTR_NULL:
		return NULL;
	case PTR_LOW:
		return (void *)(uintptr_t)(PAGE + below(&t->rng, PAGE));
	case PTR_KERNEL:
		return (void *)(uintptr_t)0xffffffff81000000ULL;
	case PTR_NONCANON:
		return (void *)(uintptr_t)(0x0000800000000000ULL -
					   below(&t->rng, 16));
	case PTR_RO:
		return t->ro;
	case PTR_NONE:
		return t->none;
	case PTR_HOLE:
		return t->hole;
	case PTR_GUARD:		/* ends inside the guard page after argbuf */
		return t->argbuf + ARGBUF - len + 1 + below(&t->rng, 64);
	case PTR_MISALIGNED:
		return t->argbuf + 1 + below(&t->rng, 7);
	case PTR_WINDOW:
		return h->base + pick_off(t, h);
	case PTR_OTHER_WINDOW:
		o = pick_heap(t, NULL);
		return o->base + pick_off(t, o);
	default:
		return t->argbuf;
	}
}

/* ---- operations ---- */

static void remember(struct thread *t, unsigned int hi, const uint64_t *offs,
		     unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (t->nlive[hi] == NLIVE)
			t->nlive[hi] = NLIVE / 2;	/* forget (leak) some */
		t->live[hi][t->nlive[hi]++] = offs[i];
	}
}

static uint32_t pick_size(struct thread *t)
{
	switch (below(&t->rng, 10)) {
	case 0:
		return below(&t->rng, 3) ? 0 : PYALLOC_MAX_REQUEST + 1 +
			below(&t->rng, 4);
	case 1:
		return rnd(&t->rng);
	default:
		return 1 + below(&t->rng, PYALLOC_MAX_REQUEST);
	}
}

static uint32_t pick_count(struct thread *t)
{
	switch (below(&t->rng, 12)) {
	case 0:
		return 0;
	case 1:
		return PYALLOC_MAX_BATCH + below(&t->rng, 3);
	case 2:
		return rnd(&t->rng);
	case 3:
		return PYALLOC_MAX_BATCH;
	default:
		return 1 + below(&t->rng, 64);
	}
}

static void op_alloc(struct thread *t)
{
	unsigned int hi;
	struct heap *h = pick_heap(t, &hi);
	struct pyalloc_alloc *a = (void *)t->argbuf;
	uint64_t *offs = (uint64_t *)(t->argbuf + 4096);
	unsigned long cmd = PYALLOC_IOC_ALLOC;
	void *arg = a;
	uint32_t count;

	memset(a, 0, sizeof(*a));
	a->size = pick_size(t);
	a->count = count = pick_count(t);
	a->offsets = (uintptr_t)offs;
	if (chance(&t->rng, 10))
		a->flags = 1U << below(&t->rng, 32);
	if (chance(&t->rng, 10))
		a->block_size = rnd(&t->rng);
	if (chance(&t->rng, 15))
		a->offsets = (uintptr_t)pick_ptr(t, h, count * 8, false);
	if (chance(&t->rng, 5)) {	/* the struct itself elsewhere */
		arg = pick_ptr(t, h, sizeof(*a), false);
	}
	if (chance(&t->rng, 5))		/* another struct size */
		cmd = _IOC(_IOC_READ | _IOC_WRITE, PYALLOC_IOC_MAGIC, 2,
			   below(&t->rng, 64));
	if (ioctl(h->fd, cmd, arg) == 0 && arg == a &&
	    a->offsets == (uintptr_t)offs && count <= PYALLOC_MAX_BATCH) {
		remember(t, hi, offs, count);
		/* Write to some of the new blocks. */
		for (unsigned int i = 0; i < count && i < 3; i++)
			touch(h->base + offs[i], true, offs[i]);
	}
}

static void op_free(struct thread *t)
{
	unsigned int hi, i, n;
	struct heap *h = pick_heap(t, &hi);
	struct pyalloc_free *f = (void *)t->argbuf;
	uint64_t *offs = (uint64_t *)(t->argbuf + 4096);
	unsigned long cmd = PYALLOC_IOC_FREE;
	bool clean = true;
	void *arg = f;

	n = t->nlive[hi] ? 1 + below(&t->rng, t->nlive[hi] < 64 ?
				    t->nlive[hi] : 64) : 1;
	if (!t->nlive[hi])
		clean = false;	/* offset 0: maybe someone else's block */
	if (chance(&t->rng, 3) && t->nlive[hi])
		n = t->nlive[hi];	/* everything: may release arenas */
	if (n > PYALLOC_MAX_BATCH)
		n = PYALLOC_MAX_BATCH;
	/* The newest n blocks. */
	for (i = 0; i < n; i++)
		offs[i] = t->nlive[hi] ? t->live[hi][t->nlive[hi] - 1 - i] : 0;
	if (chance(&t->rng, 15)) {	/* spoil one entry */
		unsigned int j = below(&t->rng, n);

		clean = false;
		switch (below(&t->rng, 5)) {
		case 0: offs[j] = offs[below(&t->rng, n)]; break;
		case 1: offs[j] += 1 + below(&t->rng, 7); break;
		case 2: offs[j] = rnd(&t->rng); break;
		case 3: offs[j] = pick_off(t, h); break;
		default: offs[j] = h->wsize + below(&t->rng, 1 << 20); break;
		}
	}
	memset(f, 0, sizeof(*f));
	f->count = n;
	f->offsets = (uintptr_t)offs;
	f->error_index = rnd(&t->rng);
	if (chance(&t->rng, 8)) {
		f->count = pick_count(t);
		clean = false;
	}
	if (chance(&t->rng, 5)) {
		f->flags = 1U << below(&t->rng, 32);
		clean = false;
	}
	if (chance(&t->rng, 5)) {
		f->reserved = rnd(&t->rng) | 1;
		clean = false;
	}
	if (chance(&t->rng, 10)) {
		f->offsets = (uintptr_t)pick_ptr(t, h, n * 8, false);
		clean = false;
	}
	if (chance(&t->rng, 5)) {
		arg = pick_ptr(t, h, sizeof(*f), false);
		clean = false;
	}
	if (chance(&t->rng, 5)) {
		cmd = _IOC(_IOC_READ | _IOC_WRITE, PYALLOC_IOC_MAGIC, 3,
			   below(&t->rng, 64));
		clean = false;
	}
	if (ioctl(h->fd, cmd, arg) == 0 && clean)
		t->nlive[hi] -= n;
	else if (clean && chance(&t->rng, 50))
		t->nlive[hi] -= n;	/* someone else freed them: forget */
}

/* INFO, STATS, CONFIG and made-up commands. */
static void op_ioctl(struct thread *t)
{
	struct heap *h = pick_heap(t, NULL);
	unsigned int dir, nr, size, type = PYALLOC_IOC_MAGIC;
	unsigned long cmd;
	void *arg;
	size_t i;

	switch (below(&t->rng, 7)) {
	case 0:
		cmd = PYALLOC_IOC_INFO;
		break;
	case 3: {	/* releases the kept empty arena under the others */
		struct pyalloc_trim *tr = (void *)t->argbuf;

		memset(tr, 0, sizeof(*tr));
		if (chance(&t->rng, 10))
			tr->flags = 1U << below(&t->rng, 32);
		if (chance(&t->rng, 10))
			tr->reserved = rnd(&t->rng) | 1;
		tr->pages = rnd(&t->rng);
		cmd = PYALLOC_IOC_TRIM;
		break;
	}
	case 1:
		cmd = PYALLOC_IOC_STATS;
		break;
	case 2: {
		struct pyalloc_config *c = (void *)t->argbuf;

		memset(c, 0, sizeof(*c));
		/* Mode and window too: refused once mapped (EBUSY). */
		c->flags = chance(&t->rng, 80) ? below(&t->rng, 32) :
			   (uint32_t)rnd(&t->rng);
		c->mode = chance(&t->rng, 90) ? below(&t->rng, 2) :
			  (uint32_t)rnd(&t->rng);
		c->window_size = chance(&t->rng, 50) ? 64ULL << 20 : rnd(&t->rng);
		/* The decay: kept arenas released by a work under the ops. */
		c->decay_ms = chance(&t->rng, 90) ? below(&t->rng, 200) :
			      (uint32_t)rnd(&t->rng);
		c->granularity = chance(&t->rng, 80) ?
				 8U << below(&t->rng, 2) : (uint32_t)rnd(&t->rng);
		/* Rarely lower the limit, and never to nothing. */
		c->mem_limit = chance(&t->rng, 90) ? ~0ULL :
			       (64 + below(&t->rng, 4096)) << 20;
		cmd = PYALLOC_IOC_CONFIG;
		break;
	}
	default:
		dir = below(&t->rng, 4);
		nr = chance(&t->rng, 80) ? below(&t->rng, 8) :
		     below(&t->rng, 256);
		switch (below(&t->rng, 4)) {
		case 0: size = 0; break;
		case 1: size = below(&t->rng, 1 << 14); break;
		default: size = 8 * below(&t->rng, 240); break;
		}
		if (chance(&t->rng, 10))
			type = below(&t->rng, 256);
		cmd = _IOC(dir, type, nr, size);
		/*
		 * Random contents, or zeros.  Not for a CONFIG that could
		 * be applied: a random limit would starve the heap.
		 */
		if (chance(&t->rng, 50) ||
		    (type == PYALLOC_IOC_MAGIC && nr == 1)) {
			memset(t->argbuf, 0, size < ARGBUF ? size : ARGBUF);
		} else {
			for (i = 0; i + 8 <= size && i + 8 <= ARGBUF; i += 8)
				*(uint64_t *)(t->argbuf + i) = rnd(&t->rng) &
					(chance(&t->rng, 50) ? 0xff : ~0ULL);
		}
		break;
	}
	arg = pick_ptr(t, h, _IOC_SIZE(cmd), true);
	if (chance(&t->rng, 3))
		cmd = (uint32_t)rnd(&t->rng);
	ioctl(h->fd, cmd, arg);
}

/* Re-reserve a range unmapped by us, unless someone took it meanwhile. */
static void rereserve(char *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr & ~(PAGE - 1);

	len = (len + ((uintptr_t)addr - a) + PAGE - 1) & ~(PAGE - 1);
	mmap((void *)a, len, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE,
	     -1, 0);
}

static void op_mm(struct thread *t)
{
	struct heap *h = pick_heap(t, NULL);
	static const int advice[] = {
		MADV_DONTNEED, MADV_DONTNEED, MADV_WILLNEED, MADV_NORMAL,
		MADV_RANDOM, MADV_SEQUENTIAL, MADV_DONTFORK, MADV_DOFORK,
		MADV_REMOVE, MADV_FREE, MADV_COLD, MADV_PAGEOUT,
		MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_WIPEONFORK,
		MADV_KEEPONFORK, MADV_DONTDUMP, MADV_MERGEABLE, MADV_HUGEPAGE,
	};
	static const int prots[] = {
		PROT_NONE, PROT_READ, PROT_WRITE, PROT_READ | PROT_WRITE,
		PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE,
	};
	char *addr, *p;
	size_t len;
	off_t off;

	pick_range(t, h, &addr, &len);
	switch (below(&t->rng, 12)) {
	case 0:		/* munmap a piece, then fill the hole */
		if (munmap(addr, len) == 0)
			rereserve(addr, len);
		break;
	case 1:		/* map a piece again at its place */
		mmap(addr, len, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_FIXED, h->fd, addr - h->base);
		break;
	case 2:		/* map somewhere else, odd offsets and flags */
		off = (chance(&t->rng, 80) ? (off_t)(addr - h->base) :
		       (off_t)rnd(&t->rng)) & ~(off_t)(PAGE - 1);
		if (chance(&t->rng, 5))
			off |= below(&t->rng, PAGE);
		p = mmap(NULL, len, prots[below(&t->rng, 6)],
			 chance(&t->rng, 85) ? MAP_SHARED : MAP_PRIVATE,
			 h->fd, off);
		if (p != MAP_FAILED) {
			size_t l2 = len / 2 + PAGE;

			touch(p + below(&t->rng, len), chance(&t->rng, 50), 1);
			if (chance(&t->rng, 50) &&
			    mremap(p, len, l2, 0) != MAP_FAILED)
				len = l2;
			munmap(p, len);
		}
		break;
	case 3:		/* mremap: shrink, grow, move */
		switch (below(&t->rng, 4)) {
		case 0:
			p = mremap(addr, len, len + PAGE * below(&t->rng, 4),
				   0);
			break;
		case 1:
			p = mremap(addr, len, PAGE, 0);
			if (p != MAP_FAILED && len > PAGE)
				rereserve(addr + PAGE, len - PAGE);
			break;
		case 2:
			p = mremap(addr, len, len, MREMAP_MAYMOVE |
				   (chance(&t->rng, 30) ? MREMAP_DONTUNMAP : 0));
			if (p != MAP_FAILED && p != addr) {
				touch(p, chance(&t->rng, 50), 2);
				munmap(p, len);
				rereserve(addr, len);
			}
			break;
		default:	/* move within the window */
			{
				char *to;
				size_t l2;

				pick_range(t, h, &to, &l2);
				p = mremap(addr, len, len,
					   MREMAP_MAYMOVE | MREMAP_FIXED, to);
				if (p != MAP_FAILED)
					rereserve(addr, len);
			}
			break;
		}
		break;
	case 4:
	case 5:
		mprotect(addr, len, prots[below(&t->rng, 6)]);
		break;
	case 6:
	case 7:
		madvise(addr, len, advice[below(&t->rng,
			sizeof(advice) / sizeof(advice[0]))]);
		break;
	case 8:
		if (mlock(addr, len) == 0)
			munlock(addr, len);
		break;
	case 9:
		msync(addr, len, chance(&t->rng, 50) ? MS_SYNC : MS_ASYNC |
		      (chance(&t->rng, 30) ? MS_INVALIDATE : 0));
		break;
	default:	/* heal: the whole window back in place */
		mmap(h->base, h->wsize, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_FIXED, h->fd, 0);
		break;
	}
}

static void op_touch(struct thread *t)
{
	struct heap *h = pick_heap(t, NULL);
	unsigned int i, n = 1 + below(&t->rng, 3);

	for (i = 0; i < n; i++) {
		uint64_t off = pick_off(t, h);

		if (off + 8 > h->wsize + SLACK)
			continue;
		touch(h->base + off, chance(&t->rng, 50), rnd(&t->rng));
	}
}

/* The kernel reading or writing the window. */
static void op_kcopy(struct thread *t)
{
	struct heap *h = pick_heap(t, NULL);
	uint64_t off = pick_off(t, h);
	size_t len = 1 + below(&t->rng, 3 * PAGE);
	struct iovec iov;
	char buf[256];

	if (off + len > h->wsize + SLACK)
		return;
	switch (below(&t->rng, 4)) {
	case 0:		/* kernel reads the window */
		if (write(t->pipe[1], h->base + off, len) > 0)
			while (read(t->pipe[0], buf, sizeof(buf)) > 0)
				;
		break;
	case 1:		/* kernel writes the window */
		if (write(t->pipe[1], t->argbuf, len) > 0)
			(void)!read(t->pipe[0], h->base + off, len);
		while (read(t->pipe[0], buf, sizeof(buf)) > 0)
			;
		break;
	default:	/* pin window pages in a pipe, drain later */
		iov.iov_base = h->base + off;
		iov.iov_len = len;
		vmsplice(t->pipe[1], &iov, 1, SPLICE_F_NONBLOCK);
		if (chance(&t->rng, 30))
			while (read(t->pipe[0], buf, sizeof(buf)) > 0)
				;
		break;
	}
}

/* A new heap replaces one under the other threads' feet. */
static void op_replace(struct thread *t)
{
	unsigned int hi;
	struct heap *h = pick_heap(t, &hi);
	int fd = open(DEV, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	if (chance(&t->rng, 50))
		mmap(h->base, h->wsize, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_FIXED, fd, 0);
	dup3(fd, h->fd, O_CLOEXEC);
	close(fd);
	t->nlive[hi] = 0;
}

static void do_op(struct thread *t);

/* fork: the child works on the inherited heaps a little. */
static void op_fork(struct thread *t)
{
	bool kill_it = chance(&t->rng, 40);
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return;
	if (pid == 0) {
		unsigned int i, n = 1 + below(&t->rng, 20);

		t->rng = mix(t->rng ^ 0xf0f0);
		for (i = 0; i < n; i++)
			do_op(t);
		_exit(0);
	}
	if (kill_it) {
		if (chance(&t->rng, 50))
			usleep(below(&t->rng, 2000));
		kill(pid, SIGKILL);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL) {
		say("pyalloc_fuzz: forked child died of signal %d\n",
		    WTERMSIG(status));
		_exit(1);
	}
}

/* Per mille of each kind of operation, in enum order. */
static const unsigned int op_weight[NOPS] = {
	270, 200, 250, 90, 110, 70, 3, 7,
};

static uint64_t ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void do_op(struct thread *t)
{
	unsigned int r = below(&t->rng, 1000), k;
	uint64_t t0 = ns_now();

	for (k = 0; k < NOPS - 1 && r >= op_weight[k]; k++)
		r -= op_weight[k];
	switch (k) {
	case OP_ALLOC: op_alloc(t); break;
	case OP_FREE: op_free(t); break;
	case OP_IOCTL: op_ioctl(t); break;
	case OP_TOUCH: op_touch(t); break;
	case OP_MM: op_mm(t); break;
	case OP_KCOPY: op_kcopy(t); break;
	case OP_FORK: op_fork(t); break;
	default: op_replace(t); break;
	}
	__atomic_add_fetch(&t->w->sh->count[k], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&t->w->sh->ns[k], ns_now() - t0, __ATOMIC_RELAXED);
}

static void flush(struct thread *t)
{
	__atomic_add_fetch(&t->w->sh->ops[t->w->slot], t->unflushed,
			   __ATOMIC_RELAXED);
	__atomic_add_fetch(&t->w->sh->total, t->unflushed, __ATOMIC_RELAXED);
	t->unflushed = 0;
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;
	struct worker *w = t->w;
	char *m;

	/* Buffers, all mapped before the first operation. */
	m = mmap(NULL, ARGBUF + 5 * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return (void *)1;
	t->argbuf = m;
	mprotect(m + ARGBUF, PAGE, PROT_NONE);		/* guard */
	t->ro = m + ARGBUF + PAGE;
	mprotect(t->ro, PAGE, PROT_READ);
	t->none = m + ARGBUF + 2 * PAGE;
	mprotect(t->none, PAGE, PROT_NONE);
	t->hole = m + ARGBUF + 3 * PAGE;
	munmap(t->hole, 2 * PAGE);
	if (pipe2(t->pipe, O_NONBLOCK | O_CLOEXEC))
		return (void *)1;
	/* No mapping of anyone else appears once operations start. */
	pthread_barrier_wait(&w->start);

	while (t->ops < w->quota) {
		do_op(t);
		t->ops++;
		if (++t->unflushed == FLUSH_EVERY)
			flush(t);
	}
	flush(t);
	return NULL;
}

static int open_heap(struct heap *h, uint32_t mode)
{
	struct pyalloc_config cfg = { .flags = PYALLOC_CONFIG_MODE,
				      .mode = mode };
	struct pyalloc_info info;
	char *r;

	h->fd = open(DEV, O_RDWR | O_CLOEXEC);
	if (h->fd < 0)
		return -1;
	if (ioctl(h->fd, PYALLOC_IOC_CONFIG, &cfg))
		return -1;
	memset(&info, 0, sizeof(info));
	if (ioctl(h->fd, PYALLOC_IOC_INFO, &info))
		return -1;
	h->wsize = info.window_size;
	h->arena = info.arena_size;
	/* Reserve the window and the slack, then map the window there. */
	r = mmap(NULL, h->wsize + SLACK, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return -1;
	h->base = mmap(r, h->wsize, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_FIXED, h->fd, 0);
	return h->base == MAP_FAILED ? -1 : 0;
}

static void close_heap(struct heap *h)
{
	munmap(h->base, h->wsize + SLACK);
	close(h->fd);
}

static int worker_main(struct worker *w)
{
	pthread_t tids[MAX_THREADS];
	struct thread *ts;
	unsigned int i;
	int ret = 0;

	catch_faults();
	if (w->unprivileged) {
		struct rlimit rl = { 16 << 20, 16 << 20 };

		if (setrlimit(RLIMIT_MEMLOCK, &rl) || setgid(NOBODY) ||
		    setuid(NOBODY)) {
			say("pyalloc_fuzz: worker %u: cannot drop privileges: %s\n",
			    w->slot, strerror(errno));
			return 1;
		}
	}
	for (i = 1; i < NHEAPS; i++)
		if (open_heap(&w->heaps[i], i == 1 ? PYALLOC_MODE_PRIVATE :
						     PYALLOC_MODE_SHARED)) {
			say("pyalloc_fuzz: worker %u: cannot open a heap: %s\n",
			    w->slot, strerror(errno));
			return 1;
		}
	ts = mmap(NULL, sizeof(*ts) * opt_threads, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ts == MAP_FAILED)
		return 1;
	pthread_barrier_init(&w->start, NULL, opt_threads);
	for (i = 0; i < opt_threads; i++) {
		ts[i].w = w;
		ts[i].id = i;
		ts[i].rng = mix(w->seed ^ mix(i + 1));
		if (pthread_create(&tids[i], NULL, thread_main, &ts[i]))
			return 1;
	}
	for (i = 0; i < opt_threads; i++) {
		void *r;

		pthread_join(tids[i], &r);
		if (r)
			ret = 1;
	}
	return ret;
}

static long long param(const char *name)
{
	char path[256], buf[64];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), PARAMS "%s", name);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f))
		v = atoll(buf);
	fclose(f);
	return v;
}

/* The kernel stacks of a worker's tasks, for a hang report. */
static void dump_stacks(pid_t pid)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "for t in /proc/%d/task/*; do echo \"== $t $(cat $t/wchan 2>/dev/null)\"; "
		 "cat $t/stack 2>/dev/null; done", (int)pid);
	fflush(stdout);
	(void)!system(cmd);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: pyalloc_fuzz [-s SEED] [-n OPS] [-p PROCS] "
		"[-t THREADS] [-w SECS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t seed, target = 20000, per_round, round;
	const char *env = getenv("PYALLOC_FUZZ_OPS");
	unsigned int killed = 0, i;
	bool have_seed = false;
	struct shared *sh;
	long long held;
	double t0;
	int opt, fail = 0;

	if (env && *env)
		target = strtoull(env, NULL, 0);
	while ((opt = getopt(argc, argv, "s:n:p:t:w:h")) != -1) {
		switch (opt) {
		case 's': seed = strtoull(optarg, NULL, 0); have_seed = true; break;
		case 'n': target = strtoull(optarg, NULL, 0); break;
		case 'p': opt_procs = atoi(optarg); break;
		case 't': opt_threads = atoi(optarg); break;
		case 'w': opt_watchdog = atoi(optarg); break;
		default: usage();
		}
	}
	if (!opt_procs || opt_procs > MAX_PROCS || !opt_threads ||
	    opt_threads > MAX_THREADS)
		usage();
	if (!have_seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = mix(ts.tv_sec ^ ((uint64_t)ts.tv_nsec << 20) ^
			   ((uint64_t)getpid() << 40));
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("# pyalloc_fuzz: seed 0x%016llx (replay: pyalloc_fuzz -s 0x%016llx -n %llu -p %u -t %u)\n",
	       (unsigned long long)seed, (unsigned long long)seed,
	       (unsigned long long)target, opt_procs, opt_threads);
	printf("TAP version 13\n1..1\n");
	if (access(DEV, F_OK)) {
		printf("ok 1 pyalloc_fuzz # SKIP %s not present\n", DEV);
		return KSFT_SKIP;
	}

	/* Orphans of killed workers come to us: all are reaped at the end. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	/* Rounds of about 4000 ops per worker: many forks and kills. */
	per_round = (uint64_t)opt_threads * 1000;
	t0 = now();

	for (round = 0; sh->total < target && !fail; round++) {
		pid_t pids[MAX_PROCS];
		uint64_t victim_at[MAX_PROCS];
		struct worker w;
		uint64_t rs = mix(seed ^ mix(round + 1)), last = sh->total;
		unsigned int alive = 0;
		double last_progress = now();

		memset(&w, 0, sizeof(w));
		w.sh = sh;
		w.quota = per_round / opt_threads;
		if ((target - sh->total) / opt_procs < per_round)
			w.quota = (target - sh->total) / opt_procs /
				  opt_threads + 1;
		w.unprivileged = round % 2 && getuid() == 0;
		if (open_heap(&w.heaps[0], round % 4 >= 2 ?
				PYALLOC_MODE_PRIVATE : PYALLOC_MODE_SHARED)) {
			printf("# cannot open the shared heap: %s\n",
			       strerror(errno));
			fail = 1;
			break;
		}
		memset(sh->ops, 0, sizeof(sh->ops));
		for (i = 0; i < opt_procs; i++) {
			/* A third of the workers die at a random point. */
			victim_at[i] = below(&rs, 3) ? 0 :
				       1 + below(&rs, w.quota * opt_threads);
			w.slot = i;
			w.seed = mix(rs ^ mix(0x100 + i));
			pids[i] = fork();
			if (pids[i] < 0) {
				printf("# fork: %s\n", strerror(errno));
				fail = 1;
				break;
			}
			if (pids[i] == 0)
				_exit(worker_main(&w));
			alive++;
		}
		/* The workers hold the shared heap now. */
		close_heap(&w.heaps[0]);

		while (alive) {
			int status;
			pid_t pid = waitpid(-1, &status, WNOHANG);

			if (pid > 0) {
				for (i = 0; i < opt_procs; i++)
					if (pids[i] == pid)
						break;
				if (i == opt_procs)
					continue;
				pids[i] = 0;
				alive--;
				if (WIFSIGNALED(status) &&
				    WTERMSIG(status) == SIGKILL &&
				    victim_at[i] == UINT64_MAX) {
					killed++;
				} else if (!WIFEXITED(status) ||
					   WEXITSTATUS(status)) {
					printf("# round %llu worker %u: %s %d\n",
					       (unsigned long long)round, i,
					       WIFSIGNALED(status) ?
					       "killed by signal" : "exit status",
					       WIFSIGNALED(status) ?
					       WTERMSIG(status) :
					       WEXITSTATUS(status));
					fail = 1;
				}
				continue;
			}
			for (i = 0; i < opt_procs; i++) {
				if (pids[i] && victim_at[i] &&
				    victim_at[i] != UINT64_MAX &&
				    __atomic_load_n(&sh->ops[i],
						    __ATOMIC_RELAXED) >=
				    victim_at[i]) {
					kill(pids[i], SIGKILL);
					victim_at[i] = UINT64_MAX;
				}
			}
			if (sh->total != last) {
				if (sh->total / 100000 != last / 100000)
					printf("# %llu operations, %.0fs\n",
					       (unsigned long long)sh->total,
					       now() - t0);
				last = sh->total;
				last_progress = now();
			} else if (now() - last_progress > opt_watchdog) {
				printf("# HANG: no progress for %us in round %llu\n",
				       opt_watchdog, (unsigned long long)round);
				for (i = 0; i < opt_procs; i++)
					if (pids[i])
						dump_stacks(pids[i]);
				for (i = 0; i < opt_procs; i++)
					if (pids[i])
						kill(pids[i], SIGKILL);
				fail = 1;
				last_progress = now();
			}
			usleep(2000);
		}
	}

	printf("# %llu operations in %llu rounds, %u workers killed, %.1fs\n",
	       (unsigned long long)sh->total, (unsigned long long)round,
	       killed, now() - t0);
	for (i = 0; i < NOPS; i++)
		printf("#   %-8s %9llu ops, %8.1f us each\n", op_names[i],
		       (unsigned long long)sh->count[i],
		       sh->count[i] ? sh->ns[i] / 1e3 / sh->count[i] : 0.0);

	/* Reap the orphans, then every heap is closed: nothing may be held. */
	for (i = 0; i < 3000; i++) {
		if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
			break;
		usleep(10000);
	}
	if (i == 3000) {
		printf("# children still running 30s after the last round\n");
		fail = 1;
	}
	for (i = 0; i < 100 && (held = param("pages_held")) > 0; i++)
		usleep(100000);
	held = param("pages_held");
	if (held > 0 || param("heaps") > 0) {
		printf("# after the run: pages_held=%lld heaps=%lld\n", held,
		       param("heaps"));
		fail = 1;
	}
	printf("%s 1 pyalloc_fuzz seed 0x%016llx\n", fail ? "not ok" : "ok",
	       (unsigned long long)seed);
	return fail;
}
