/*
 * A DATA packet's packed tables (LM_FEAT_PACKED, docs/protocol.md "Packed
 * tables"): varint steps between pages instead of the fixed 8-byte offsets
 * and 16-byte refs. Each value is checked by the same checks as the fixed
 * tables' (src/wire.c), and the encoding is canonical.
 */
#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"
#include "varint.h"
#include "wire.h"

/* ---- packed tables (LM_FEAT_PACKED) ---------------------------------------- */

/* Steps between pages go either way: 0, -1, 1, -2, ... as 0, 1, 2, 3, ... */
static uint64_t zigzag(int64_t v)
{
	return v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
}

static int64_t unzigzag(uint64_t u)
{
	return (u & 1) ? (int64_t) ~(u >> 1) : (int64_t)(u >> 1);
}

typedef struct lm__rd {
	const uint8_t *p, *end;
} lm__rd;

/* One varint of at most 64 bits in its shortest form: -1 for one that runs
 * past the tables, is longer than 10 bytes, exceeds 64 bits or ends in a
 * zero byte (a longer form of a shorter one: one value, one encoding, so
 * what was checked is what was sent). */
static int get_uv(lm__rd *r, uint64_t *v)
{
	uint64_t x = 0;

	for (unsigned sh = 0; sh < 64; sh += 7) {
		uint8_t b;
		if (r->p == r->end)
			return -1;
		b = *r->p++;
		if (sh == 63 && b > 1)
			return -1;
		x |= (uint64_t)(b & 0x7f) << sh;
		if (!(b & 0x80)) {
			if (!b && sh)
				return -1;
			*v = x;
			return 0;
		}
	}
	return -1;
}

static uint64_t region_pages(const lm__limits *lim, uint32_t region)
{
	uint64_t len = lim->region_len[region];

	return len / lim->page_size + (len % lim->page_size != 0);
}

/* A page given as a step from base: 0 on success, -1 for a bad varint, -2
 * for a page outside the region's npages (base and npages are below 2^52:
 * no overflow). */
static int get_page(lm__rd *r, int64_t base, uint64_t npages, uint64_t *page)
{
	uint64_t u;
	int64_t x;

	if (get_uv(r, &u))
		return -1;
	x = unzigzag(u);
	if (x < -base || x >= (int64_t)npages - base)
		return -2;
	*page = (uint64_t)(base + x);
	return 0;
}

size_t lm__enc_data_packed(uint8_t *p, const lm__data_hdr *d, uint32_t page_size,
			   const uint64_t *const off[4], const lm__ref *refs,
			   const lm__delta *deltas, const uint32_t *lens, int with_lens)
{
	const uint32_t n[4] = {d->normal, d->zero, d->ref, d->delta};
	uint8_t *q = p;
	int64_t prev = -1;

	for (int k = 0; k < 4; k++)
		for (uint32_t i = 0; i < n[k]; i++) {
			int64_t page = (int64_t)(off[k][i] / page_size);
			q += lm__put_uv(q, zigzag(page - prev - 1));
			prev = page;
		}
	for (uint32_t i = 0; i < d->ref; i++) {
		q += lm__put_uv(q, refs[i].src_region);
		q += lm__put_uv(q, d->round - refs[i].src_round);
		q += lm__put_uv(q, zigzag((int64_t)(refs[i].src_offset / page_size) -
					  (int64_t)(off[2][i] / page_size)));
	}
	for (uint32_t i = 0; i < d->delta; i++) {
		q += lm__put_uv(q, d->round - 1 - deltas[i].base_round);
		q += lm__put_uv(q, deltas[i].len);
	}
	if (with_lens)
		for (uint32_t i = 0; i < d->normal + d->area; i++)
			q += lm__put_uv(q, lens[i]);
	return (size_t)(q - p);
}

static int packed_offsets(lm__rd *r, const lm__data_hdr *d, const lm__limits *lim, uint64_t *off,
			  lm__err *e)
{
	uint64_t npages = region_pages(lim, d->region), page;
	int64_t prev = -1;

	for (uint32_t i = 0; i < d->pages; i++) {
		int rc = get_page(r, prev + 1, npages, &page);
		if (rc == -1) {
			lm__err_set(e, "data.offset[%u]: a bad varint", i);
			return LM_EFIELD;
		}
		if (rc) {
			lm__err_set(e, "data.offset[%u] outside region %u of %llu bytes", i,
				    d->region, (unsigned long long)lim->region_len[d->region]);
			return LM_EFIELD;
		}
		off[i] = page * lim->page_size;
		prev = (int64_t)page;
	}
	return 0;
}

static int packed_refs(lm__rd *r, const lm__data_hdr *d, const lm__limits *lim, const uint64_t *off,
		       lm__ref *refs, lm__err *e)
{
	const uint64_t *own = off + d->normal + d->zero;

	for (uint32_t i = 0; i < d->ref; i++) {
		uint64_t region, back, page;
		int rc;
		if (get_uv(r, &region) || get_uv(r, &back)) {
			lm__err_set(e, "data.ref[%u]: a bad varint", i);
			return LM_EFIELD;
		}
		if (region >= lim->region_count || back > d->round) {
			lm__err_set(e,
				    "data.ref[%u]: src_region %llu (%u regions), %llu rounds back "
				    "from %u",
				    i, (unsigned long long)region, lim->region_count,
				    (unsigned long long)back, d->round);
			return LM_EFIELD;
		}
		rc = get_page(r, (int64_t)(own[i] / lim->page_size),
			      region_pages(lim, (uint32_t)region), &page);
		if (rc == -1) {
			lm__err_set(e, "data.ref[%u].src_offset: a bad varint", i);
			return LM_EFIELD;
		}
		if (rc) {
			lm__err_set(e, "data.ref[%u].src_offset not a page of region %u", i,
				    (unsigned)region);
			return LM_EFIELD;
		}
		refs[i].src_region = (uint32_t)region;
		refs[i].src_round = d->round - (uint32_t)back;
		refs[i].src_offset = page * lim->page_size;
		if ((rc = lm__data_check_ref(i, d, lim, own[i], &refs[i], e)))
			return rc;
	}
	return 0;
}

/* The delta entries; their encodings' total into *sum. */
static int packed_deltas(lm__rd *r, const lm__data_hdr *d, const lm__limits *lim,
			 const uint64_t *off, lm__delta *deltas, uint64_t *sum, lm__err *e)
{
	const uint64_t *own = off + d->normal + d->zero + d->ref;

	for (uint32_t i = 0; i < d->delta; i++) {
		uint64_t back, len;
		int rc;
		if (get_uv(r, &back) || get_uv(r, &len)) {
			lm__err_set(e, "data.delta[%u]: a bad varint", i);
			return LM_EFIELD;
		}
		if (back >= d->round || len >= lim->page_size) {
			lm__err_set(e,
				    "data.delta[%u]: base round %u - 1 - %llu, len %llu (page size "
				    "%u)",
				    i, d->round, (unsigned long long)back, (unsigned long long)len,
				    lim->page_size);
			return LM_EFIELD;
		}
		deltas[i].base_round = d->round - 1 - (uint32_t)back;
		deltas[i].len = (uint32_t)len;
		if ((rc = lm__data_check_delta(i, d, lim, own[i], &deltas[i], e)))
			return rc;
		*sum += len;
	}
	return 0;
}

static int packed_lengths(lm__rd *r, const lm__data_hdr *d, const lm__limits *lim,
			  const lm__codec_ops *ops, uint32_t *plen, lm__err *e)
{
	uint32_t nlen = d->normal + d->area;
	uint64_t sum = 0;
	int rc;

	for (uint32_t i = 0; i < nlen; i++) {
		uint64_t u = lim->page_size;
		if (ops->per_page && !ops->raw_only && get_uv(r, &u)) {
			lm__err_set(e, "data.length[%u]: a bad varint", i);
			return LM_EFIELD;
		}
		if (u > lim->page_size) {
			lm__err_set(e, "data.length[%u] %llu outside 1..%u", i,
				    (unsigned long long)u, lim->page_size);
			return LM_EFIELD;
		}
		plen[i] = (uint32_t)u;
		if ((rc = lm__data_check_length(i, plen[i], ops, lim, e)))
			return rc;
		sum += u;
	}
	return lm__data_check_payload_sum(d, ops, sum, e);
}

int lm__dec_data_packed(const uint8_t *p, lm__data_hdr *d, const lm__limits *lim, uint64_t *off,
			uint32_t *plen, lm__ref *refs, lm__delta *deltas, lm__err *e)
{
	const lm__codec_ops *ops = lm__codec_get(d->codec_flags & LM_PKT_CODEC_MASK);
	lm__rd r = {p, p + d->tables};
	uint64_t sum = 0;
	int rc;

	if ((rc = packed_offsets(&r, d, lim, off, e)) ||
	    (rc = packed_refs(&r, d, lim, off, refs, e)) ||
	    (rc = packed_deltas(&r, d, lim, off, deltas, &sum, e)))
		return rc;
	/* Each encoding is shorter than a page: at most one area page each. */
	d->area = (uint32_t)((sum + lim->page_size - 1) / lim->page_size);
	if ((rc = lm__data_check_payload_bound(d, ops, lim, d->normal + d->area, e)) ||
	    (rc = packed_lengths(&r, d, lim, ops, plen, e)))
		return rc;
	if (r.p != r.end) {
		lm__err_set(e, "data.tables: %zu of %u bytes left over", (size_t)(r.end - r.p),
			    d->tables);
		return LM_EFIELD;
	}
	return 0;
}
