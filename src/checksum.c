/*
 * Region checksum (docs/protocol.md, "Checksum"): XXH3-64 of every 1 MiB
 * block, then XXH3-64 (seed = region length) over the little-endian block
 * hashes. Blocks hash independently, so both sides spread the work over
 * threads, and the receiver can hash pages it knows are zero without
 * touching (and faulting in) the memory behind them.
 */
#include "checksum.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

static const uint8_t zero_page[LM_MAX_PAGE_SIZE];

static int bit(const uint64_t *bm, uint64_t i)
{
	return (int)((__atomic_load_n(&bm[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1);
}

/* A block where some pages are known zero: stream it page by page. */
static uint64_t hash_mixed(const uint8_t *p, uint64_t len, uint64_t first_page,
			   const uint64_t *written, uint32_t ps)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	for (uint64_t off = 0; off < len; off += ps) {
		size_t n = len - off < ps ? (size_t)(len - off) : ps;
		XXH3_64bits_update(&st, bit(written, first_page + off / ps) ? p + off : zero_page, n);
	}
	return XXH3_64bits_digest(&st);
}

static uint64_t hash_block(const lm__sum_job *j, uint64_t b)
{
	uint64_t off = b * LM_SUM_BLOCK;
	uint64_t len = j->len - off < LM_SUM_BLOCK ? j->len - off : LM_SUM_BLOCK;
	uint64_t first = off / j->page_size, pages = (len + j->page_size - 1) / j->page_size, set = 0;

	if (!j->written)
		return XXH3_64bits(j->base + off, (size_t)len);
	for (uint64_t i = 0; i < pages; i++)
		set += (uint64_t)bit(j->written, first + i);
	if (set == pages)
		return XXH3_64bits(j->base + off, (size_t)len);
	return hash_mixed(j->base + off, len, first, j->written, j->page_size);
}

typedef struct worker {
	const lm__sum_job *job;
	uint64_t *hashes;
	uint64_t first, step, nblocks;
} worker;

static void *work(void *arg)
{
	worker *w = arg;

	for (uint64_t b = w->first; b < w->nblocks; b += w->step)
		w->hashes[b] = hash_block(w->job, b);
	return NULL;
}

int lm__checksum(const lm__sum_job *j, unsigned threads, uint64_t *out)
{
	uint64_t nblocks = (j->len + LM_SUM_BLOCK - 1) / LM_SUM_BLOCK;
	uint64_t *h = NULL;
	uint8_t *le = NULL;
	pthread_t tid[LM_MAX_CHANNELS];
	worker w[LM_MAX_CHANNELS];
	unsigned started = 0;
	int rc = -ENOMEM;

	if (threads < 1)
		threads = 1;
	if (threads > LM_MAX_CHANNELS)
		threads = LM_MAX_CHANNELS;
	if (nblocks < threads)
		threads = nblocks ? (unsigned)nblocks : 1;
	h = calloc(nblocks ? nblocks : 1, sizeof(*h));
	le = malloc(nblocks ? nblocks * 8 : 1);
	if (!h || !le)
		goto out;
	for (unsigned t = 0; t < threads; t++) {
		w[t] = (worker){j, h, t, threads, nblocks};
		if (t > 0 && pthread_create(&tid[t], NULL, work, &w[t]) == 0)
			started++;
		else if (t > 0)
			work(&w[t]); /* no thread: do its share here */
	}
	work(&w[0]);
	for (unsigned t = 1; t <= started; t++)
		pthread_join(tid[t], NULL);
	for (uint64_t b = 0; b < nblocks; b++)
		for (int k = 0; k < 8; k++)
			le[b * 8 + (uint64_t)k] = (uint8_t)(h[b] >> (8 * k));
	*out = XXH3_64bits_withSeed(le, (size_t)(nblocks * 8), j->len);
	rc = 0;
out:
	free(h);
	free(le);
	return rc;
}

uint64_t lm_region_checksum(const void *base, uint64_t len)
{
	lm__sum_job j = {base, len, NULL, LM_MIN_PAGE_SIZE};
	uint64_t out = 0;

	/* Only allocation can fail: fall back to one thread, same value. */
	if (lm__checksum(&j, 1, &out))
		return 0;
	return out;
}
