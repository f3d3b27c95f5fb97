/*
 * libFuzzer target: arbitrary bytes -> every checked decoder of src/wire.h.
 *
 * Input layout:
 *   byte 0   operation (op % OP_COUNT); (op / OP_COUNT) & 3 = the session's
 *            features for DATA: 0 none, 1 REF, 2 DELTA, 3 REF|DELTA;
 *            (op / OP_COUNT) & 4: a MIXED session (codec auto). Then:
 *              0 stream:   frames one after another; each header goes through
 *                          lm__dec_frame, each body (exactly f.len bytes, if the
 *                          input has them) through the decoder of its kind
 *              1 hello     2 region   3 data   4 sync
 *              5 complete  6 ack      7 error  8 frame header only
 *              9 build:    the rest drives a generator of valid DATA
 *                          packets with every page kind (refs to any
 *                          region and round, deltas, their area) under
 *                          the limits; encoded, each must decode to
 *                          what was built, and its wrong variants (no
 *                          feature, another area size) must be refused
 *            For 1..8 the rest of the input is the body (8: the 12-byte
 *            header), passed in a heap buffer of exactly its size (ASan sees
 *            any over-read). For 3 (data) the rest is a be32 announced body
 *            length, the 40-byte header, then the tables (decoded only when
 *            the input really holds them: offsets, the ref and delta
 *            tables and the lengths, with the area the frame length gives).
 *   byte 1   session limits (see limits_from()); 0 = page size 4096,
 *            packet_pages 128, round 0, six regions of assorted lengths.
 *
 * Invariants checked here (violations __builtin_trap()): what every decoder
 * promises on success (see do_*), and decode(encode(x)) == x, plus
 * encode(decode(bytes)) == bytes for the kinds whose every byte is a field or
 * a reserved byte the decoder checks (error: only when the decoder neither
 * sanitised the text nor clamped the code, as docs/protocol.md allows).
 *
 * Build the seed generator (writes tests/seeds/fuzz_wire/):
 *   cc -D_GNU_SOURCE -DLM_FUZZ_SEEDGEN -Iinclude -Isrc tests/fuzz_wire.c out/release/liblivemig.a \
 *      -lzstd -llz4 -lisal -lz -lssl -lcrypto \
 *      -lxxhash -lpthread -o /tmp/seedgen_wire && /tmp/seedgen_wire tests/seeds/fuzz_wire
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "wire.h"

#define CHECK(c)                                                                     \
	do {                                                                         \
		if (!(c)) {                                                          \
			fprintf(stderr, "fuzz_wire: invariant failed at %s:%d: %s\n", \
				__FILE__, __LINE__, #c);                             \
			__builtin_trap();                                            \
		}                                                                    \
	} while (0)

enum {
	OP_STREAM,
	OP_HELLO,
	OP_REGION,
	OP_DATA,
	OP_SYNC,
	OP_COMPLETE,
	OP_ACK,
	OP_ERROR,
	OP_FRAME,
	OP_BUILD,
	OP_COUNT
};

/* Region lengths: page multiples, a partial last page, tiny, empty, huge. */
static const uint64_t regions_a[] = {
	8 * 4096, 3 * 4096 + 100, 4096, 1, 0, 5 * 4096 - 1,
};
static const uint64_t regions_b[] = {
	1ull << 40, (UINT64_MAX >> 1), 128 * 4096 + 7, 65536, 65535, 3,
};
#define NREG 6

typedef struct fz_limits {
	lm__limits lim;
	uint32_t complete_cap; /* session region count for dec_complete */
} fz_limits;

/* byte 1: bits 0-1 packet_pages {128,1,3,1024}; bits 2-3 round {0,1,7,max};
 * bits 4-5 region_count {6,1,0,6}; bit 6 page size 65536; bit 7 region set b. */
static void limits_from(uint8_t b, fz_limits *fl)
{
	static const uint32_t pp[4] = {128, 1, 3, LM_MAX_PACKET_PAGES};
	static const uint32_t rounds[4] = {0, 1, 7, UINT32_MAX};
	static const uint32_t counts[4] = {NREG, 1, 0, NREG};

	memset(fl, 0, sizeof(*fl));
	fl->lim.page_size = (b & 0x40) ? LM_MAX_PAGE_SIZE : LM_MIN_PAGE_SIZE;
	fl->lim.packet_pages = pp[b & 3];
	fl->lim.codec = LM_CODEC_NONE;
	fl->lim.round = rounds[(b >> 2) & 3];
	fl->lim.region_count = counts[(b >> 4) & 3];
	fl->lim.region_len = (b & 0x80) ? regions_b : regions_a;
	fl->complete_cap = fl->lim.region_count;
}

/* A heap copy of exactly n bytes (malloc(0) under ASan has no valid byte). */
static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *q = malloc(n);

	if (!q && n)
		abort();
	if (n)
		memcpy(q, p, n);
	return q;
}

/* Successful decodes of the current input (the seed generator checks that
 * every seed really is a valid input). */
static unsigned fz_decoded;

static int is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

/* ---- per kind: decode, check what the decoder promises, round-trip ------ */

static void do_frame(const uint8_t *p, size_t n)
{
	lm__frame f, g;
	lm__err e = {0};
	uint8_t buf[LM_FRAME_HDR];
	uint8_t *q;

	if (n < LM_FRAME_HDR)
		return;
	q = dup_exact(p, LM_FRAME_HDR);
	if (lm__dec_frame(q, &f, &e) == 0) {
		fz_decoded++;
		CHECK(f.kind >= 1 && f.kind <= LM_KIND_MAX);
		CHECK(f.flags == 0);
		CHECK(lm__enc_frame(buf, f.kind, f.flags, f.len) == LM_FRAME_HDR);
		CHECK(memcmp(buf, q, LM_FRAME_HDR) == 0);
		CHECK(lm__dec_frame(buf, &g, &e) == 0);
		CHECK(g.kind == f.kind && g.flags == f.flags && g.len == f.len);
	}
	free(q);
}

static void check_hello_eq(const lm__hello *a, const lm__hello *b)
{
	CHECK(a->version == b->version);
	CHECK(memcmp(a->session, b->session, 16) == 0);
	CHECK(a->channel == b->channel && a->channels == b->channels);
	CHECK(a->page_size == b->page_size && a->codec == b->codec);
	CHECK(a->packet_pages == b->packet_pages && a->region_count == b->region_count);
	CHECK(a->features == b->features && a->required == b->required);
}

static void do_hello(const uint8_t *p, size_t n)
{
	uint8_t *q = dup_exact(p, n);
	uint8_t buf[LM_FRAME_HDR + LM_HELLO_LEN];
	lm__hello h, h2;
	lm__err e = {0};
	static const uint8_t zero16[16];

	if (n <= UINT32_MAX && lm__dec_hello(q, (uint32_t)n, &h, &e) == 0) {
		fz_decoded++;
		CHECK(n == LM_HELLO_LEN);
		CHECK(h.version == LM_PROTOCOL_VERSION);
		CHECK(h.channels >= 1 && h.channels <= LM_MAX_CHANNELS);
		CHECK(h.channel < h.channels);
		CHECK(is_pow2(h.page_size) && h.page_size >= LM_MIN_PAGE_SIZE &&
		      h.page_size <= LM_MAX_PAGE_SIZE);
		CHECK(h.packet_pages >= 1 && h.packet_pages <= LM_MAX_PACKET_PAGES);
		CHECK(h.region_count <= LM_MAX_REGIONS);
		/* Codec auto exactly with MIXED required. */
		if (h.codec == LM_CODEC_AUTO)
			CHECK(h.required & LM_FEAT_MIXED);
		else
			CHECK(lm__codec_get(h.codec) != NULL && !(h.required & LM_FEAT_MIXED));
		CHECK((lm__hello_features(&h) & ~LM_FEAT_KNOWN) == 0);
		CHECK(!(lm__hello_features(&h) & LM_FEAT_MIXED) || h.codec == LM_CODEC_AUTO);
		CHECK((h.required & ~LM_FEAT_KNOWN) == 0);
		CHECK(memcmp(h.session, zero16, 16) != 0);
		CHECK(lm__enc_hello(buf, &h) == sizeof(buf));
		CHECK(memcmp(buf + LM_FRAME_HDR, q, LM_HELLO_LEN) == 0);
		memset(&h2, 0xee, sizeof(h2));
		CHECK(lm__dec_hello(buf + LM_FRAME_HDR, LM_HELLO_LEN, &h2, &e) == 0);
		check_hello_eq(&h, &h2);
	}
	free(q);
}

static void do_region(const uint8_t *p, size_t n)
{
	uint8_t *q = dup_exact(p, n);
	uint8_t buf[LM_FRAME_HDR + LM_REGION_FIXED + LM_MAX_REGION_NAME];
	lm__region_msg r, r2;
	lm__err e = {0};

	if (n <= UINT32_MAX && lm__dec_region(q, (uint32_t)n, &r, &e) == 0) {
		fz_decoded++;
		CHECK(r.name_len >= 1 && r.name_len <= LM_MAX_REGION_NAME);
		CHECK(n == LM_REGION_FIXED + r.name_len);
		CHECK(r.name[r.name_len] == 0 && strlen(r.name) == r.name_len);
		CHECK(r.len <= (UINT64_MAX >> 1));
		CHECK(lm__enc_region(buf, &r) == LM_FRAME_HDR + n);
		CHECK(memcmp(buf + LM_FRAME_HDR, q, n) == 0);
		memset(&r2, 0xee, sizeof(r2));
		CHECK(lm__dec_region(buf + LM_FRAME_HDR, (uint32_t)n, &r2, &e) == 0);
		CHECK(r2.id == r.id && r2.len == r.len && r2.name_len == r.name_len);
		CHECK(strcmp(r2.name, r.name) == 0);
	}
	free(q);
}

static int whole_page(const lm__limits *lim, uint32_t region, uint64_t off)
{
	return off + lim->page_size <= lim->region_len[region];
}

/* The ref and delta tables at t (after the offsets) of a packet whose
 * header and tables decoded: what lm__dec_data_kinds promises on success,
 * and the bytes again from what it decoded. */
static void do_kinds(const uint8_t *t, const lm__data_hdr *d, const lm__limits *lim,
		     const uint64_t *off)
{
	lm__ref *refs = malloc(sizeof(*refs) * (d->ref + 1u));
	lm__delta *dl = malloc(sizeof(*dl) * (d->delta + 1u));
	lm__err e = {0};
	uint32_t first = d->normal + d->zero;
	const uint8_t *q = t + 8u * (size_t)d->pages;

	if (lm__dec_data_kinds(t, d, lim, off, refs, dl, &e) == 0) {
		uint64_t sum = 0;
		fz_decoded++;
		for (uint32_t i = 0; i < d->ref; i++, q += LM_REF_ENTRY) {
			const lm__ref *r = &refs[i];
			CHECK(r->src_region < lim->region_count);
			CHECK(r->src_round <= d->round);
			CHECK(r->src_offset % lim->page_size == 0);
			CHECK(whole_page(lim, r->src_region, r->src_offset));
			CHECK(whole_page(lim, d->region, off[first + i]));
			CHECK(r->src_region != d->region || r->src_offset != off[first + i]);
			CHECK(lm__get32(q) == r->src_region && lm__get32(q + 4) == r->src_round);
			CHECK(lm__get64(q + 8) == r->src_offset);
		}
		for (uint32_t i = 0; i < d->delta; i++, q += LM_DELTA_ENTRY) {
			CHECK(dl[i].base_round < d->round);
			CHECK(dl[i].len < lim->page_size);
			CHECK(whole_page(lim, d->region, off[first + d->ref + i]));
			CHECK(lm__get32(q) == dl[i].base_round && lm__get32(q + 4) == dl[i].len);
			sum += dl[i].len;
		}
		CHECK((sum + lim->page_size - 1) / lim->page_size == d->area);
	}
	free(refs);
	free(dl);
}

/* Header at p (n bytes available), announced body length body_len; tables
 * follow at t (tn bytes available). */
static void do_data(const uint8_t *p, size_t n, uint32_t body_len, const uint8_t *t, size_t tn,
		    const fz_limits *fl)
{
	const lm__limits *lim = &fl->lim;
	uint8_t *q, *tq;
	uint8_t buf[LM_FRAME_HDR + LM_DATA_HDR];
	lm__data_hdr d, d2;
	lm__err e = {0};
	uint64_t *off;
	uint32_t *plen;
	size_t tab;
	uint64_t sum = 0;

	/* The caller (rx_data) reads 40 bytes only when the frame announces at
	 * least that many; with fewer bytes at hand, announce what we have. */
	if (n < LM_DATA_HDR) {
		q = dup_exact(p, n);
		CHECK(lm__dec_data_hdr(q, (uint32_t)n, lim, &d, &e) != 0);
		free(q);
		return;
	}
	if (body_len < LM_DATA_HDR) {
		/* Must refuse before reading: hand it only body_len bytes. */
		q = dup_exact(p, body_len);
		CHECK(lm__dec_data_hdr(q, body_len, lim, &d, &e) != 0);
		free(q);
		return;
	}
	q = dup_exact(p, LM_DATA_HDR);
	if (lm__dec_data_hdr(q, body_len, lim, &d, &e) != 0) {
		free(q);
		return;
	}
	fz_decoded++;
	CHECK(d.region < lim->region_count);
	CHECK(d.round == lim->round);
	CHECK(d.pages >= 1 && d.pages <= lim->packet_pages);
	CHECK((uint64_t)d.normal + d.zero + d.ref + d.delta == d.pages);
	CHECK(d.ref == 0 || (lim->features & LM_FEAT_REF));
	CHECK(d.delta == 0 || (lim->features & LM_FEAT_DELTA));
	CHECK(d.area <= d.delta);
	CHECK((d.codec_flags & ~LM_PKT_CODEC_MASK) == 0);
	CHECK(lm__codec_get(d.codec_flags & LM_PKT_CODEC_MASK) != NULL);
	CHECK(lm__data_body_len(&d) == body_len);
	CHECK(body_len <= lm__max_body(LM_KIND_DATA, lim->page_size, lim->packet_pages));
	CHECK(lm__enc_data_hdr(buf, &d, body_len) == sizeof(buf));
	CHECK(memcmp(buf + LM_FRAME_HDR, q, LM_DATA_HDR) == 0);
	memset(&d2, 0xee, sizeof(d2));
	CHECK(lm__dec_data_hdr(buf + LM_FRAME_HDR, body_len, lim, &d2, &e) == 0);
	CHECK(d2.packet_num == d.packet_num && d2.region == d.region && d2.round == d.round);
	CHECK(d2.pages == d.pages && d2.normal == d.normal && d2.zero == d.zero);
	CHECK(d2.ref == d.ref && d2.payload == d.payload && d2.codec_flags == d.codec_flags);
	CHECK(d2.delta == d.delta && d2.area == d.area);
	free(q);

	/* Tables: only as many bytes as the input really has. */
	tab = (size_t)lm__data_tables_len(&d);
	CHECK(tab == 8u * (size_t)d.pages + LM_REF_ENTRY * (size_t)d.ref +
		     LM_DELTA_ENTRY * (size_t)d.delta + 4u * ((size_t)d.normal + d.area));
	if (tn < tab)
		return;
	tq = dup_exact(t, tab);
	off = malloc(sizeof(*off) * d.pages);
	plen = malloc(sizeof(*plen) * ((size_t)d.normal + d.area + 1));
	if (lm__dec_data_tables(tq, &d, lim, off, plen, &e) == 0) {
		fz_decoded++;
		uint64_t rlen = lim->region_len[d.region];
		uint32_t nofs = d.pages, nlen = d.normal + d.area;
		size_t lens = tab - 4u * nlen;
		const lm__codec_ops *ops = lm__codec_get(d.codec_flags & LM_PKT_CODEC_MASK);
		uint8_t *re = malloc(tab);

		memcpy(re, tq, tab); /* the ref and delta tables: checked by do_kinds */
		for (uint32_t i = 0; i < nofs; i++) {
			CHECK(off[i] % lim->page_size == 0);
			CHECK(off[i] < rlen);
			lm__put64(re + 8u * i, off[i]);
		}
		for (uint32_t i = 0; i < nlen; i++) {
			CHECK(plen[i] >= 1 && plen[i] <= lim->page_size);
			if (ops->raw_only || !ops->per_page)
				CHECK(plen[i] == lim->page_size);
			sum += plen[i];
			lm__put32(re + lens + 4u * i, plen[i]);
		}
		if (ops->per_page)
			CHECK(sum == d.payload);
		CHECK(memcmp(re, tq, tab) == 0);
		free(re);
		if (d.ref || d.delta)
			do_kinds(tq, &d, lim, off);
	}
	free(off);
	free(plen);
	free(tq);
}

static void do_sync(const uint8_t *p, size_t n)
{
	uint8_t *q = dup_exact(p, n);
	uint8_t buf[LM_FRAME_HDR + LM_SYNC_LEN];
	lm__sync s, s2;
	lm__err e = {0};

	if (n <= UINT32_MAX && lm__dec_sync(q, (uint32_t)n, &s, &e) == 0) {
		fz_decoded++;
		CHECK(n == LM_SYNC_LEN);
		CHECK(lm__enc_sync(buf, &s) == sizeof(buf));
		CHECK(memcmp(buf + LM_FRAME_HDR, q, LM_SYNC_LEN) == 0);
		CHECK(lm__dec_sync(buf + LM_FRAME_HDR, LM_SYNC_LEN, &s2, &e) == 0);
		CHECK(s2.round == s.round && s2.packets == s.packets);
	}
	free(q);
}

static void do_complete(const uint8_t *p, size_t n, uint32_t cap)
{
	uint8_t *q = dup_exact(p, n), *buf;
	lm__region_sum *sums = malloc(sizeof(*sums) * cap), *s2;
	uint32_t cnt = 0xdeadbeef, cnt2 = 0;
	lm__err e = {0};

	if (n <= UINT32_MAX && lm__dec_complete(q, (uint32_t)n, sums, cap, &cnt, &e) == 0) {
		fz_decoded++;
		CHECK(cnt <= cap);
		CHECK(n == LM_COMPLETE_FIXED + (size_t)cnt * LM_COMPLETE_ENTRY);
		buf = malloc(lm__complete_bound(cnt));
		s2 = malloc(sizeof(*s2) * cap);
		CHECK(lm__enc_complete(buf, sums, cnt) == lm__complete_bound(cnt));
		CHECK(memcmp(buf + LM_FRAME_HDR, q, n) == 0);
		CHECK(lm__dec_complete(buf + LM_FRAME_HDR, (uint32_t)n, s2, cap, &cnt2, &e) == 0);
		CHECK(cnt2 == cnt);
		for (uint32_t i = 0; i < cnt; i++)
			CHECK(s2[i].id == sums[i].id && s2[i].len == sums[i].len &&
			      s2[i].checksum == sums[i].checksum);
		free(buf);
		free(s2);
	}
	free(sums);
	free(q);
}

static void do_feedback(const uint8_t *p, size_t n)
{
	uint8_t *q = dup_exact(p, n);
	uint8_t buf[LM_FRAME_HDR + LM_FEEDBACK_LEN];
	lm__feedback f, f2;
	lm__err e = {0};

	if (n <= UINT32_MAX && lm__dec_feedback(q, (uint32_t)n, &f, &e) == 0) {
		fz_decoded++;
		CHECK(n == LM_FEEDBACK_LEN);
		/* Every byte is a field or a checked reserved one. */
		CHECK(lm__enc_feedback(buf, &f) == sizeof(buf));
		CHECK(memcmp(buf + LM_FRAME_HDR, q, LM_FEEDBACK_LEN) == 0);
		CHECK(lm__dec_feedback(buf + LM_FRAME_HDR, LM_FEEDBACK_LEN, &f2, &e) == 0);
		CHECK(f2.round == f.round && f2.cpu_ns == f.cpu_ns && f2.wall_ns == f.wall_ns);
	}
	free(q);
}

/* DEVSTATE: the fixed part of a body of n bytes (the data after it is
 * opaque); what decodes names a piece of 1..LM_DEVSTATE_MAX_PIECE bytes at
 * an offset that cannot wrap, and round-trips. */
static void do_devstate(const uint8_t *p, size_t n)
{
	uint8_t *q = dup_exact(p, n < LM_DEVSTATE_FIXED ? n : LM_DEVSTATE_FIXED);
	uint8_t buf[LM_FRAME_HDR + LM_DEVSTATE_FIXED];
	lm__devstate d, d2;
	lm__err e = {0};

	if (n <= UINT32_MAX && lm__dec_devstate(q, (uint32_t)n, &d, &e) == 0) {
		fz_decoded++;
		CHECK(n > LM_DEVSTATE_FIXED && n - LM_DEVSTATE_FIXED <= LM_DEVSTATE_MAX_PIECE);
		CHECK(d.len == n - LM_DEVSTATE_FIXED);
		CHECK(d.off <= (UINT64_MAX >> 1));
		CHECK(lm__enc_devstate(buf, &d) == sizeof(buf));
		CHECK(lm__get32(buf + 8) == n);
		CHECK(memcmp(buf + LM_FRAME_HDR, q, LM_DEVSTATE_FIXED) == 0);
		CHECK(lm__dec_devstate(buf + LM_FRAME_HDR, (uint32_t)n, &d2, &e) == 0);
		CHECK(d2.off == d.off && d2.len == d.len);
	}
	free(q);
}

static void do_devstate_end(const uint8_t *p, size_t n)
{
	uint8_t *q = dup_exact(p, n);
	uint8_t buf[LM_FRAME_HDR + LM_DEVSTATE_END_LEN];
	lm__devstate_end d, d2;
	lm__err e = {0};

	if (n <= UINT32_MAX && lm__dec_devstate_end(q, (uint32_t)n, &d, &e) == 0) {
		fz_decoded++;
		CHECK(n == LM_DEVSTATE_END_LEN);
		CHECK(d.total <= (UINT64_MAX >> 1));
		CHECK(lm__enc_devstate_end(buf, &d) == sizeof(buf));
		CHECK(memcmp(buf + LM_FRAME_HDR, q, LM_DEVSTATE_END_LEN) == 0);
		CHECK(lm__dec_devstate_end(buf + LM_FRAME_HDR, LM_DEVSTATE_END_LEN, &d2, &e) == 0);
		CHECK(d2.total == d.total && d2.checksum == d.checksum);
	}
	free(q);
}

static void do_ack(const uint8_t *p, size_t n)
{
	uint8_t *q = dup_exact(p, n);
	uint8_t buf[LM_FRAME_HDR + LM_ACK_LEN];
	lm__ack a, a2;
	lm__err e = {0};

	if (n <= UINT32_MAX && lm__dec_ack(q, (uint32_t)n, &a, &e) == 0) {
		fz_decoded++;
		CHECK(n == LM_ACK_LEN);
		CHECK(a.kind == LM_KIND_HELLO || a.kind == LM_KIND_SYNC || a.kind == LM_KIND_COMPLETE);
		CHECK(a.status == 0);
		CHECK(lm__enc_ack(buf, &a) == sizeof(buf));
		CHECK(memcmp(buf + LM_FRAME_HDR, q, LM_ACK_LEN) == 0);
		CHECK(lm__dec_ack(buf + LM_FRAME_HDR, LM_ACK_LEN, &a2, &e) == 0);
		CHECK(a2.kind == a.kind && a2.status == a.status && a2.features == a.features);
		CHECK(memcmp(a2.session, a.session, 16) == 0);
	}
	free(q);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The decoded text goes to a user's terminal: only printable ASCII, every
 * backslash starting a \xNN escape, and it unescapes to exactly the bytes
 * on the wire (4 x 1024 + 1 always holds them: never truncated). */
static void check_error_msg(const lm__error_msg *m, const uint8_t *raw)
{
	size_t o = 0, i = 0, n = strlen(m->msg);

	CHECK(m->msg_len <= LM_ERROR_MAX_MSG);
	CHECK(n < sizeof(m->msg));
	while (o < n) {
		unsigned char c = (unsigned char)m->msg[o];
		CHECK(c >= 0x20 && c < 0x7f);
		if (c == '\\') {
			int hi = o + 3 < n ? hexval(m->msg[o + 2]) : -1;
			int lo = o + 3 < n ? hexval(m->msg[o + 3]) : -1;
			CHECK(o + 3 < n && m->msg[o + 1] == 'x' && hi >= 0 && lo >= 0);
			if (o + 3 >= n || hi < 0 || lo < 0)
				return;
			c = (unsigned char)(hi << 4 | lo);
			o += 4;
		} else {
			o++;
		}
		CHECK(i < m->msg_len && raw[i] == c);
		i++;
	}
	CHECK(i == m->msg_len);
	CHECK(m->code < 0 && m->code >= -5000);
}

static void do_error(const uint8_t *p, size_t n)
{
	uint8_t *q = dup_exact(p, n);
	uint8_t buf[LM_ERROR_FRAME_BOUND];
	char raw[LM_ERROR_MAX_MSG + 1];
	lm__error_msg m, m2;
	lm__err e = {0};
	size_t len;

	if (n <= UINT32_MAX && lm__dec_error(q, (uint32_t)n, &m, &e) == 0) {
		fz_decoded++;
		CHECK(n == LM_ERROR_FIXED + (size_t)m.msg_len);
		check_error_msg(&m, q + LM_ERROR_FIXED);
		/* Re-encoding the raw text (the encoder takes a C string: only
		 * without NUL) gives the same frame unless the code was clamped. */
		memcpy(raw, q + LM_ERROR_FIXED, m.msg_len);
		raw[m.msg_len] = 0;
		if (strlen(raw) == m.msg_len) {
			len = lm__enc_error(buf, m.code, m.channel, raw);
			CHECK(len == LM_FRAME_HDR + n);
			if ((int32_t)lm__get32(q) == m.code)
				CHECK(memcmp(buf + LM_FRAME_HDR, q, n) == 0);
			CHECK(lm__dec_error(buf + LM_FRAME_HDR, (uint32_t)(len - LM_FRAME_HDR), &m2, &e) == 0);
			CHECK(m2.code == m.code && m2.channel == m.channel && m2.msg_len == m.msg_len);
			CHECK(strcmp(m2.msg, m.msg) == 0);
		}
	}
	free(q);
}

/* ---- OP_BUILD: valid packets with every page kind ------------------------- */

/* The input as a stream of numbers; past its end, zeros. */
typedef struct fz_rd {
	const uint8_t *p;
	size_t n;
} fz_rd;

static uint64_t rd(fz_rd *r, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++) {
		v = v << 8;
		if (r->n) {
			v |= *r->p++;
			r->n--;
		}
	}
	return v;
}

#define FZ_MAXP LM_MAX_PACKET_PAGES

/* Builds a packet the spec calls valid from the input's numbers (kinds,
 * offsets, refs to any region and round, deltas and their area, deflate's
 * page lengths), encodes it (tables written here, field by field), and
 * checks that it decodes to exactly that; then that the session without
 * the features refuses it, and that a frame length giving another area is
 * refused by the header or by the delta table. */
static void do_build(const uint8_t *p, size_t n, const fz_limits *fl)
{
	static uint64_t off[FZ_MAXP], off2[FZ_MAXP];
	static uint32_t plen[2 * FZ_MAXP], plen2[2 * FZ_MAXP];
	static lm__ref refs[FZ_MAXP], refs2[FZ_MAXP];
	static lm__delta dl[FZ_MAXP], dl2[FZ_MAXP];
	static uint64_t koff[4][FZ_MAXP];
	static lm__ref kref[FZ_MAXP];
	static lm__delta kdl[FZ_MAXP];
	uint32_t cnt[4] = {0, 0, 0, 0};
	lm__limits lim = fl->lim, lim0;
	fz_rd r = {p, n};
	uint32_t ps = lim.page_size, want, region, nlen, k = 0;
	uint64_t rlen, npg, whole, sum = 0, payload = 0, body;
	lm__data_hdr d, d2;
	lm__err e = {0};
	uint8_t *buf, *q;
	size_t tab;
	int deflate;

	if (!lim.region_count)
		return;
	lim.features = LM_FEAT_REF | LM_FEAT_DELTA;
	deflate = (rd(&r, 1) & 1) && lm__codec_get(LM_CODEC_DEFLATE);
	lim.codec = deflate ? LM_CODEC_DEFLATE : LM_CODEC_NONE;
	region = (uint32_t)(rd(&r, 1) % lim.region_count);
	for (uint32_t t = 0; t < lim.region_count && !lim.region_len[region]; t++)
		region = (region + 1) % lim.region_count; /* one with pages */
	rlen = lim.region_len[region];
	npg = (rlen + ps - 1) / ps;
	whole = rlen / ps;
	if (!npg)
		return;
	want = 1 + (uint32_t)(rd(&r, 2) % lim.packet_pages);
	for (uint32_t i = 0; i < want; i++) {
		unsigned kind = (unsigned)(rd(&r, 1) % 4);
		uint64_t pg = rd(&r, 8) % npg;
		if (kind == 2) { /* ref */
			uint32_t sr = (uint32_t)(rd(&r, 1) % lim.region_count);
			uint64_t sw = lim.region_len[sr] / ps, sp;
			if (!sw) {
				sr = region;
				sw = whole;
			}
			sp = sw ? rd(&r, 8) % sw : 0;
			if (sr == region && sp == pg)
				sp = sw > 1 ? (sp + 1) % sw : sw;
			if (pg >= whole || sp >= sw) {
				kind = 1;
			} else {
				kref[cnt[2]] = (lm__ref){sr,
							 (uint32_t)(rd(&r, 4) % ((uint64_t)lim.round + 1)),
							 sp * ps};
			}
		} else if (kind == 3) { /* delta */
			if (lim.round == 0 || pg >= whole)
				kind = 1;
			else
				kdl[cnt[3]] = (lm__delta){(uint32_t)(rd(&r, 4) % lim.round),
							  (uint32_t)(rd(&r, 2) % ps)};
		}
		koff[kind][cnt[kind]++] = pg * ps;
	}
	for (uint32_t i = 0; i < cnt[3]; i++)
		sum += kdl[i].len;
	memset(&d, 0, sizeof(d));
	d.packet_num = rd(&r, 8);
	d.region = region;
	d.round = lim.round;
	d.pages = want;
	d.normal = cnt[0];
	d.zero = cnt[1];
	d.ref = cnt[2];
	d.delta = (uint16_t)cnt[3];
	d.area = (uint32_t)((sum + ps - 1) / ps);
	d.codec_flags = (uint16_t)(deflate && (rd(&r, 1) & 1) ? LM_CODEC_DEFLATE : LM_CODEC_NONE);
	nlen = d.normal + d.area;
	for (uint32_t i = 0; i < nlen; i++) {
		plen[i] = d.codec_flags == LM_CODEC_DEFLATE ? 1 + (uint32_t)(rd(&r, 2) % ps) : ps;
		payload += plen[i];
	}
	d.payload = (uint32_t)payload;
	body = lm__data_body_len(&d);
	CHECK(body <= lm__max_body(LM_KIND_DATA, ps, lim.packet_pages));
	for (uint32_t c = 0; c < 4; c++)
		for (uint32_t i = 0; i < cnt[c]; i++)
			off[k++] = koff[c][i];
	for (uint32_t i = 0; i < d.ref; i++)
		refs[i] = kref[i];
	for (uint32_t i = 0; i < d.delta; i++)
		dl[i] = kdl[i];

	/* Encode: the header, then the tables as section 6 lists them. */
	tab = (size_t)lm__data_tables_len(&d);
	buf = malloc(LM_FRAME_HDR + LM_DATA_HDR + tab);
	CHECK(lm__enc_data_hdr(buf, &d, (uint32_t)body) == LM_FRAME_HDR + LM_DATA_HDR);
	q = buf + LM_FRAME_HDR + LM_DATA_HDR;
	for (uint32_t i = 0; i < d.pages; i++, q += 8)
		lm__put64(q, off[i]);
	for (uint32_t i = 0; i < d.ref; i++, q += LM_REF_ENTRY) {
		lm__put32(q, refs[i].src_region);
		lm__put32(q + 4, refs[i].src_round);
		lm__put64(q + 8, refs[i].src_offset);
	}
	for (uint32_t i = 0; i < d.delta; i++, q += LM_DELTA_ENTRY) {
		lm__put32(q, dl[i].base_round);
		lm__put32(q + 4, dl[i].len);
	}
	for (uint32_t i = 0; i < nlen; i++, q += 4)
		lm__put32(q, plen[i]);
	CHECK((size_t)(q - buf) == LM_FRAME_HDR + LM_DATA_HDR + tab);

	/* Decode: exactly what was built. */
	q = buf + LM_FRAME_HDR;
	memset(&d2, 0xee, sizeof(d2));
	CHECK(lm__dec_data_hdr(q, (uint32_t)body, &lim, &d2, &e) == 0);
	fz_decoded++;
	CHECK(d2.packet_num == d.packet_num && d2.region == d.region && d2.round == d.round);
	CHECK(d2.pages == d.pages && d2.normal == d.normal && d2.zero == d.zero);
	CHECK(d2.ref == d.ref && d2.delta == d.delta && d2.area == d.area);
	CHECK(d2.payload == d.payload && d2.codec_flags == d.codec_flags);
	CHECK(lm__dec_data_tables(q + LM_DATA_HDR, &d2, &lim, off2, plen2, &e) == 0);
	CHECK(memcmp(off, off2, sizeof(*off) * d.pages) == 0);
	CHECK(memcmp(plen, plen2, sizeof(*plen) * nlen) == 0);
	if (d.ref || d.delta) {
		CHECK(lm__dec_data_kinds(q + LM_DATA_HDR, &d2, &lim, off2, refs2, dl2, &e) == 0);
		for (uint32_t i = 0; i < d.ref; i++)
			CHECK(refs2[i].src_region == refs[i].src_region &&
			      refs2[i].src_round == refs[i].src_round &&
			      refs2[i].src_offset == refs[i].src_offset);
		for (uint32_t i = 0; i < d.delta; i++)
			CHECK(dl2[i].base_round == dl[i].base_round && dl2[i].len == dl[i].len);
	}
	/* Without the features: refused before anything else is looked at. */
	lim0 = lim;
	lim0.features = 0;
	if (d.ref || d.delta)
		CHECK(lm__dec_data_hdr(q, (uint32_t)body, &lim0, &d2, &e) == LM_EFEATURE);
	lim0.features = d.ref ? LM_FEAT_DELTA : LM_FEAT_REF;
	if ((d.ref && !d.delta) || (d.delta && !d.ref))
		CHECK(lm__dec_data_hdr(q, (uint32_t)body, &lim0, &d2, &e) == LM_EFEATURE);
	/* Another area from the frame length: 0..delta pages other than the
	 * real count, then one past delta and an odd length. */
	if (d.delta) {
		uint32_t other = (uint32_t)(rd(&r, 2) % ((uint32_t)d.delta + 1));
		uint64_t b2 = body - 4ull * d.area + 4ull * other;
		if (other != d.area && b2 <= UINT32_MAX &&
		    lm__dec_data_hdr(q, (uint32_t)b2, &lim, &d2, &e) == 0) {
			CHECK(d2.area == other);
			/* the tables before the length table are where they were */
			CHECK(lm__dec_data_kinds(q + LM_DATA_HDR, &d2, &lim, off, refs2, dl2, &e) ==
			      LM_EFIELD);
		}
		b2 = body + 4ull * ((uint64_t)d.delta + 1 - d.area);
		if (b2 <= UINT32_MAX)
			CHECK(lm__dec_data_hdr(q, (uint32_t)b2, &lim, &d2, &e) == LM_EFIELD);
		CHECK(lm__dec_data_hdr(q, (uint32_t)body + 2, &lim, &d2, &e) == LM_EFIELD);
	}
	free(buf);
}

/* Frames back to back, as a channel reads them. */
static void do_stream(const uint8_t *p, size_t n, const fz_limits *fl)
{
	while (n >= LM_FRAME_HDR) {
		lm__frame f;
		lm__err e = {0};
		const uint8_t *b;
		uint64_t max;

		do_frame(p, n);
		if (lm__dec_frame(p, &f, &e) != 0)
			return;
		max = lm__max_body(f.kind, fl->lim.page_size, fl->lim.packet_pages);
		if (f.len > max) /* lm__read_frame refuses it */
			return;
		p += LM_FRAME_HDR;
		n -= LM_FRAME_HDR;
		if (n < f.len)
			return;
		b = p;
		switch (f.kind) {
		case LM_KIND_HELLO: do_hello(b, f.len); break;
		case LM_KIND_REGION: do_region(b, f.len); break;
		case LM_KIND_DATA:
			if (f.len < LM_DATA_HDR)
				do_data(b, f.len, f.len, NULL, 0, fl);
			else
				do_data(b, LM_DATA_HDR, f.len, b + LM_DATA_HDR, f.len - LM_DATA_HDR, fl);
			break;
		case LM_KIND_SYNC: do_sync(b, f.len); break;
		case LM_KIND_COMPLETE: do_complete(b, f.len, fl->complete_cap); break;
		case LM_KIND_ERROR: do_error(b, f.len); break;
		case LM_KIND_ACK: do_ack(b, f.len); break;
		case LM_KIND_FEEDBACK: do_feedback(b, f.len); break;
		case LM_KIND_DEVSTATE: do_devstate(b, f.len); break;
		case LM_KIND_DEVSTATE_END: do_devstate_end(b, f.len); break;
		default: CHECK(0);
		}
		p += f.len;
		n -= f.len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_limits fl;
	const uint8_t *p;
	size_t n;

	if (size < 2)
		return 0;
	limits_from(data[1], &fl);
	fl.lim.features = (uint64_t)((data[0] / OP_COUNT) & 3) << 1; /* REF, DELTA */
	if ((data[0] / OP_COUNT) & 4) { /* a mixed session: any known codec per packet */
		fl.lim.codec = LM_CODEC_AUTO;
		fl.lim.features |= LM_FEAT_MIXED;
	}
	p = data + 2;
	n = size - 2;
	switch (data[0] % OP_COUNT) {
	case OP_STREAM: do_stream(p, n, &fl); break;
	case OP_HELLO: do_hello(p, n); break;
	case OP_REGION: do_region(p, n); break;
	case OP_DATA:
		if (n >= 4)
			do_data(p + 4, n - 4, lm__get32(p), p + 4 + LM_DATA_HDR,
				n - 4 >= LM_DATA_HDR ? n - 4 - LM_DATA_HDR : 0, &fl);
		break;
	case OP_SYNC: do_sync(p, n); break;
	case OP_COMPLETE: do_complete(p, n, fl.complete_cap); break;
	case OP_ACK: do_ack(p, n); break;
	case OP_ERROR: do_error(p, n); break;
	case OP_FRAME: do_frame(p, n); break;
	case OP_BUILD: do_build(p, n, &fl); break;
	}
	return 0;
}

#ifdef LM_FUZZ_SEEDGEN
/* ---- seed generator: valid inputs for every operation ---------------------- */

static const char *outdir;

static void put_seed(const char *name, uint8_t op, uint8_t lim, const uint8_t *b, size_t n)
{
	char path[4096];
	uint8_t *all = malloc(n + 2);
	FILE *f;

	all[0] = op;
	all[1] = lim;
	memcpy(all + 2, b, n);
	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(all, 1, n + 2, f) != n + 2 || fclose(f)) {
		perror(path);
		exit(1);
	}
	fz_decoded = 0;
	LLVMFuzzerTestOneInput(all, n + 2); /* the seed itself passes the checks */
	printf("%s: %zu bytes, %u successful decodes\n", path, n + 2, fz_decoded);
	if (!fz_decoded)
		exit(1);
	free(all);
}

/* One data packet with normal pages at offs[0..nn) and zero pages after. */
static size_t enc_data(uint8_t *p, uint64_t num, uint32_t region, const uint64_t *offs,
		       uint32_t nn, uint32_t nz, int with_payload)
{
	lm__data_hdr d = {0};
	uint8_t *q;

	d.packet_num = num;
	d.region = region;
	d.pages = nn + nz;
	d.normal = nn;
	d.zero = nz;
	d.payload = nn * 4096u;
	q = p + lm__enc_data_hdr(p, &d, (uint32_t)lm__data_body_len(&d));
	for (uint32_t i = 0; i < nn + nz; i++, q += 8)
		lm__put64(q, offs[i]);
	for (uint32_t i = 0; i < nn; i++, q += 4)
		lm__put32(q, 4096);
	if (with_payload)
		for (uint32_t i = 0; i < nn * 4096u; i++)
			*q++ = (uint8_t)(i * 7 + 1);
	return (size_t)(q - p);
}

int main(int argc, char **argv)
{
	static uint8_t b[65536];
	uint8_t *q;
	lm__hello h = {0};
	lm__region_msg r = {0};
	lm__sync s = {0, 3};
	lm__region_sum sums[NREG];
	lm__ack a = {0};
	uint64_t offs[8] = {0, 4096, 8192, 7 * 4096, 3 * 4096};
	size_t n;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];

	h.version = LM_PROTOCOL_VERSION;
	memset(h.session, 0xab, 16);
	h.channel = 1;
	h.channels = 2;
	h.page_size = 4096;
	h.codec = LM_CODEC_NONE;
	h.packet_pages = 128;
	h.region_count = 2;
	n = lm__enc_hello(b, &h);
	put_seed("hello", OP_HELLO, 0, b + LM_FRAME_HDR, n - LM_FRAME_HDR);

	r.id = 1;
	r.len = 3 * 4096 + 100;
	r.name_len = 4;
	memcpy(r.name, "heap", 5);
	n = lm__enc_region(b, &r);
	put_seed("region", OP_REGION, 0, b + LM_FRAME_HDR, n - LM_FRAME_HDR);

	/* data: be32 body length, header, tables (payload not needed) */
	{
		uint8_t tmp[1024];
		size_t m = enc_data(tmp, 5, 0, offs, 3, 2, 0);
		lm__put32(b, lm__get32(tmp + 8));
		memcpy(b + 4, tmp + LM_FRAME_HDR, m - LM_FRAME_HDR);
		put_seed("data", OP_DATA, 0, b, 4 + m - LM_FRAME_HDR);
		/* partial last page of region 1 (3 pages + 100 bytes) */
		uint64_t o2[2] = {3 * 4096, 0};
		m = enc_data(tmp, 9, 1, o2, 1, 1, 0);
		lm__put32(b, lm__get32(tmp + 8));
		memcpy(b + 4, tmp + LM_FRAME_HDR, m - LM_FRAME_HDR);
		put_seed("data-tail", OP_DATA, 0, b, 4 + m - LM_FRAME_HDR);
		/* payload below normal x page_size: the header is fine, the
		 * length table's sum is not (data.payload != sum) */
		lm__data_hdr d = {0};
		d.pages = d.normal = 2;
		d.payload = 4096;
		m = lm__enc_data_hdr(tmp, &d, (uint32_t)lm__data_body_len(&d));
		lm__put64(tmp + m, 0);
		lm__put64(tmp + m + 8, 4096);
		lm__put32(tmp + m + 16, 4096);
		lm__put32(tmp + m + 20, 4096);
		m += 24;
		lm__put32(b, (uint32_t)lm__data_body_len(&d));
		memcpy(b + 4, tmp + LM_FRAME_HDR, m - LM_FRAME_HDR);
		put_seed("data-short-payload", OP_DATA, 0, b, 4 + m - LM_FRAME_HDR);
	}

	/* data with every page kind, REF|DELTA agreed, round 1 (limits 0x04):
	 * region 0 (8 pages): normal 0, zero 1, refs at 2 (region 2's page,
	 * round 0) and 3 (page 0, this round), deltas at 4 and 5 (10 and 4090
	 * bytes: a 2-page area) */
	{
		static const uint32_t ents[][3] = {{2, 0, 0}, {0, 1, 0}}; /* region, round, offset */
		static const uint32_t dls[][2] = {{0, 10}, {0, 4090}};   /* base_round, len */
		uint8_t hdr[LM_FRAME_HDR + LM_DATA_HDR];
		lm__data_hdr d = {0};
		uint8_t *t;
		d.packet_num = 11;
		d.round = 1;
		d.pages = 6;
		d.normal = d.zero = 1;
		d.ref = 2;
		d.delta = 2;
		d.area = 2;
		d.payload = 3 * 4096;
		lm__put32(b, (uint32_t)lm__data_body_len(&d));
		lm__enc_data_hdr(hdr, &d, 0);
		memcpy(b + 4, hdr + LM_FRAME_HDR, LM_DATA_HDR);
		t = b + 4 + LM_DATA_HDR;
		for (uint32_t i = 0; i < 6; i++, t += 8)
			lm__put64(t, (uint64_t)i * 4096);
		for (uint32_t i = 0; i < 2; i++, t += LM_REF_ENTRY) {
			lm__put32(t, ents[i][0]);
			lm__put32(t + 4, ents[i][1]);
			lm__put64(t + 8, ents[i][2]);
		}
		for (uint32_t i = 0; i < 2; i++, t += LM_DELTA_ENTRY) {
			lm__put32(t, dls[i][0]);
			lm__put32(t + 4, dls[i][1]);
		}
		for (uint32_t i = 0; i < 3; i++, t += 4)
			lm__put32(t, 4096);
		put_seed("data-kinds", (uint8_t)(OP_DATA + 3 * OP_COUNT), 0x04, b, (size_t)(t - b));
	}
	/* build: numbers for the generator, under assorted limits (round 1,
	 * round 7 with 3-page packets, 64 KiB pages with region set b) */
	{
		static const uint8_t lims[] = {0x04, 0x0a, 0x00, 0x44 | 0x80, 0x0c | 0x03};
		uint32_t x = 12345;
		for (size_t l = 0; l < sizeof(lims); l++) {
			char name[32];
			for (int i = 0; i < 600; i++) {
				x = x * 1103515245u + 12345u;
				b[i] = (uint8_t)(x >> 16);
			}
			snprintf(name, sizeof(name), "build-%zu", l);
			put_seed(name, OP_BUILD, lims[l], b, 600);
		}
	}

	n = lm__enc_sync(b, &s);
	put_seed("sync", OP_SYNC, 0, b + LM_FRAME_HDR, n - LM_FRAME_HDR);

	for (uint32_t i = 0; i < NREG; i++)
		sums[i] = (lm__region_sum){i, regions_a[i], 0x0123456789abcdefull * (i + 1)};
	n = lm__enc_complete(b, sums, NREG);
	put_seed("complete", OP_COMPLETE, 0, b + LM_FRAME_HDR, n - LM_FRAME_HDR);

	a.kind = LM_KIND_COMPLETE;
	memset(a.session, 0xab, 16);
	n = lm__enc_ack(b, &a);
	put_seed("ack", OP_ACK, 0, b + LM_FRAME_HDR, n - LM_FRAME_HDR);

	n = lm__enc_error(b, LM_ECHECKSUM, 0, "region heap: checksum mismatch");
	put_seed("error", OP_ERROR, 0, b + LM_FRAME_HDR, n - LM_FRAME_HDR);

	n = lm__enc_frame(b, LM_KIND_DATA, 0, 4096);
	put_seed("frame", OP_FRAME, 0, b, n);

	/* A whole channel-0 conversation in one stream, with a page payload. */
	q = b;
	h.channel = 0;
	q += lm__enc_hello(q, &h);
	r.id = 0;
	r.len = 8 * 4096;
	memcpy(r.name, "ram0", 5);
	q += lm__enc_region(q, &r);
	r.id = 1;
	r.len = 3 * 4096 + 100;
	memcpy(r.name, "heap", 5);
	q += lm__enc_region(q, &r);
	q += enc_data(q, 0, 0, offs, 2, 2, 1);
	s.round = 0;
	s.packets = 1;
	q += lm__enc_sync(q, &s);
	q += lm__enc_complete(q, sums, 2);
	a.kind = LM_KIND_HELLO;
	q += lm__enc_ack(q, &a);
	q += lm__enc_error(q, LM_EPEER, 1, "bye");
	put_seed("stream", OP_STREAM, 0, b, (size_t)(q - b));

	/* The device state's frames: two pieces, the end (in a stream: they
	 * have no op of their own). */
	{
		lm__devstate ds = {0, 5};
		lm__devstate_end de = {12, 0x1234};
		q = b;
		q += lm__enc_devstate(q, &ds);
		memcpy(q, "hello", 5);
		q += 5;
		ds.off = 5;
		ds.len = 7;
		q += lm__enc_devstate(q, &ds);
		memcpy(q, " device", 7);
		q += 7;
		q += lm__enc_devstate_end(q, &de);
		put_seed("stream-devstate", OP_STREAM, 0, b, (size_t)(q - b));
	}
	return 0;
}
#endif
