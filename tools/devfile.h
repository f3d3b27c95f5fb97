/*
 * `--device-state FILE`: the application's state at the switchover, from a
 * file (send) or into one (recv), through the library's device state
 * callbacks (include/livemig.h). recv writes what arrives into a temporary
 * file next to FILE, piece by piece (never all of it in memory), and puts it
 * into place only once the migration verified, with the image.
 */
#ifndef LM_TOOLS_DEVFILE_H
#define LM_TOOLS_DEVFILE_H

#include <stddef.h>
#include <stdint.h>

#include "livemig.h"

/* Set by devfile_open_*(); the callbacks run on one thread at a time (the
 * sender's run thread; one receiver channel thread at a time, in order), the
 * commit and close on the command's thread after the run. */
typedef struct devfile {
	const char *path; /* the file named */
	char tmp[4096];   /* recv: the temporary file, "" once committed */
	int fd;           /* -1: none */
	uint64_t bytes;   /* read (send) or written (recv) so far */
	int ended;        /* recv: the end call came (all of it verified) */
	int err;          /* -errno of the read or write that failed, 0 */
} devfile;

/* send: opens path to read (a regular file, a pipe); 0 or -errno, said.
 * A regular file larger than max (0: the library's default) is -EFBIG. */
int devfile_open_send(devfile *f, const char *prog, const char *path, uint64_t max);
/* lm_sender_config.device_state, with device_state_user = the devfile. */
int devfile_send_cb(void *user, lm_devstate_writer *w);
/* recv: creates the temporary file next to path; 0 or -errno, said. */
int devfile_open_recv(devfile *f, const char *prog, const char *path);
/* lm_receiver_config.device_state, with the receiver's user = the devfile. */
int devfile_load_cb(void *user, uint64_t off, const void *buf, size_t len);
/* recv, after a verified run: ready to replace path (fsync if asked, its
 * mode), then renamed into place. 0 or -errno. */
int devfile_prepare(devfile *f, int do_fsync);
int devfile_commit(devfile *f);
/* Closes; an uncommitted temporary file is removed. */
void devfile_close(devfile *f);
/* After a failed run: 1 and why in msg when the file's read or write is
 * what failed it, else 0. */
int devfile_failed(const devfile *f, char *msg, size_t cap);

#endif
