/*
 * `livemig send`'s image, streamed from disk while the channels send it.
 *
 * The image is mapped without MAP_POPULATE (the library sends from memory
 * and needs a base pointer), and a read-ahead thread follows the sender's
 * round-one cursor (lm_sender_cursor): it starts the disk reads a window
 * ahead of the pages handed to the channels (POSIX_FADV_WILLNEED), maps
 * the next pages in bulk (MADV_POPULATE_READ, so the channels do not fault
 * page by page) and drops what was sent (MADV_DONTNEED; for an image
 * larger than half the RAM also its page cache, POSIX_FADV_DONTNEED). So
 * disk and network overlap and the resident set stays about two windows,
 * whatever the image's size.
 *
 * Holes: a sparse image (a VM's memory-backend file, where untouched guest
 * pages are holes) reads its holes as zeros, but through the page cache
 * each is a new page the kernel allocates and clears, every time the cache
 * lost it. The read-ahead thread finds the holes (SEEK_HOLE) ahead of its
 * advice and maps anonymous memory over the larger ones: the zero page, no
 * page cache, no disk, and it advises only the data. The holes are what
 * the file shows when the walk reaches them, within the size it had when
 * opened: a file written while it is sent is not a consistent image
 * anyway, and a truncation that cuts only mapped holes raises no SIGBUS
 * (their zeros are sent, as the file held them).
 *
 * Read errors: a page the file cannot supply (the file was truncated, or
 * the disk fails: EIO) is SIGBUS when read through a mapping. The channel
 * threads read it inside the library, which must not be left by
 * siglongjmp (locks, half-sent packets), so the SIGBUS handler instead maps
 * a zero page over the bad one (the read then completes), records the
 * offset and cancels the sender (async-signal-safe): the migration fails,
 * the receiver is told and discards the image, and the CLI names the
 * offset and the cause. Reading with pread into buffers instead would need
 * the library to take pages from a callback rather than from memory.
 */
#ifndef LM_TOOLS_STREAM_H
#define LM_TOOLS_STREAM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "livemig.h"

#define STREAM_DEFAULT_WINDOW (64ull << 20)
#define STREAM_HOLE_MIN (64u << 10) /* smaller holes are read as the file's */
#define STREAM_HOLES_MAX 8192u      /* mappings, well under vm.max_map_count */

typedef struct stream_hole {
	uint64_t off, end; /* system-page aligned, end > off */
} stream_hole;

/* Set by stream_open() and read-only after it, but the marked fields. */
typedef struct stream {
	const char *path;
	int fd;
	uint8_t *base;          /* NULL for an empty image */
	uint64_t len;           /* the size when opened */
	uint64_t maplen;        /* len rounded up to the system's page size */
	uint64_t window;        /* read-ahead bytes past the cursor */
	int drop_cache;         /* also drop the page cache behind the cursor */
	/* Owner: the read-ahead thread; the caller reads them after the join. */
	stream_hole *holes;     /* mapped anonymous, in order; nholes of them */
	uint32_t nholes;
	uint64_t hole_bytes;    /* their sum */
	uint64_t hole_at;       /* the walk's next offset */
	int holes_done;         /* the walk ended (the end, the cap, an error) */
	lm_sender *s;           /* whose cursor; set by stream_start() */
	pthread_t tid;          /* the read-ahead thread's, while started */
	int started;            /* owner: the caller */
	int stop;               /* atomic: the thread ends */
	/* The first failed read (atomic, written once: by the thread or the
	 * SIGBUS handler, on any thread): the offset, UINT64_MAX for none,
	 * and -errno (0: a SIGBUS, the cause told by the file's size). */
	uint64_t bad_off;
	int bad_err;
	/* Owner: the read-ahead thread; the caller reads them after the join. */
	uint64_t populated, dropped;
	uint64_t rezap_ms;      /* when all behind was last dropped again */
} stream;

/* Opens and maps path (a regular file). 0 or -errno, with msg saying what
 * failed. window 0 = STREAM_DEFAULT_WINDOW. */
int stream_open(stream *st, const char *path, uint64_t window, char *msg, size_t cap);
/* Starts the read-ahead thread on s's cursor and catches SIGBUS on the
 * mapping (one stream at a time per process). 0 or -errno. */
int stream_start(stream *st, lm_sender *s);
/* Joins the thread; SIGBUS on the mapping stays caught until stream_close. */
void stream_stop(stream *st);
/* After stream_stop: 0 if every read succeeded, else a negative code and
 * the message ("bytes X..Y: the file is now N bytes, it was M when opened"). */
int stream_failed(const stream *st, char *msg, size_t cap);
/* Unmaps, closes, restores SIGBUS. Also after a failed stream_open(). */
void stream_close(stream *st);

#endif
