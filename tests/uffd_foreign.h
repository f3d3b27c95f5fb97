/* Tests: a userfaultfd of the test's own that owns [p, p + len), in WP
 * async mode (writes never block), so livemig's registration of that memory
 * fails with EBUSY. Returns the fd or -errno. */
#ifndef LM_TEST_UFFD_FOREIGN_H
#define LM_TEST_UFFD_FOREIGN_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uffd_compat.h"

static inline int foreign_uffd(void *p, uint64_t len)
{
	struct uffdio_api api = {.api = UFFD_API,
				 .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED};
	struct uffdio_register reg = {.range = {(uintptr_t)p, len}, .mode = UFFDIO_REGISTER_MODE_WP};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

#endif
