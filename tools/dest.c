/* `livemig recv`'s image file (see dest.h). */
#include "dest.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "compat.h" /* MADV_POPULATE_WRITE */
#include "signals.h"
#include "wire.h" /* lm__escape: what the peer names is shown escaped */

int dest_temp(const char *prog, const char *final, int slot, char *tmp, size_t cap)
{
	char dirbuf[4096], basebuf[4096];
	int fd;

	snprintf(dirbuf, sizeof(dirbuf), "%s", final);
	snprintf(basebuf, sizeof(basebuf), "%s", final);
	snprintf(tmp, cap, "%s/.%s.livemig-XXXXXX", dirname(dirbuf), basename(basebuf));
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;
		tmp[0] = 0;
		fprintf(stderr, "%s: %s: cannot create the temporary file: %s\n", prog, final,
			strerror(-rc));
		return rc;
	}
	sig_watch_file(slot, tmp); /* a second signal still removes it */
	return fd;
}

static int make_temp(dest *d)
{
	d->fd = dest_temp(d->prog, d->final, SIG_FILE_IMAGE, d->tmp, sizeof(d->tmp));
	return d->fd < 0 ? d->fd : 0;
}

/* A page of a MAP_SHARED file that the file system cannot back is SIGBUS
 * when written, so every block is reserved (fallocate) before the receiver
 * writes into it: piece by piece as pages arrive (on_reserve), which
 * overlaps the reservation, and its zeroing of tmpfs pages, with the
 * transfer, and never reserves pieces that only zero pages fall in. A
 * full disk or quota is then an error naming the file, never a signal;
 * the announced size was checked against the free space first (--max-size).
 * fallocated blocks read as zero, so the region stays "fresh". Here the
 * file gets its size, and whether fallocate works at all is tried. */
static int reserve_image(dest *d)
{
	struct statfs fs;
	int rc, mode = 0;

	if (!d->maplen)
		return 0;
	if (fstatfs(d->fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC) {
		/* Reserved by population (map_shm); fallocate, its fallback,
		 * is tried without allocating a page. */
		d->shm = 1;
		mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	}
	if (fallocate(d->fd, mode, 0, (off_t)(d->maplen < 4096 ? d->maplen : 4096)) == 0)
		return ftruncate(d->fd, (off_t)d->maplen) < 0 ? -errno : 0;
	d->shm = 0;
	if (errno == EOPNOTSUPP) {
		/* No fallocate here (some FUSE and network file systems):
		 * receive into anonymous memory instead and write(2) it at
		 * commit, where a full disk is ENOSPC, never SIGBUS. */
		d->anon = 1;
		return 0;
	}
	rc = -errno;
	fprintf(stderr, "%s: %s: cannot reserve space for the image: %s\n", d->prog, d->final,
		strerror(-rc));
	return rc;
}

/* The library is about to write [off, off + len) of the image. */
int dest_on_reserve(void *user, uint32_t id, uint64_t off, uint64_t len)
{
	dest *d = user;

	int rc;

	(void)id;
	if (d->anon)
		return 0;
	if (d->shm) {
		/* Count the piece against the free space, as fallocate would
		 * have taken it: the refusal below names the file while the
		 * page population stays the guarantee. */
		if (__atomic_sub_fetch(&d->room, (int64_t)len, __ATOMIC_RELAXED) >= 0)
			return 0;
		errno = ENOSPC;
	} else if (fallocate(d->fd, 0, (off_t)off, (off_t)len) == 0) {
		return 0;
	}
	rc = -errno;
	fprintf(stderr, "%s: %s: cannot reserve bytes %llu..%llu of %llu for the image: %s\n", d->prog,
		d->final, (unsigned long long)off, (unsigned long long)(off + len),
		(unsigned long long)d->maplen, strerror(-rc));
	return rc;
}

/* On tmpfs the receiver populates every page before it writes it
 * (MADV_POPULATE_WRITE) and fails the migration when the file system
 * cannot supply one, which is what fallocate was there for; allocating
 * each page once, in the fault, instead of fallocating whole pieces first
 * cost the receiver a quarter less CPU (docs/benchmarks.md, "Receiver on
 * fast links"), and zero pages take no memory. A kernel without the
 * advice (before 5.14) gets fallocate. Huge pages come from the mount
 * (huge=within_size or always), or with --huge-pages from huge=advise too:
 * not by default, since on the development VM they were slower (2 MiB
 * blocks are the ones its balloon's free page reporting gave back to the
 * host, so each costs host faults; docs/benchmarks.md). */
static int map_shm(dest *d)
{
	struct statvfs vs;

	if (d->huge)
		madvise(d->base, (size_t)d->maplen, MADV_HUGEPAGE); /* advice only */
	if (madvise(d->base, 0, MADV_POPULATE_WRITE) < 0 || fstatvfs(d->fd, &vs) < 0) {
		d->shm = 0;
		return 0;
	}
	d->room = (int64_t)((uint64_t)vs.f_bavail * vs.f_frsize > INT64_MAX
				    ? INT64_MAX
				    : (uint64_t)vs.f_bavail * vs.f_frsize);
	return 0;
}

static int map_image(dest *d)
{
	if (!d->maplen)
		return 0;
	if (d->anon)
		d->base = mmap(NULL, (size_t)d->maplen, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	else
		d->base = mmap(NULL, (size_t)d->maplen, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
	if (d->base == MAP_FAILED) {
		d->base = NULL;
		return -errno;
	}
	/* Pages arrive in any order and zero pages are never touched:
	 * readahead would only read blocks we skip on purpose. */
	if (!d->anon)
		madvise(d->base, (size_t)d->maplen, MADV_RANDOM);
	if (d->shm)
		return map_shm(d);
	return 0;
}

/* The sender's name is shown escaped: it must not print lines or
 * terminal controls of its own. */
static void show_region(const dest *d, const char *name, uint64_t len)
{
	char shown[128];

	if (d->quiet)
		return;
	lm__escape(shown, sizeof(shown), name, strlen(name));
	fprintf(stderr, "%s: receiving \"%s\" (%llu bytes) into %s\n", d->prog, shown,
		(unsigned long long)len, d->final);
}

/* The image is created at the size the sender announces, under a temporary
 * name. It is mapped page-rounded: the tail beyond len is cut at the end. */
int dest_on_region(void *user, uint32_t id, const char *name, uint64_t len, uint32_t page_size,
		     void **base, int *fresh)
{
	dest *d = user;
	int rc;

	if (id != 0 || d->regions++)
		return LM_EREGION; /* one image, one region */
	/* len is within cfg.max_bytes: the library checked it before calling. */
	show_region(d, name, len);
	d->len = len;
	__atomic_store_n(&d->shown_page, page_size, __ATOMIC_RELAXED);
	__atomic_store_n(&d->shown_len, len, __ATOMIC_RELAXED);
	d->maplen = (len + page_size - 1) / page_size * page_size;
	if ((rc = make_temp(d)) || (rc = reserve_image(d)) || (rc = map_image(d)))
		return rc;
	*base = d->base;
	*fresh = 1; /* reserved blocks and anonymous memory read as zeros */
	return 0;
}

/* Anonymous fallback: the received image goes to the file now. */
static int write_image(dest *d)
{
	const char *p = d->base;
	uint64_t left = d->len;

	while (left) {
		ssize_t n = write(d->fd, p, left > (1u << 30) ? (1u << 30) : (size_t)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = -errno;
			fprintf(stderr, "%s: %s: writing %llu bytes: %s\n", d->prog, d->final,
				(unsigned long long)d->len, strerror(-rc));
			return rc;
		}
		p += n;
		left -= (uint64_t)n;
	}
	return 0;
}

/* The mode the file will have: an existing file's, else 0600 (a memory
 * image, or a device state, is as private as the memory was). */
static int final_mode(int fd, const char *final)
{
	struct stat sb;
	mode_t mode = 0600;

	if (stat(final, &sb) == 0)
		mode = sb.st_mode & 0777;
	return fchmod(fd, mode) < 0 ? -errno : 0;
}

int dest_ready(int fd, const char *final, int do_fsync)
{
	if (do_fsync && fsync(fd) < 0)
		return -errno;
	return final_mode(fd, final);
}

int dest_place(char *tmp, const char *final, int slot)
{
	if (rename(tmp, final) < 0)
		return -errno;
	sig_watch_file(slot, NULL);
	tmp[0] = 0;
	return 0;
}

void dest_drop(int *fd, char *tmp, int slot)
{
	if (tmp[0])
		unlink(tmp); /* never a partial file left behind */
	tmp[0] = 0;
	sig_watch_file(slot, NULL);
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int dest_prepare(dest *d, int do_fsync)
{
	int rc;

	if (d->anon && (rc = write_image(d)))
		return rc;
	if (d->base && munmap(d->base, (size_t)d->maplen) < 0)
		return -errno;
	d->base = NULL;
	if (ftruncate(d->fd, (off_t)d->len) < 0)
		return -errno;
	return dest_ready(d->fd, d->final, do_fsync);
}

int dest_commit(dest *d)
{
	return dest_place(d->tmp, d->final, SIG_FILE_IMAGE);
}

void dest_discard(dest *d)
{
	if (d->base)
		munmap(d->base, (size_t)d->maplen);
	d->base = NULL;
	dest_drop(&d->fd, d->tmp, SIG_FILE_IMAGE);
}

/* --max-size's default: what the file system holding the image can take. */
int dest_free_space(const char *image, uint64_t *out)
{
	char dirbuf[4096];
	struct statvfs vs;

	snprintf(dirbuf, sizeof(dirbuf), "%s", image);
	if (statvfs(dirname(dirbuf), &vs) < 0)
		return -errno;
	*out = (uint64_t)vs.f_bavail * vs.f_frsize;
	if (!*out)
		*out = 1; /* 0 would mean "no limit" to the library */
	return 0;
}
