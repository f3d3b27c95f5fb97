/* `--device-state FILE` (see devfile.h). */
#include "devfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dest.h"
#include "signals.h"

#define DEVFILE_PIECE (1u << 20) /* what send reads and writes at a time */

int devfile_open_send(devfile *f, const char *prog, const char *path, uint64_t max)
{
	struct stat sb;

	memset(f, 0, sizeof(*f));
	f->path = path;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		f->err = -errno;
		fprintf(stderr, "%s: %s: cannot open the device state: %s\n", prog, path,
			strerror(-f->err));
		return f->err;
	}
	/* A file's size is known: refuse it here rather than after the
	 * image (a pipe's end is found by the library's count). */
	if (!max)
		max = LM_DEFAULT_DEVICE_STATE_MAX;
	if (fstat(f->fd, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > max) {
		fprintf(stderr,
			"%s: %s: the device state is %llu bytes, above --device-state-max "
			"%llu\n",
			prog, path, (unsigned long long)sb.st_size, (unsigned long long)max);
		close(f->fd);
		f->fd = -1;
		return f->err = -EFBIG;
	}
	return 0;
}

/* Read a piece at a time and handed over as read: a state of any size
 * (up to device_state_max) never sits in memory whole. */
int devfile_send_cb(void *user, lm_devstate_writer *w)
{
	devfile *f = user;
	char *buf = malloc(DEVFILE_PIECE);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(f->fd, buf, DEVFILE_PIECE);
		if (n < 0 && errno == EINTR && sig_caught()) {
			rc = LM_ECANCELED; /* a pipe that never ends: the signal ends it */
			break;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = f->err = -errno;
			break;
		}
		if (n == 0 || (rc = lm_devstate_write(w, buf, (size_t)n)))
			break;
		f->bytes += (uint64_t)n;
	}
	free(buf);
	return rc;
}

int devfile_open_recv(devfile *f, const char *prog, const char *path)
{
	memset(f, 0, sizeof(*f));
	f->path = path;
	f->fd = dest_temp(prog, path, SIG_FILE_DEVSTATE, f->tmp, sizeof(f->tmp));
	return f->fd < 0 ? f->fd : 0;
}

/* Pieces come in order (off = what came before), so each is written at the
 * end; the end call (buf NULL) says all of it verified. A write that fails
 * (a full disk: write(2) says ENOSPC, there is no mapping to fault) refuses
 * the state, which fails the migration on both sides. */
int devfile_load_cb(void *user, uint64_t off, const void *buf, size_t len)
{
	devfile *f = user;
	const char *p = buf;

	if (off != f->bytes)
		return LM_ESTATE; /* out of order: the library promises it never is */
	if (!buf) {
		f->ended = 1;
		return 0;
	}
	while (len) {
		ssize_t n = pwrite(f->fd, p, len, (off_t)f->bytes);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			f->err = n < 0 ? -errno : -EIO;
			return f->err;
		}
		p += n;
		len -= (size_t)n;
		f->bytes += (uint64_t)n;
	}
	return 0;
}

int devfile_prepare(devfile *f, int do_fsync)
{
	if (!f->ended)
		return LM_ESTATE; /* a verified run always made the end call */
	return dest_ready(f->fd, f->path, do_fsync);
}

int devfile_commit(devfile *f)
{
	return dest_place(f->tmp, f->path, SIG_FILE_DEVSTATE);
}

void devfile_close(devfile *f)
{
	dest_drop(&f->fd, f->tmp, SIG_FILE_DEVSTATE); /* no partial state under any name */
}

int devfile_failed(const devfile *f, char *msg, size_t cap)
{
	if (!f->err)
		return 0;
	snprintf(msg, cap, "%s the device state at byte %llu: %s",
		 f->tmp[0] ? "writing" : "reading", (unsigned long long)f->bytes,
		 strerror(-f->err));
	return 1;
}
