// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The device: the library's only syscalls on /dev/pyalloc go through these
 * six functions, so the host unit tests can link a fake device instead
 * (tests/host/lib_fakedev.c) and run everything else unchanged.
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define PYAI_DEVICE "/dev/pyalloc"

int pyai_dev_open(void)
{
	int fd = open(PYAI_DEVICE, O_RDWR | O_CLOEXEC);

	/* No node, or a node without a driver behind it: no device. */
	if (fd < 0 && (errno == ENOENT || errno == ENXIO))
		errno = ENODEV;
	return fd;
}

int pyai_dev_ioctl(int fd, unsigned long request, void *arg)
{
	int ret;

	do
		ret = ioctl(fd, request, arg);
	while (ret < 0 && errno == EINTR);
	return ret;
}

void *pyai_dev_map(int fd, size_t len)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
}

void pyai_dev_unmap(void *addr, size_t len)
{
	munmap(addr, len);
}

void pyai_dev_close(int fd)
{
	close(fd);
}

int pyai_dev_move_fd(int fd, int lo)
{
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, lo);

	if (nfd < 0)
		return fd;
	close(fd);
	return nfd;
}
