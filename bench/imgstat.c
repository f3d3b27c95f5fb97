/*
 * lm-imgstat: the four statistics by which a memory image is compared with
 * the RAM of a real guest (docs/benchmarks.md, "Corpus"). Works on any file
 * of whole 4 KiB pages: an lm-mkimage image or a guest's RAM dump.
 *
 *   zero       zero pages / all pages
 *   duplicate  (non-zero pages - distinct non-zero contents) / non-zero
 *              pages: a page whose content occurs k times adds k - 1.
 *              Exact: 64-bit hash, then a byte compare on a hash match.
 *   deflate1   non-zero page bytes / the sum of their per-page raw DEFLATE
 *              level 1 sizes (zlib deflateInit2, windowBits -15, memLevel 8,
 *              default strategy); a page that does not shrink counts 4096.
 *   zstd1      non-zero page bytes / the sum of the ZSTD_compress(level 1)
 *              sizes of packets of 128 consecutive non-zero pages (512 KiB),
 *              in image order, zero pages left out; the last packet may be
 *              shorter.
 *
 * The compressors run on several threads over disjoint packets; the result
 * does not depend on the thread count.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define PROG "lm-imgstat"
#define PAGE 4096
#define PACKET_PAGES 128
#define MAX_THREADS 8

struct image {
	const uint8_t *base;
	uint64_t pages;
	uint64_t *nz; /* indexes of the non-zero pages, in image order */
	uint64_t nnz;
};

struct job {
	const struct image *img;
	uint64_t first, end; /* packets */
	uint64_t deflated, zstded;
	int rc;
	pthread_t th;
};

static const uint8_t *page_at(const struct image *img, uint64_t i)
{
	return img->base + i * PAGE;
}

static bool is_zero(const uint8_t *p)
{
	/* Overlapping memcmp: glibc's vectorised compare beats a byte loop. */
	return p[0] == 0 && memcmp(p, p + 1, PAGE - 1) == 0;
}

static int list_nonzero(struct image *img)
{
	img->nz = malloc((img->pages ? img->pages : 1) * sizeof(*img->nz));
	if (img->nz == NULL)
		return -1;
	for (uint64_t i = 0; i < img->pages; i++) {
		if (!is_zero(page_at(img, i)))
			img->nz[img->nnz++] = i;
	}
	return 0;
}

/* Distinct contents among the non-zero pages: open addressing on the hash,
 * every hash match confirmed by memcmp, so a collision cannot merge two
 * different pages. Returns UINT64_MAX when out of memory. */
static uint64_t count_distinct(const struct image *img)
{
	uint64_t cap = 64, mask, distinct = 0;
	uint64_t *hash, *slot; /* slot: page index + 1, 0 = empty */

	while (cap / 2 < img->nnz)
		cap <<= 1;
	mask = cap - 1;
	hash = malloc(cap * sizeof(*hash));
	slot = calloc(cap, sizeof(*slot));
	if (hash == NULL || slot == NULL) {
		free(hash);
		free(slot);
		return UINT64_MAX;
	}
	for (uint64_t k = 0; k < img->nnz; k++) {
		const uint8_t *p = page_at(img, img->nz[k]);
		uint64_t h = XXH3_64bits(p, PAGE), i;

		for (i = h & mask; slot[i]; i = (i + 1) & mask) {
			if (hash[i] == h && memcmp(page_at(img, slot[i] - 1), p, PAGE) == 0)
				break;
		}
		if (slot[i])
			continue; /* a duplicate */
		hash[i] = h;
		slot[i] = img->nz[k] + 1;
		distinct++;
	}
	free(hash);
	free(slot);
	return distinct;
}

static uint64_t deflate_page(z_stream *z, const uint8_t *p, uint8_t *out, size_t cap)
{
	uint64_t n;

	deflateReset(z);
	z->next_in = (Bytef *)p;
	z->avail_in = PAGE;
	z->next_out = out;
	z->avail_out = (uInt)cap;
	if (deflate(z, Z_FINISH) != Z_STREAM_END)
		return PAGE; /* cannot happen with a deflateBound buffer */
	n = z->total_out;
	return n < PAGE ? n : PAGE;
}

/* One packet: its pages deflated one by one, then all of them concatenated
 * into one zstd frame. */
static int do_packet(struct job *j, uint64_t pk, z_stream *z, uint8_t *pkt, uint8_t *out,
		     size_t out_cap)
{
	const struct image *img = j->img;
	uint64_t first = pk * PACKET_PAGES, n = img->nnz - first;
	size_t zn;

	if (n > PACKET_PAGES)
		n = PACKET_PAGES;
	for (uint64_t k = 0; k < n; k++) {
		const uint8_t *p = page_at(img, img->nz[first + k]);

		j->deflated += deflate_page(z, p, out, out_cap);
		memcpy(pkt + k * PAGE, p, PAGE);
	}
	zn = ZSTD_compress(out, out_cap, pkt, n * PAGE, 1);
	if (ZSTD_isError(zn)) {
		fprintf(stderr, PROG ": zstd: %s\n", ZSTD_getErrorName(zn));
		return -1;
	}
	j->zstded += zn;
	return 0;
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	size_t cap = ZSTD_compressBound(PACKET_PAGES * PAGE);
	uint8_t *pkt = malloc(PACKET_PAGES * PAGE), *out = malloc(cap);
	z_stream z = { 0 };

	j->rc = -1;
	if (pkt == NULL || out == NULL ||
	    deflateInit2(&z, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		fprintf(stderr, PROG ": out of memory for the compressors\n");
		free(pkt);
		free(out);
		return NULL;
	}
	j->rc = 0;
	for (uint64_t pk = j->first; pk < j->end && j->rc == 0; pk++)
		j->rc = do_packet(j, pk, &z, pkt, out, cap);
	deflateEnd(&z);
	free(pkt);
	free(out);
	return NULL;
}

static unsigned thread_count(uint64_t packets)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	if (n > MAX_THREADS)
		n = MAX_THREADS;
	return (uint64_t)n > packets ? (unsigned)(packets ? packets : 1) : (unsigned)n;
}

/* Sums the per-page deflate and per-packet zstd sizes over all packets. */
static int compress_all(const struct image *img, uint64_t *deflated, uint64_t *zstded)
{
	uint64_t packets = (img->nnz + PACKET_PAGES - 1) / PACKET_PAGES;
	unsigned n = thread_count(packets), started = 0;
	struct job job[MAX_THREADS];
	int rc = 0;

	for (unsigned t = 0; t < n; t++) {
		job[t] = (struct job){ .img = img, .first = packets * t / n,
				       .end = packets * (t + 1) / n };
		/* The first job runs on this thread. */
		if (t > 0 && pthread_create(&job[t].th, NULL, job_main, &job[t]) != 0) {
			fprintf(stderr, PROG ": cannot start a thread\n");
			rc = -1;
			break;
		}
		started = t;
	}
	if (rc == 0)
		job_main(&job[0]);
	for (unsigned t = 1; t <= started; t++)
		pthread_join(job[t].th, NULL);
	*deflated = *zstded = 0;
	for (unsigned t = 0; rc == 0 && t < n; t++) {
		rc = job[t].rc;
		*deflated += job[t].deflated;
		*zstded += job[t].zstded;
	}
	return rc;
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

static int report(const struct image *img)
{
	uint64_t distinct = count_distinct(img), dup, deflated, zstded, raw = img->nnz * PAGE;

	if (distinct == UINT64_MAX) {
		fprintf(stderr, PROG ": out of memory for the duplicate table\n");
		return -1;
	}
	if (compress_all(img, &deflated, &zstded))
		return -1;
	dup = img->nnz - distinct;
	printf("zero %.4f (%" PRIu64 " of %" PRIu64 " pages)\n",
	       img->pages ? (double)(img->pages - img->nnz) / (double)img->pages : 0.0,
	       img->pages - img->nnz, img->pages);
	printf("duplicate %.4f (%" PRIu64 " of %" PRIu64 " non-zero pages; %" PRIu64
	       " distinct contents)\n", img->nnz ? (double)dup / (double)img->nnz : 0.0,
	       dup, img->nnz, distinct);
	printf("deflate1 %.3f (per 4 KiB page, raw DEFLATE level 1, zlib %s)\n",
	       ratio(raw, deflated), zlibVersion());
	printf("zstd1 %.3f (%" PRIu64 " packets of up to 128 non-zero pages, zstd %s)\n",
	       ratio(raw, zstded), (img->nnz + PACKET_PAGES - 1) / PACKET_PAGES,
	       ZSTD_versionString());
	return 0;
}

static int open_image(const char *path, struct image *img)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *m;

	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0 || st.st_size % PAGE != 0) {
		fprintf(stderr, PROG ": %s: not a regular file of whole 4 KiB pages "
				"(%lld bytes)\n", path, (long long)st.st_size);
		close(fd);
		return -1;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		fprintf(stderr, PROG ": mmap %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* One sequential pass per statistic: let the kernel read ahead. */
	madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
	*img = (struct image){ .base = m, .pages = (uint64_t)st.st_size / PAGE };
	return 0;
}

int main(int argc, char **argv)
{
	struct image img;
	int rc;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: " PROG " FILE\n"
		       "Prints the zero-page fraction, the duplicate fraction of the non-zero\n"
		       "pages, the per-page raw DEFLATE level 1 ratio and the zstd level 1\n"
		       "ratio over 512 KiB packets of non-zero pages of a memory image.\n");
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: " PROG " FILE\n");
		return 2;
	}
	if (open_image(argv[1], &img))
		return 1;
	rc = list_nonzero(&img) ? -1 : report(&img);
	if (img.nz == NULL)
		fprintf(stderr, PROG ": out of memory for %" PRIu64 " pages\n", img.pages);
	munmap((void *)img.base, img.pages * PAGE);
	free(img.nz);
	return rc ? 1 : 0;
}
