// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Fatal errors.  Like glibc's "free(): invalid pointer", the library stops
 * the program when handed a pointer it does not own: carrying on would
 * return someone else's memory to the allocator.  The message is formatted
 * on the stack and written with write(2) so it gets out even when the heap
 * or stdio is in a bad state.  pyai_say() is the same without the abort,
 * for PYALLOC_VERBOSE messages: it may run inside malloc() itself.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

static void say(const char *fmt, va_list ap)
{
	char buf[512];
	int n, err = errno;

	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* nothing more we can do */
	}
	errno = err;
}

void pyai_say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
}

void pyai_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	abort();
}

void pyai_invalid_pointer(const char *fn, const void *p)
{
	pyai_fatal("%s(): invalid pointer %p", fn, p);
}
