/*
 * `livemig recv`'s image file: created under a temporary name next to the
 * final one, reserved piece by piece as pages arrive, mapped for the
 * receiver to write into, and renamed into place only once every region
 * verified (tools/livemig.c drives it through the receiver's callbacks).
 */
#ifndef LM_TOOLS_DEST_H
#define LM_TOOLS_DEST_H

#include <stddef.h>
#include <stdint.h>

#include "livemig.h"

/* Set up by the CLI before the run (prog, final, max_bytes, huge, quiet,
 * fd = -1); the rest by the callbacks, on channel 0's thread (on_region)
 * or any channel thread (on_reserve: room), and by the run's thread after
 * the run. */
typedef struct dest {
	const char *prog;  /* the messages' prefix, "livemig recv" */
	const char *final;
	char tmp[4096];
	int fd;
	void *base;
	uint64_t len, maplen;
	uint64_t max_bytes; /* what a session may announce (--max-size) */
	int regions;
	int anon;  /* received into anonymous memory, written out at commit */
	/* On tmpfs: reserved by the receiver's populate, not fallocate (see
	 * reserve_image); room is the free space left to hand out to pieces
	 * (atomic, on channel threads). */
	int shm;
	int64_t room;
	int huge; /* --huge-pages */
	int quiet; /* no "receiving" line */
	/* For the progress thread (atomics): the image's size and page size,
	 * stored by on_region (channel 0's thread). */
	uint64_t shown_len;
	uint32_t shown_page;
	lm_receiver *r; /* set before the run */
} dest;

/* lm_receiver_config.on_region and .reserve, with user = the dest. */
int dest_on_region(void *user, uint32_t id, const char *name, uint64_t len, uint32_t page_size,
		   void **base, int *fresh);
int dest_on_reserve(void *user, uint32_t id, uint64_t off, uint64_t len);
/* After a verified run: the image written to its file (fsync if asked,
 * its mode), everything that can fail for want of room, then renamed into
 * place. */
int dest_prepare(dest *d, int do_fsync);
int dest_commit(dest *d);
/* After a failed one (or after dest_commit): nothing partial is left. */
void dest_discard(dest *d);
/* A temporary file next to final (".NAME.livemig-XXXXXX", 0600 from its
 * creation by mkostemp), which a second signal removes (signals.h slot):
 * its descriptor, or a negative errno, said on stderr. */
int dest_temp(const char *prog, const char *final, int slot, char *tmp, size_t cap);
/* fd's file made ready to replace final: fsync if asked, final's mode if it
 * exists (else 0600). */
int dest_ready(int fd, const char *final, int do_fsync);
/* tmp renamed over final; then tmp is "" and no longer watched. */
int dest_place(char *tmp, const char *final, int slot);
/* Removes tmp (unless "") and closes *fd (unless -1): nothing partial left. */
void dest_drop(int *fd, char *tmp, int slot);
/* --max-size's default: the free space of the file system holding image. */
int dest_free_space(const char *image, uint64_t *out);

#endif
