/* Region checksum: see checksum.h and docs/protocol.md. */
#include "checksum.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hash.h"

static const uint8_t zero_page[LM_MAX_PAGE_SIZE];

static int bit(const uint64_t *bm, uint64_t i)
{
	return (int)((__atomic_load_n(&bm[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1);
}

static uint64_t block_len(const lm__sumtree *t, uint64_t b)
{
	uint64_t off = b * LM_SUM_BLOCK;

	return t->len - off < LM_SUM_BLOCK ? t->len - off : LM_SUM_BLOCK;
}

static uint64_t hash_one(const uint8_t *p, uint64_t len, uint64_t seed)
{
	struct iovec v = {(void *)p, (size_t)len};

	return lm__hash(&v, 1, seed);
}

/* A block lies inside one page (blocks are 4 KiB, pages 4 KiB or more): a
 * page known to be zero hashes as zeros without being read. */
static uint64_t hash_block(const lm__sumtree *t, uint64_t b)
{
	uint64_t off = b * LM_SUM_BLOCK, len = block_len(t, b);

	if (t->written && !bit(t->written, off / t->page_size))
		return len == LM_SUM_BLOCK ? t->zero_hash : hash_one(zero_page, len, 0);
	return hash_one(t->base + off, len, 0);
}

int lm__sumtree_init(lm__sumtree *t, const uint8_t *base, uint64_t len, uint32_t page_size,
		     const uint64_t *written)
{
	memset(t, 0, sizeof(*t));
	t->base = base;
	t->len = len;
	t->page_size = page_size;
	t->written = written;
	t->nblocks = (len + LM_SUM_BLOCK - 1) / LM_SUM_BLOCK;
	t->hash = calloc(t->nblocks + 1, sizeof(*t->hash));
	t->left = calloc(t->nblocks + 1, sizeof(*t->left));
	t->done = calloc(t->nblocks + 1, 1);
	if (!t->hash || !t->left || !t->done) {
		lm__sumtree_free(t);
		return -ENOMEM;
	}
	for (uint64_t b = 0; b < t->nblocks; b++)
		t->left[b] = 1; /* the one page it lies in */
	t->zero_hash = hash_one(zero_page, LM_SUM_BLOCK, 0);
	return 0;
}

void lm__sumtree_free(lm__sumtree *t)
{
	free(t->hash);
	free(t->left);
	free(t->done);
	t->hash = NULL;
	t->left = NULL;
	t->done = NULL;
}

/* sum: the hash of each page's one block when known (0: not known), or
 * NULL; zero: the pages are all zero. */
static void land(lm__sumtree *t, const uint64_t *off, const uint64_t *sum, uint32_t n, int zero)
{
	uint32_t per_page = t->page_size / LM_SUM_BLOCK;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t b = off[i] / LM_SUM_BLOCK;
		for (uint64_t end = b + per_page; b < end && b < t->nblocks; b++) {
			uint64_t len = block_len(t, b), h;
			/* left > 0 again: a page landed twice (a bad peer) or a
			 * reopened one is still to come; hashed later. */
			if (__atomic_sub_fetch(&t->left[b], 1, __ATOMIC_ACQ_REL) != 0)
				continue;
			if (zero)
				h = len == LM_SUM_BLOCK ? t->zero_hash : hash_one(zero_page, len, 0);
			else if (sum && sum[i] && per_page == 1 && len == LM_SUM_BLOCK)
				h = sum[i];
			else
				h = hash_block(t, b);
			__atomic_store_n(&t->hash[b], h, __ATOMIC_RELAXED);
			__atomic_store_n(&t->done[b], 1, __ATOMIC_RELEASE);
		}
	}
}

void lm__sumtree_land(lm__sumtree *t, const uint64_t *off, uint32_t n)
{
	land(t, off, NULL, n, 0);
}

void lm__sumtree_land_zero(lm__sumtree *t, const uint64_t *off, uint32_t n)
{
	land(t, off, NULL, n, 1);
}

void lm__sumtree_land_sums(lm__sumtree *t, const uint64_t *off, const uint64_t *sum, uint32_t n)
{
	land(t, off, sum, n, 0);
}

typedef struct worker {
	lm__sumtree *t;
	uint64_t first, step;
} worker;

void lm__sumtree_reopen(lm__sumtree *t, uint64_t off)
{
	uint64_t b = off / LM_SUM_BLOCK;

	for (uint64_t end = b + t->page_size / LM_SUM_BLOCK; b < end && b < t->nblocks; b++) {
		__atomic_store_n(&t->done[b], 0, __ATOMIC_RELAXED);
		__atomic_add_fetch(&t->left[b], 1, __ATOMIC_RELAXED);
	}
}

void lm__sumtree_invalidate(lm__sumtree *t)
{
	memset(t->done, 0, t->nblocks);
}

/* A block counts as hashed only if it completed exactly: a page landed
 * twice (a bad peer, or a later round on the receiver) leaves left != 0 and
 * the block is hashed again here. */
static void *work(void *arg)
{
	worker *w = arg;
	/* cppcheck-suppress uninitvar ; lm__sumtree_refresh fills w[k] for
	 * every k < threads (>= 1) before it runs work(&w[k]) */
	lm__sumtree *t = w->t;

	for (uint64_t b = w->first; b < t->nblocks; b += w->step) {
		if (__atomic_load_n(&t->done[b], __ATOMIC_ACQUIRE) && t->left[b] == 0)
			continue;
		t->hash[b] = hash_block(t, b);
		t->left[b] = 0;
		__atomic_store_n(&t->done[b], 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

int lm__sumtree_refresh(lm__sumtree *t, unsigned threads)
{
	pthread_t tid[LM_MAX_CHANNELS];
	worker w[LM_MAX_CHANNELS];
	unsigned started[LM_MAX_CHANNELS] = {0};

	if (threads < 1)
		threads = 1;
	if (threads > LM_MAX_CHANNELS)
		threads = LM_MAX_CHANNELS;
	/* More hashing threads than CPUs only adds switches. */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus > 0 && threads > (unsigned long)cpus)
		threads = (unsigned)cpus;
	if (threads > t->nblocks)
		threads = t->nblocks ? (unsigned)t->nblocks : 1;
	for (unsigned k = 0; k < threads; k++) {
		w[k] = (worker){t, k, threads};
		if (k > 0)
			started[k] = pthread_create(&tid[k], NULL, work, &w[k]) == 0;
	}
	work(&w[0]);
	for (unsigned k = 1; k < threads; k++) {
		if (started[k])
			pthread_join(tid[k], NULL);
		else
			work(&w[k]); /* no thread: do its share here */
	}
	return 0;
}

/* Block hash b as the final pass reads it: 8 bytes, little-endian. */
static void put_le(uint8_t *le, uint64_t b, uint64_t h)
{
	for (int k = 0; k < 8; k++)
		le[b * 8 + (uint64_t)k] = (uint8_t)(h >> (8 * k));
}

/* The final pass: the block hashes, hashed with the length as the seed. */
static uint64_t combine(const uint8_t *le, uint64_t blocks, uint64_t len)
{
	return hash_one(le, blocks * 8, len);
}

int lm__sumtree_final(lm__sumtree *t, unsigned threads, uint64_t *out)
{
	uint8_t *le = malloc(t->nblocks * 8 + 1);

	if (!le)
		return -ENOMEM;
	lm__sumtree_refresh(t, threads);
	for (uint64_t b = 0; b < t->nblocks; b++)
		put_le(le, b, t->hash[b]);
	*out = combine(le, t->nblocks, t->len);
	free(le);
	return 0;
}

void lm__sumstream_init(lm__sumstream *t)
{
	memset(t, 0, sizeof(*t));
}

void lm__sumstream_free(lm__sumstream *t)
{
	free(t->le);
	t->le = NULL;
	t->blocks = t->cap = 0;
}

/* Appends the hash of the block in part (fill bytes). */
static int stream_block(lm__sumstream *t)
{
	if (t->blocks == t->cap) {
		uint64_t cap = t->cap ? t->cap * 2 : 64;
		uint8_t *le = realloc(t->le, cap * 8);
		if (!le)
			return -ENOMEM;
		t->le = le;
		t->cap = cap;
	}
	put_le(t->le, t->blocks++, hash_one(t->part, t->fill, 0));
	t->fill = 0;
	return 0;
}

int lm__sumstream_update(lm__sumstream *t, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		size_t k;
		int rc;
		/* A full block is hashed only once more follows: the last one
		 * may be full or short, as a region's. */
		if (t->fill == LM_SUM_BLOCK && (rc = stream_block(t)))
			return rc;
		k = LM_SUM_BLOCK - t->fill < n ? LM_SUM_BLOCK - t->fill : n;
		memcpy(t->part + t->fill, b, k);
		t->fill += (uint32_t)k;
		t->len += k;
		b += k;
		n -= k;
	}
	return 0;
}

int lm__sumstream_final(lm__sumstream *t, uint64_t *out)
{
	int rc;

	if (t->fill && (rc = stream_block(t)))
		return rc;
	*out = combine(t->le ? t->le : t->part, t->blocks, t->len);
	return 0;
}

int lm_region_checksum(const void *base, uint64_t len, uint64_t *out)
{
	lm__sumtree t;
	int rc;

	if (!out || (!base && len))
		return LM_EINVAL;
	if ((rc = lm__sumtree_init(&t, base, len, LM_MIN_PAGE_SIZE, NULL)))
		return rc;
	rc = lm__sumtree_final(&t, 1, out);
	lm__sumtree_free(&t);
	return rc;
}
