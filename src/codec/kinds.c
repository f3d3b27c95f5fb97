/*
 * Page kinds, the sender's side (kinds.h): zero scan, then the content index
 * (a ref), then the delta cache (a delta), else the page travels. Ref pages
 * come first because they cost nothing but their entry; a page that is not
 * a ref is indexed even when it then goes as a delta, since after the delta
 * the destination holds exactly its bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec/dedup.h"
#include "codec/delta.h"
#include "codec/kinds.h"
#include "delta_cache.h"
#include "zero.h"

/* Reads the partial last page through a zero-padded copy, so only the
 * region's own bytes are ever read. */
static const uint8_t *page_at(lm__plan *pl, const uint8_t *base, uint64_t len, uint64_t off,
			      uint32_t ps)
{
	if (off + ps <= len)
		return base + off;
	memset(pl->tail, 0, ps);
	memcpy(pl->tail, base + off, (size_t)(len - off));
	return pl->tail;
}

static int add_dep(lm__plan *pl, uint32_t rid, uint64_t pg, const lm__ref *ref, uint32_t ps)
{
	if (pl->ndeps == pl->deps_cap) {
		uint64_t cap = pl->deps_cap ? pl->deps_cap * 2 : 1024;
		lm__dep *d = realloc(pl->deps, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		pl->deps = d;
		pl->deps_cap = cap;
	}
	pl->deps[pl->ndeps++] = (lm__dep){rid, ref->src_region, pg, ref->src_offset / ps};
	return 0;
}

/* Round 0 sends every page once: admitting pages to a full cache would
 * only churn it (each evicted unused) and cost a copy per page. Later
 * rounds send the pages being written, which is what the cache is for. */
static int admit(lm__kinds *k)
{
	struct lm__dcache_stats st;

	if (k->round)
		return 1;
	lm__dcache_stats(k->dcache, &st);
	return st.entries < st.bytes / k->page_size;
}

static const uint8_t zero_page[LM_MAX_PAGE_SIZE];

/* A page last sent as a zero page needs no cached copy to be a delta: the
 * destination holds zeros (a guest writing into free memory). zsent[g] is
 * 0x80 | round & 0x7f of that send, cleared every 128 rounds
 * (lm__kinds_round), so the round is exact. */
static int zero_base(const lm__kinds *k, uint64_t gpage, uint32_t *round)
{
	uint8_t z = k->zsent[gpage];

	if (!z)
		return 0;
	*round = (k->round & ~0x7fu) | (z & 0x7fu);
	return *round < k->round;
}

/* A page that is neither zero nor a ref, with a delta cache: its new
 * version goes into the cache, copied before anything reads it, so that
 * what the destination gets (the page or the delta) is exactly what the
 * cache holds; the page then travels from that copy. It goes as a delta
 * when the cache held the version sent before and the runs are at most
 * half a page: smaller than the page, and than most codecs make of it. */
static int cached_page(lm__kinds *k, lm__plan *pl, uint64_t gpage, uint64_t off,
		       const uint8_t *p)
{
	uint32_t ps = k->page_size, old_round = 0;
	const uint8_t *old = NULL;
	lm__dcache_ref *o = lm__dcache_acquire(k->dcache, gpage, &old, &old_round);
	lm__dcache_ref *w = NULL;
	uint8_t *copy = NULL;
	size_t n = LM_DELTA_TOO_BIG;

	if (!o && zero_base(k, gpage, &old_round))
		old = zero_page; /* the destination holds zeros: no copy needed */
	if (k->round) {
		if (old)
			pl->dcache_hits++;
		else
			pl->dcache_misses++;
	}
	if (o || admit(k))
		w = lm__dcache_store(k->dcache, gpage, k->round, &copy);
	if (w) {
		memcpy(copy, p, ps);
		if (old)
			n = lm__delta_encode(old, copy, ps, pl->area + pl->area_len, ps / 2);
	}
	k->zsent[gpage] = 0;
	lm__dcache_release(k->dcache, o);
	if (n != LM_DELTA_TOO_BIG) {
		lm__dcache_release(k->dcache, w);
		pl->deltas[pl->nd] = (lm__delta){old_round, (uint32_t)n};
		pl->delta_off[pl->nd++] = off;
		pl->area_len += n;
		pl->delta_pages++;
		pl->delta_bytes += n;
		return 0;
	}
	if (w)
		pl->pins[pl->npins++] = w;
	pl->normal_src[pl->nn] = w ? copy : p;
	pl->normal_off[pl->nn++] = off;
	return 0;
}

/* The destination's version of the page is no longer one the cache
 * holds. */
static void uncache(lm__kinds *k, uint64_t gpage)
{
	if (!k->dcache)
		return;
	lm__dcache_drop(k->dcache, gpage);
	k->zsent[gpage] = 0;
}

/* Sent as a zero page: a later version can be a delta against zeros. */
static void sent_zero(lm__kinds *k, uint64_t gpage)
{
	if (!k->dcache)
		return;
	lm__dcache_drop(k->dcache, gpage);
	k->zsent[gpage] = (uint8_t)(0x80u | (k->round & 0x7fu));
}

void lm__kinds_round(lm__kinds *k, uint32_t round, int live)
{
	k->round = round;
	k->live = live;
	if (k->zsent && round && !(round & 0x7f))
		memset(k->zsent, 0, k->npages);
}

int lm__plan_packet(lm__kinds *k, lm__plan *pl, uint32_t rid, const uint8_t *base, uint64_t len,
		    const uint64_t *off, uint32_t n)
{
	uint32_t ps = k->page_size;
	int rc;

	pl->nn = pl->nz = pl->nr = pl->nd = 0;
	pl->area_len = 0;
	pl->npins = 0;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p = page_at(pl, base, len, off[i], ps);
		uint64_t pg = off[i] / ps, sum = 0;
		uint64_t gpage = k->first[rid] + pg;
		if (lm__is_zero(p, ps)) {
			if (k->dedup)
				lm__dedup_forget(k->dedup, rid, pg);
			if (off[i] + ps <= len)
				sent_zero(k, gpage);
			else
				uncache(k, gpage);
			pl->zero_off[pl->nz++] = off[i];
			continue;
		}
		if (k->dedup && lm__dedup_page_sum(k->dedup, rid, pg, p, &pl->refs[pl->nr], &sum)) {
			if (k->live && (rc = add_dep(pl, rid, pg, &pl->refs[pl->nr], ps)))
				return rc;
			uncache(k, gpage);
			pl->ref_sum[pl->nr] = sum;
			pl->ref_off[pl->nr++] = off[i];
			pl->ref_pages++;
			continue;
		}
		/* The partial last page is never a delta (the protocol's rule). */
		if (k->dcache && k->live && off[i] + ps <= len) {
			pl->normal_sum[pl->nn] = sum; /* if it stays a normal page */
			if ((rc = cached_page(k, pl, gpage, off[i], p)))
				return rc;
			continue;
		}
		pl->normal_sum[pl->nn] = sum;
		pl->normal_src[pl->nn] = p;
		pl->normal_off[pl->nn++] = off[i];
	}
	return 0;
}

void lm__plan_done(lm__kinds *k, lm__plan *pl)
{
	for (uint32_t i = 0; i < pl->npins; i++)
		lm__dcache_release(k->dcache, pl->pins[i]);
	pl->npins = 0;
}
