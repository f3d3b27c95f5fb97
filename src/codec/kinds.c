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
#include "codec/kinds.h"
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
		uint64_t pg = off[i] / ps;
		if (lm__is_zero(p, ps)) {
			if (k->dedup)
				lm__dedup_forget(k->dedup, rid, pg);
			pl->zero_off[pl->nz++] = off[i];
			continue;
		}
		if (k->dedup && lm__dedup_page(k->dedup, rid, pg, p, &pl->refs[pl->nr])) {
			if (k->live && (rc = add_dep(pl, rid, pg, &pl->refs[pl->nr], ps)))
				return rc;
			pl->ref_off[pl->nr++] = off[i];
			pl->ref_pages++;
			continue;
		}
		pl->normal_src[pl->nn] = p;
		pl->normal_off[pl->nn++] = off[i];
	}
	return 0;
}

void lm__plan_done(lm__kinds *k, lm__plan *pl)
{
	(void)k;
	pl->npins = 0;
}
