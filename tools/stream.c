/* `livemig send`'s image streamed from disk (see stream.h). */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "compat.h" /* MADV_POPULATE_READ */

#define STREAM_CHUNK (2ull << 20) /* one populate or drop: small enough to follow the cursor */
#define STREAM_REZAP_MS 10

/* The stream SIGBUS is caught for: a lock-free pointer the handler reads. */
static stream *active;
static struct sigaction old_bus;
static long sys_page;

static void record_bad(stream *st, uint64_t off, int err)
{
	uint64_t none = UINT64_MAX;

	if (__atomic_compare_exchange_n(&st->bad_off, &none, off, 0, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST)) {
		__atomic_store_n(&st->bad_err, err, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&st->s, __ATOMIC_SEQ_CST))
			lm_sender_cancel(st->s); /* async-signal-safe */
	}
}

/* A zero page over the one that cannot be read, so the faulting load
 * completes, and the migration is cancelled (stream.h says why not
 * siglongjmp). mmap is a plain system call on Linux, safe here in
 * practice though POSIX does not list it. A SIGBUS elsewhere is not ours:
 * the default action, by returning into the fault again. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	stream *st = __atomic_load_n(&active, __ATOMIC_SEQ_CST);
	uint8_t *a = si->si_addr, *pg;

	(void)uc;
	if (!st || !st->base || a < st->base || a >= st->base + st->maplen) {
		signal(sig, SIG_DFL);
		return;
	}
	pg = st->base + ((uint64_t)(a - st->base) & ~((uint64_t)sys_page - 1));
	if (mmap(pg, (size_t)sys_page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
	    MAP_FAILED) {
		signal(sig, SIG_DFL);
		return;
	}
	record_bad(st, (uint64_t)(pg - st->base), 0);
}

/* The file's holes of STREAM_HOLE_MIN or more that start before upto, up
 * to STREAM_HOLES_MAX of them, replaced by anonymous memory (stream.h); on
 * the read-ahead thread, ahead of its advice, since the walk takes a system
 * call or two a hole (5 ms for a 1 GiB image's 2,300 holes, more with the
 * image): not before the connect. A channel that reads a hole before it is
 * mapped reads the file's zeros, and after it the zero page: the same
 * bytes, so the race is harmless. A file system without SEEK_HOLE reports
 * none (one hole at the end): the file is read as it is. Any failure
 * (no memory) ends the walk, which only costs the holes' reads. */
static void map_holes(stream *st, uint64_t upto)
{
	uint64_t pg = (uint64_t)sys_page, at = st->hole_at;

	if (upto > st->len)
		upto = st->len;
	while (at < upto && !st->holes_done) {
		off_t h = lseek(st->fd, (off_t)at, SEEK_HOLE), d;
		uint64_t off, end;

		if (h < (off_t)at || (uint64_t)h >= st->len || st->nholes == STREAM_HOLES_MAX)
			break; /* an error, none left, or a file system going backwards */
		d = lseek(st->fd, h, SEEK_DATA);
		/* ENXIO alone says no data follows: the hole runs to the end.
		 * Any other error (EIO on a network file system) maps no more
		 * holes: data mapped as zeros would be sent, and checksummed,
		 * as zeros. The last partial page stays the file's (its tail
		 * beyond len is the mapping's own zeros, SIGBUS if it shrank). */
		if ((d < 0 && errno != ENXIO) || (d >= 0 && d <= h))
			break;
		/* A file grown since fstat: nothing past len is ours to map. */
		end = d < 0 || (uint64_t)d > st->len ? st->len : (uint64_t)d;
		at = end;
		off = ((uint64_t)h + pg - 1) & ~(pg - 1);
		end = end & ~(pg - 1);
		if (end <= off || end - off < STREAM_HOLE_MIN)
			continue;
		if (!st->holes && !(st->holes = calloc(STREAM_HOLES_MAX, sizeof(*st->holes))))
			break;
		if (mmap(st->base + off, (size_t)(end - off), PROT_READ,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			break;
		st->holes[st->nholes++] = (stream_hole){off, end};
		st->hole_bytes += end - off;
	}
	st->hole_at = at;
	if (at < upto) /* the loop ended early: no more */
		st->holes_done = 1;
}

/* POSIX_FADV_WILLNEED on the data of [from, to): advising a hole would
 * fill the page cache with cleared pages nothing reads. *next is the first
 * hole that may still lie at or after from (they are in order). */
static void advise_data(stream *st, uint64_t from, uint64_t to, uint32_t *next)
{
	while (from < to) {
		const stream_hole *h = *next < st->nholes ? &st->holes[*next] : NULL;
		uint64_t upto = h && h->off < to ? h->off : to;

		if (h && h->end <= from) {
			(*next)++;
			continue;
		}
		if (from < upto)
			posix_fadvise(st->fd, (off_t)from, (off_t)(upto - from), POSIX_FADV_WILLNEED);
		if (!h || h->off >= to || h->end > to)
			return; /* a hole that crosses to: the next call starts in it */
		from = h->end;
		(*next)++;
	}
}

int stream_open(stream *st, const char *path, uint64_t window, char *msg, size_t cap)
{
	struct stat sb;
	long phys = sysconf(_SC_PHYS_PAGES);
	int rc;

	memset(st, 0, sizeof(*st));
	st->path = path;
	st->bad_off = UINT64_MAX;
	sys_page = sysconf(_SC_PAGESIZE);
	st->window = window ? window : STREAM_DEFAULT_WINDOW;
	st->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (st->fd < 0 || fstat(st->fd, &sb) < 0) {
		rc = -errno;
		snprintf(msg, cap, "cannot open it");
		return rc;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(msg, cap, "not a regular file");
		return -EINVAL;
	}
	st->len = (uint64_t)sb.st_size;
	st->maplen = (st->len + (uint64_t)sys_page - 1) & ~((uint64_t)sys_page - 1);
	/* Keeping the page cache of an image that fits comfortably leaves a
	 * second migration of it warm; a larger one would only push out
	 * everything else. */
	st->drop_cache = phys > 0 && st->len > (uint64_t)phys * (uint64_t)sys_page / 2;
	if (!st->len)
		return 0;
	st->base = mmap(NULL, (size_t)st->maplen, PROT_READ, MAP_PRIVATE, st->fd, 0);
	if (st->base == MAP_FAILED) {
		rc = -errno;
		st->base = NULL;
		snprintf(msg, cap, "cannot map it");
		return rc;
	}
	/* Our own read-ahead leads the kernel's; the channels' faults on
	 * pages it has not reached yet still read ahead sequentially. */
	madvise(st->base, (size_t)st->maplen, MADV_SEQUENTIAL);
	return 0;
}

/* Maps [off, off + len) in, from the page cache or the disk: a failure is
 * a read error, recorded (0 = recorded). Kernels before 5.14 lack the
 * advice: a load per page then does it (a bad page is SIGBUS, caught). */
static int populate(stream *st, uint64_t off, uint64_t len)
{
	int rc;

	do
		rc = madvise(st->base + off, (size_t)len, MADV_POPULATE_READ);
	while (rc < 0 && (errno == EINTR || errno == EAGAIN));
	if (rc == 0)
		return 0;
	if (errno == EINVAL) {
		for (uint64_t o = 0; o < len; o += (uint64_t)sys_page)
			(void)*(volatile const uint8_t *)(st->base + off + o);
		return 0;
	}
	rc = errno == EFAULT ? 0 : -errno; /* EFAULT: a load would be SIGBUS */
	/* The first page that fails, for the message. */
	for (uint64_t o = 0; o < len; o += (uint64_t)sys_page) {
		if (madvise(st->base + off + o, (size_t)sys_page, MADV_POPULATE_READ) < 0) {
			off += o;
			break;
		}
	}
	record_bad(st, off, rc);
	return -1;
}

/* What the channels finished with leaves memory (and with drop_cache the
 * page cache), in whole chunks. Pages behind the cursor come back when the
 * sender reads them again (a duplicate page is compared byte for byte
 * with its first copy before it travels as a ref), and a fault maps the
 * whole large folio of the page cache around the page, not one page
 * (up to 2 MiB for a file just written): 4% of an image's pages read again
 * made it all resident within a second. So every 10 ms all of what is
 * behind is dropped again; what is not mapped costs nothing to drop
 * (0.05 ms for 64 GiB), and a ref compared after that faults once: a 2 GiB
 * image's peak RSS went from 317 MiB (every 50 ms) to 190 MiB, its
 * CPU time did not change. */
static void drop_behind(stream *st, uint64_t done)
{
	uint64_t to = done & ~(STREAM_CHUNK - 1), ms;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
	if (st->dropped && ms - st->rezap_ms >= STREAM_REZAP_MS) {
		st->rezap_ms = ms;
		madvise(st->base, (size_t)st->dropped, MADV_DONTNEED);
	}
	if (to <= st->dropped)
		return;
	madvise(st->base + st->dropped, (size_t)(to - st->dropped), MADV_DONTNEED);
	if (st->drop_cache)
		posix_fadvise(st->fd, (off_t)st->dropped, (off_t)(to - st->dropped),
			      POSIX_FADV_DONTNEED);
	st->dropped = to;
}

static void *stream_main(void *arg)
{
	stream *st = arg;
	uint64_t advised = 0;
	uint32_t hole = 0;

	while (!__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
		uint64_t done, handed, want, n;
		lm_sender_cursor(st->s, &done, &handed);
		drop_behind(st, done);
		if (st->populated < st->dropped) /* the channels outran the disk */
			st->populated = st->dropped;
		/* The disk works a window ahead of what is mapped... */
		want = handed + 2 * st->window < st->len ? handed + 2 * st->window : st->len;
		if (advised < want) {
			map_holes(st, want);
			advise_data(st, advised, want, &hole);
			advised = want;
		}
		/* ...and a window ahead of the channels is mapped. */
		want = handed + st->window < st->len ? handed + st->window : st->len;
		if (st->populated < want) {
			n = want - st->populated < STREAM_CHUNK ? want - st->populated : STREAM_CHUNK;
			if (populate(st, st->populated, n))
				break;
			st->populated += n;
			continue;
		}
		usleep(1000); /* refs are still compared until the run ends */
	}
	return NULL;
}

int stream_start(stream *st, lm_sender *s)
{
	struct sigaction sa;
	int rc;

	__atomic_store_n(&st->s, s, __ATOMIC_SEQ_CST);
	if (!st->base)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	__atomic_store_n(&active, st, __ATOMIC_SEQ_CST);
	if (sigaction(SIGBUS, &sa, &old_bus) < 0)
		return -errno;
	if ((rc = pthread_create(&st->tid, NULL, stream_main, st)))
		return -rc;
	st->started = 1;
	return 0;
}

void stream_stop(stream *st)
{
	if (!st->started)
		return;
	__atomic_store_n(&st->stop, 1, __ATOMIC_RELEASE);
	pthread_join(st->tid, NULL);
	st->started = 0;
}

int stream_failed(const stream *st, char *msg, size_t cap)
{
	uint64_t off = __atomic_load_n(&st->bad_off, __ATOMIC_SEQ_CST);
	int err = __atomic_load_n(&st->bad_err, __ATOMIC_SEQ_CST);
	struct stat sb;

	if (off == UINT64_MAX)
		return 0;
	if (fstat(st->fd, &sb) == 0 && (uint64_t)sb.st_size < st->len) {
		snprintf(msg, cap,
			 "cannot read byte %llu: the file is now %llu bytes, it was %llu when the "
			 "migration started (truncated while being sent)",
			 (unsigned long long)off, (unsigned long long)sb.st_size,
			 (unsigned long long)st->len);
		return -EIO;
	}
	snprintf(msg, cap, "cannot read byte %llu of %llu: %s", (unsigned long long)off,
		 (unsigned long long)st->len, strerror(err ? -err : EIO));
	return err ? err : -EIO;
}

void stream_close(stream *st)
{
	stream_stop(st);
	if (__atomic_load_n(&active, __ATOMIC_SEQ_CST) == st) {
		sigaction(SIGBUS, &old_bus, NULL);
		__atomic_store_n(&active, NULL, __ATOMIC_SEQ_CST);
	}
	if (st->base)
		munmap(st->base, (size_t)st->maplen);
	st->base = NULL;
	if (st->fd >= 0)
		close(st->fd);
	st->fd = -1;
	free(st->holes);
	st->holes = NULL;
	st->nholes = 0;
}
