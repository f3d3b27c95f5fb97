/*
 * Content index for ref pages: an open-addressing table of 8-byte entries
 * in buckets of 8 (one cache line), probed bucket after bucket until one
 * with a free slot. An entry names a page (a global page number over all
 * regions) and carries 24 bits of its content's hash, which place it, and
 * the round it was sent in, modulo 256. A per-page byte holds the round the
 * page was last sent in (modulo 256): an entry whose page was sent again
 * since describes content the receiver no longer has. The table is emptied
 * every 256 rounds, so the low bits name the round exactly.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "codec/dedup.h"
#include "hash.h"

#define SLOTS 8                    /* entries per bucket */
#define EMPTY UINT32_MAX
#define MAX_GPAGE (UINT32_MAX - 1) /* pages beyond are never indexed */
#define MAX_CANDIDATES 8           /* compared per lookup */
#define MIN_BUCKETS 1024

typedef struct entry {
	uint32_t page; /* global page number, EMPTY: free */
	uint32_t hr;   /* hash bits 63..40 << 8 | round & 0xff */
} entry;

struct lm__dedup {
	uint32_t page_size, nregions;
	const uint8_t *base[LM_MAX_REGIONS];
	uint64_t len[LM_MAX_REGIONS];
	uint64_t first[LM_MAX_REGIONS + 1]; /* global number of each region's page 0 */
	uint64_t (*hash)(const void *p, size_t len);
	/* Per global page: round & 0xff of its last send (atomic bytes; a
	 * page is sent by one channel per round, read by any). */
	uint8_t *sent;
	/* Written by lm__dedup_round() while the channels are idle; read by
	 * channel threads (the job post orders them). */
	uint32_t round;
	const uint64_t *const *set;
	pthread_mutex_t lock;
	/* Guarded by lock. */
	entry *tab;
	uint64_t nbuckets, used;
	/* Atomics. */
	uint64_t lookups, hits, collisions, stale;
};

static uint64_t xxh3(const void *p, size_t len)
{
	struct iovec v = {(void *)p, len};

	return lm__hash(&v, 1, 0);
}

static entry *table_new(uint64_t nbuckets)
{
	entry *t = malloc(nbuckets * SLOTS * sizeof(entry));

	if (t)
		memset(t, 0xff, nbuckets * SLOTS * sizeof(entry)); /* every page EMPTY */
	return t;
}

int lm__dedup_new(lm__dedup **out, const uint8_t *const *base, const uint64_t *len, uint32_t n,
		  uint32_t page_size)
{
	lm__dedup *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d || n > LM_MAX_REGIONS)
		goto fail;
	d->page_size = page_size;
	d->nregions = n;
	d->hash = xxh3;
	for (uint32_t i = 0; i < n; i++) {
		d->base[i] = base[i];
		d->len[i] = len[i];
		d->first[i + 1] = d->first[i] + (len[i] + page_size - 1) / page_size;
	}
	d->nbuckets = MIN_BUCKETS;
	if (!(d->sent = calloc(d->first[n] ? d->first[n] : 1, 1)) || !(d->tab = table_new(d->nbuckets)))
		goto fail;
	pthread_mutex_init(&d->lock, NULL);
	*out = d;
	return 0;
fail:
	if (d) {
		free(d->sent);
		free(d);
	}
	return -ENOMEM;
}

void lm__dedup_free(lm__dedup *d)
{
	if (!d)
		return;
	pthread_mutex_destroy(&d->lock);
	free(d->tab);
	free(d->sent);
	free(d);
}

void lm__dedup_set_hash(lm__dedup *d, uint64_t (*hash)(const void *p, size_t len))
{
	d->hash = hash;
}

void lm__dedup_round(lm__dedup *d, uint32_t round, const uint64_t *const *set)
{
	d->round = round;
	d->set = set;
	if (round && !(round & 0xff)) {
		/* The low bits would name two rounds: start over. */
		pthread_mutex_lock(&d->lock);
		memset(d->tab, 0xff, d->nbuckets * SLOTS * sizeof(entry));
		d->used = 0;
		pthread_mutex_unlock(&d->lock);
	}
}

static uint64_t start_bucket(const lm__dedup *d, uint32_t h24)
{
	return ((uint64_t)h24 * d->nbuckets) >> 24;
}

static int entry_stale(const lm__dedup *d, const entry *en)
{
	return __atomic_load_n(&d->sent[en->page], __ATOMIC_RELAXED) != (uint8_t)en->hr;
}

/* Under lock. Places en in the first free slot of its chain. */
static void place(entry *tab, uint64_t nbuckets, uint64_t b, entry en)
{
	for (;; b = (b + 1) % nbuckets)
		for (int k = 0; k < SLOTS; k++)
			if (tab[b * SLOTS + k].page == EMPTY) {
				tab[b * SLOTS + k] = en;
				return;
			}
}

/* Under lock, at 90% full: a table half again as large, without the
 * entries of pages sent again since (they can never be used). */
static int grow(lm__dedup *d)
{
	uint64_t nb = d->nbuckets + d->nbuckets / 2, used = 0;
	entry *t = table_new(nb);

	if (!t)
		return -ENOMEM;
	for (uint64_t i = 0; i < d->nbuckets * SLOTS; i++) {
		entry en = d->tab[i];
		if (en.page == EMPTY || entry_stale(d, &en))
			continue;
		place(t, nb, ((uint64_t)(en.hr >> 8) * nb) >> 24, en);
		used++;
	}
	free(d->tab);
	d->tab = t;
	d->nbuckets = nb;
	d->used = used;
	return 0;
}

static void insert(lm__dedup *d, uint32_t gpage, uint32_t hr)
{
	pthread_mutex_lock(&d->lock);
	/* Without room to grow, the page is simply not indexed. */
	if ((d->used + 1) * 10 <= d->nbuckets * SLOTS * 9 || grow(d) == 0) {
		place(d->tab, d->nbuckets, start_bucket(d, hr >> 8), (entry){gpage, hr});
		d->used++;
	}
	pthread_mutex_unlock(&d->lock);
}

/* Under lock: up to MAX_CANDIDATES entries with the hash bits h24. */
static int candidates(lm__dedup *d, uint32_t h24, entry *out)
{
	int n = 0;

	for (uint64_t b = start_bucket(d, h24), seen = 0; seen < d->nbuckets && n < MAX_CANDIDATES;
	     b = (b + 1) % d->nbuckets, seen++) {
		int free_slot = 0;
		for (int k = 0; k < SLOTS && n < MAX_CANDIDATES; k++) {
			entry en = d->tab[b * SLOTS + k];
			if (en.page == EMPTY)
				free_slot = 1;
			else if (en.hr >> 8 == h24)
				out[n++] = en;
		}
		if (free_slot)
			break;
	}
	return n;
}

static uint32_t region_of(const lm__dedup *d, uint64_t gpage)
{
	uint32_t lo = 0, hi = d->nregions - 1;

	while (lo < hi) {
		uint32_t mid = (lo + hi + 1) / 2;
		if (d->first[mid] <= gpage)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* A candidate the receiver still holds and a ref may name in this round,
 * with exactly the bytes at p: fills *ref. */
static int usable(lm__dedup *d, const entry *en, const uint8_t *p, lm__ref *ref)
{
	uint32_t rid = region_of(d, en->page), round = (d->round & ~0xffu) | (en->hr & 0xff);
	uint64_t pg = en->page - d->first[rid];
	const uint8_t *src = d->base[rid] + pg * d->page_size;

	if (round > d->round || entry_stale(d, en))
		goto stale;
	/* An earlier round's page that this round may send again: the ref
	 * could reach the receiver after the new content. */
	if (round != d->round && (!d->set || (d->set[rid][pg / 64] >> (pg % 64)) & 1))
		goto stale;
	if (memcmp(src, p, d->page_size)) {
		__atomic_add_fetch(&d->collisions, 1, __ATOMIC_RELAXED);
		return 0;
	}
	*ref = (lm__ref){rid, round, pg * d->page_size};
	return 1;
stale:
	__atomic_add_fetch(&d->stale, 1, __ATOMIC_RELAXED);
	return 0;
}

static void mark_sent(lm__dedup *d, uint64_t gpage)
{
	__atomic_store_n(&d->sent[gpage], (uint8_t)d->round, __ATOMIC_RELAXED);
}

int lm__dedup_page_sum(lm__dedup *d, uint32_t rid, uint64_t pg, const uint8_t *p, lm__ref *ref,
		       uint64_t *sum)
{
	uint64_t gpage = d->first[rid] + pg, h;
	uint32_t h24, n;
	entry cand[MAX_CANDIDATES];

	*sum = 0;
	if (gpage >= MAX_GPAGE || (pg + 1) * d->page_size > d->len[rid])
		return 0; /* the partial last page is never indexed */
	h = d->hash(p, d->page_size);
	if (d->hash == xxh3 && d->page_size == LM_SUM_BLOCK)
		*sum = h;
	h24 = (uint32_t)(h >> 40);
	__atomic_add_fetch(&d->lookups, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&d->lock);
	n = (uint32_t)candidates(d, h24, cand);
	pthread_mutex_unlock(&d->lock);
	mark_sent(d, gpage);
	for (uint32_t i = 0; i < n; i++)
		if (cand[i].page != gpage && usable(d, &cand[i], p, ref)) {
			__atomic_add_fetch(&d->hits, 1, __ATOMIC_RELAXED);
			return 1;
		}
	insert(d, (uint32_t)gpage, h24 << 8 | (d->round & 0xff));
	return 0;
}

int lm__dedup_page(lm__dedup *d, uint32_t rid, uint64_t pg, const uint8_t *p, lm__ref *ref)
{
	uint64_t sum;

	return lm__dedup_page_sum(d, rid, pg, p, ref, &sum);
}

void lm__dedup_forget(lm__dedup *d, uint32_t rid, uint64_t pg)
{
	uint64_t gpage = d->first[rid] + pg;

	if (gpage < MAX_GPAGE)
		mark_sent(d, gpage);
}

void lm__dedup_get_stats(lm__dedup *d, lm__dedup_stats *st)
{
	pthread_mutex_lock(&d->lock);
	st->entries = d->used;
	st->bytes = d->nbuckets * SLOTS * sizeof(entry) + d->first[d->nregions];
	pthread_mutex_unlock(&d->lock);
	st->lookups = __atomic_load_n(&d->lookups, __ATOMIC_RELAXED);
	st->hits = __atomic_load_n(&d->hits, __ATOMIC_RELAXED);
	st->collisions = __atomic_load_n(&d->collisions, __ATOMIC_RELAXED);
	st->stale = __atomic_load_n(&d->stale, __ATOMIC_RELAXED);
}
