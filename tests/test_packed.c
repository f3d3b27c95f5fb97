/*
 * test_packed.c - a DATA packet's packed tables (LM_FEAT_PACKED, src/wire.c,
 * docs/protocol.md "Packed tables"): the document's example byte for byte,
 * random packets through encode and decode, the worst case against
 * LM_DATA_PAGE_TABLES, every rejection by its field, and that one byte
 * changed anywhere in a valid table is either refused or is the canonical
 * encoding of what it decodes to.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "livemig.h"
#include "wire.h"

#include "check.h"
#include "test_util.h"
#include "wire_check.h"

#define MAXP 128

/* A packet as the sender holds it: one offset array in kind order (normal,
 * zero, ref, delta), entries, lengths. */
typedef struct pk {
	lm__data_hdr d;
	uint64_t off[MAXP];
	lm__ref refs[MAXP];
	lm__delta deltas[MAXP];
	uint32_t lens[MAXP];
	uint8_t t[MAXP * LM_DATA_PAGE_TABLES];
	size_t n;
} pk;

static int with_lens(const lm__data_hdr *d)
{
	const lm__codec_ops *ops = lm__codec_get(d->codec_flags & LM_PKT_CODEC_MASK);

	return ops->per_page && !ops->raw_only;
}

static void encode(pk *k, uint32_t ps)
{
	const lm__data_hdr *d = &k->d;
	const uint64_t *const off[4] = {k->off, k->off + d->normal, k->off + d->normal + d->zero,
					k->off + d->normal + d->zero + d->ref};

	k->n = lm__enc_data_packed(k->t, d, ps, off, k->refs, k->deltas, k->lens, with_lens(d));
	k->d.tables = (uint32_t)k->n;
}

/* What the receiver does: the header's length check, then the tables,
 * into o (its lens[] the decoded lengths). */
static int decode(const uint8_t *t, size_t n, const lm__data_hdr *in, const lm__limits *lim, pk *o)
{
	lm__data_hdr *d = &o->d;
	uint8_t hb[LM_FRAME_HDR + LM_DATA_HDR];
	int rc;

	lm__enc_data_hdr(hb, in, (uint32_t)(LM_DATA_HDR + n + in->payload));
	if ((rc = lm__dec_data_hdr(hb + LM_FRAME_HDR, (uint32_t)(LM_DATA_HDR + n + in->payload),
				   lim, d, &E)))
		return rc;
	CHECK_EQ(d->tables, n);
	return lm__dec_data_packed(t, d, lim, o->off, o->lens, o->refs, o->deltas, &E);
}

/* ---- the document's example ----------------------------------------------- */

/* docs/protocol.md, "Packed tables": round 2, codec deflate; normal pages
 * 5 and 6, zero pages 7 and 3, a ref at page 9 to page 4 of region 0 as it
 * is in this round, a delta at page 10 against round 0 of 300 bytes; the
 * lengths 1000 and 4096 (a page that did not shrink) and the delta area's
 * one page of 300. */
static void test_example(void)
{
	static const uint8_t want[] = {
		0x0a,             /* page 5: 5 - (-1) - 1 = 5, zigzag 10 */
		0x00,             /* page 6: 6 - 5 - 1 = 0 */
		0x00,             /* page 7 (zero) */
		0x09,             /* page 3: 3 - 7 - 1 = -5, zigzag 9 */
		0x0a,             /* page 9 (ref): 9 - 3 - 1 = 5 */
		0x00,             /* page 10 (delta) */
		0x00, 0x00, 0x09, /* ref: region 0, 0 rounds back, page 4 - 9 = -5 */
		0x01, 0xac, 0x02, /* delta: 2 - 1 - 0 = 1 round back, 300 bytes */
		0xe8, 0x07,       /* length 1000 */
		0x80, 0x20,       /* length 4096 */
		0xac, 0x02,       /* the area page: 300 */
	};
	uint64_t rlen[1] = {1 << 20};
	lm__limits lim = {4096,
			  128,
			  LM_CODEC_DEFLATE,
			  2,
			  1,
			  rlen,
			  LM_FEAT_REF | LM_FEAT_DELTA | LM_FEAT_PACKED};
	static pk k;
	static pk o;
	uint8_t bad[sizeof(want)];

	memset(&k, 0, sizeof(k));
	k.d.round = 2;
	k.d.pages = 6;
	k.d.normal = 2;
	k.d.zero = 2;
	k.d.ref = 1;
	k.d.delta = 1;
	k.d.area = 1;
	k.d.payload = 1000 + 4096 + 300;
	k.d.codec_flags = LM_CODEC_DEFLATE;
	k.off[0] = 5 * 4096;
	k.off[1] = 6 * 4096;
	k.off[2] = 7 * 4096;
	k.off[3] = 3 * 4096;
	k.off[4] = 9 * 4096;
	k.off[5] = 10 * 4096;
	k.refs[0] = (lm__ref){0, 2, 4 * 4096};
	k.deltas[0] = (lm__delta){0, 300};
	k.lens[0] = 1000;
	k.lens[1] = 4096;
	k.lens[2] = 300;
	encode(&k, 4096);
	CHECK_EQ(k.n, sizeof(want));
	CHECK(k.n == sizeof(want) && memcmp(k.t, want, sizeof(want)) == 0);
	ACCEPT(decode(want, sizeof(want), &k.d, &lim, &o));
	CHECK(memcmp(o.off, k.off, 6 * sizeof(*o.off)) == 0);
	CHECK(o.refs[0].src_region == 0 && o.refs[0].src_round == 2 &&
	      o.refs[0].src_offset == 4 * 4096);
	CHECK(o.deltas[0].base_round == 0 && o.deltas[0].len == 300);
	CHECK(o.d.area == 1 && o.lens[0] == 1000 && o.lens[1] == 4096 && o.lens[2] == 300);
	/* 0x11 is zigzag -9: page 7 + 1 - 9 = -1, before the region. */
	memcpy(bad, want, sizeof(want));
	bad[3] = 0x11;
	REJECT(decode(bad, sizeof(bad), &k.d, &lim, &o), LM_EFIELD,
	       "data.offset[3] outside region 0");
}

/* ---- random packets --------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	return xs(&rng);
}

/* A valid packet: distinct pages of region `region` in any order, refs to
 * any region and round, deltas, lengths for codec. */
static void random_pkt(pk *k, const lm__limits *lim, uint16_t codec)
{
	uint32_t ps = lim->page_size, n = 1 + (uint32_t)(rnd() % MAXP), kinds[4] = {0};
	uint64_t npages, sum = 0;
	lm__data_hdr *d = &k->d;
	const lm__codec_ops *ops = lm__codec_get(codec);

	memset(k, 0, sizeof(*k));
	d->region = (uint32_t)(rnd() % lim->region_count);
	d->round = lim->round;
	d->codec_flags = codec;
	npages = lim->region_len[d->region] / ps;
	for (uint32_t i = 0; i < n; i++)
		kinds[rnd() % (d->round ? 4 : 3)]++;
	d->normal = kinds[0];
	d->zero = kinds[1];
	d->ref = kinds[2];
	d->delta = (uint16_t)kinds[3];
	d->pages = n;
	/* Mostly ascending runs, sometimes a jump anywhere (live rounds'
	 * dirty pages, a region's end). */
	for (uint32_t i = 0; i < n; i++) {
		uint64_t p = rnd() % 4 ? (i ? k->off[i - 1] / ps + 1 + rnd() % 3 : rnd() % 8)
				       : rnd() % npages;
		k->off[i] = (p % npages) * ps;
	}
	for (uint32_t i = 0; i < d->ref; i++) {
		lm__ref *r = &k->refs[i];
		uint64_t own = k->off[d->normal + d->zero + i] / ps, sp;
		r->src_round = (uint32_t)(rnd() % (d->round + 1));
		do { /* never itself */
			r->src_region = (uint32_t)(rnd() % lim->region_count);
			sp = rnd() % 4 ? own + rnd() % 128 - 64 : rnd();
			sp %= lim->region_len[r->src_region] / ps;
		} while (r->src_region == d->region && sp == own);
		r->src_offset = sp * ps;
	}
	for (uint32_t i = 0; i < d->delta; i++) {
		k->deltas[i].base_round = (uint32_t)(rnd() % d->round);
		k->deltas[i].len = (uint32_t)(rnd() % ps);
		sum += k->deltas[i].len;
	}
	d->area = (uint32_t)((sum + ps - 1) / ps);
	for (uint32_t i = 0; i < d->normal + d->area; i++) {
		k->lens[i] = ops->per_page && !ops->raw_only ? 1 + (uint32_t)(rnd() % ps) : ps;
		if (ops->per_page)
			d->payload += k->lens[i];
	}
	if (!ops->per_page)
		d->payload = (uint32_t)(rnd() % (ops->payload_bound(ps, d->normal + d->area) + 1));
}

static void test_roundtrip(void)
{
	/* Every region a whole number of pages, some regions share a page
	 * count, one is large (steps of many bytes). */
	uint64_t rlen[4] = {1 << 20, 4096, 64ull << 30, 40960};
	static const uint16_t codecs[] = {LM_CODEC_NONE, LM_CODEC_DEFLATE, LM_CODEC_ZSTD,
					  LM_CODEC_LZ4};
	int f0 = lm_test_failures;

	for (int it = 0; it < 4000; it++) {
		lm__limits lim = {4096,
				  MAXP,
				  LM_CODEC_AUTO,
				  (uint32_t)(rnd() % 4),
				  4,
				  rlen,
				  LM_FEAT_REF | LM_FEAT_DELTA | LM_FEAT_MIXED | LM_FEAT_PACKED};
		static pk k;
		static pk o;

		random_pkt(&k, &lim, codecs[rnd() % 4]);
		encode(&k, lim.page_size);
		CHECK(k.n >= k.d.pages && k.n <= (size_t)LM_DATA_PAGE_TABLES * k.d.pages);
		ACCEPT(decode(k.t, k.n, &k.d, &lim, &o));
		CHECK(memcmp(o.off, k.off, sizeof(*o.off) * k.d.pages) == 0);
		CHECK(memcmp(o.refs, k.refs, sizeof(*o.refs) * k.d.ref) == 0);
		CHECK(memcmp(o.deltas, k.deltas, sizeof(*o.deltas) * k.d.delta) == 0);
		CHECK(memcmp(o.lens, k.lens, sizeof(*o.lens) * (k.d.normal + k.d.area)) == 0);
		CHECK_EQ(o.d.area, k.d.area);
		if (lm_test_failures != f0) {
			fprintf(stderr, "  roundtrip %d: %u pages, codec %u\n", it, k.d.pages,
				k.d.codec_flags);
			return;
		}
	}
}

/* The largest steps a valid packet can have (a region of 2^63 bytes, pages
 * at both ends in turn, refs across it, the largest round and lengths) stay
 * within LM_DATA_PAGE_TABLES a page. */
static void test_worst_case(void)
{
	uint64_t rlen[2] = {1ull << 62, 1ull << 62};
	lm__limits lim = {4096,
			  MAXP,
			  LM_CODEC_AUTO,
			  0xffffffffu,
			  2,
			  rlen,
			  LM_FEAT_REF | LM_FEAT_DELTA | LM_FEAT_MIXED | LM_FEAT_PACKED};
	uint64_t last = (rlen[0] / 4096 - 1) * 4096;
	static pk k;
	static pk o;

	for (int kind = 0; kind < 3; kind++) {
		memset(&k, 0, sizeof(k));
		k.d.round = lim.round;
		k.d.pages = MAXP;
		k.d.codec_flags = LM_CODEC_DEFLATE;
		if (kind == 0)
			k.d.normal = MAXP;
		else if (kind == 1)
			k.d.ref = MAXP;
		else
			k.d.delta = MAXP;
		for (uint32_t i = 0; i < MAXP; i++) {
			k.off[i] = i % 2 ? last - 4096ull * i : 4096ull * i;
			k.refs[i] = (lm__ref){1, 0, i % 2 ? 0 : last};
			k.deltas[i] = (lm__delta){0, 4095};
			k.lens[i] = 4096;
		}
		k.d.area = kind == 2 ? MAXP : 0; /* 128 encodings of 4095 bytes */
		k.d.payload = 4096u * (kind == 0 ? MAXP : k.d.area);
		encode(&k, 4096);
		CHECK(k.n <= (size_t)LM_DATA_PAGE_TABLES * MAXP);
		ACCEPT(decode(k.t, k.n, &k.d, &lim, &o));
		CHECK(memcmp(o.off, k.off, sizeof(o.off)) == 0);
	}
}

/* ---- rejections ------------------------------------------------------------- */

static void test_rejects(void)
{
	uint64_t rlen[3] = {1 << 20, 5000, 0};
	lm__limits lim = {4096,
			  128,
			  LM_CODEC_DEFLATE,
			  2,
			  3,
			  rlen,
			  LM_FEAT_REF | LM_FEAT_DELTA | LM_FEAT_PACKED};
	lm__data_hdr in, d;
	static pk o;
	uint8_t hb[LM_FRAME_HDR + LM_DATA_HDR];

	memset(&in, 0, sizeof(in));
	in.round = 2;
	in.pages = 1;
	in.normal = 1;
	in.payload = 100;
	in.codec_flags = LM_CODEC_DEFLATE;
#define T(bytes, field)                                                          \
	do {                                                                     \
		static const uint8_t b_[] = bytes;                               \
		REJECT(decode(b_, sizeof(b_), &in, &lim, &o), LM_EFIELD, field); \
	} while (0)
#define OK(bytes)                                              \
	do {                                                   \
		static const uint8_t b_[] = bytes;             \
		ACCEPT(decode(b_, sizeof(b_), &in, &lim, &o)); \
	} while (0)
#define B(...) {__VA_ARGS__}
	OK(B(0x00, 0x64)); /* page 0, length 100 */
	T(B(0x00, 0x64, 0x00), "data.tables: 1 of 3 bytes left over");
	T(B(0x00, 0xe4), "data.length[0]: a bad varint");       /* cut short */
	T(B(0x80, 0x00, 0x64), "data.offset[0]: a bad varint"); /* 0 in two bytes */
	T(B(0x00, 0xe4, 0x00), "data.length[0]: a bad varint"); /* 100 in two bytes */
	T(B(0x00, 0x00), "data.length[0] 0 outside 1..4096");
	T(B(0x00, 0x81, 0x20), "data.length[0] 4097 outside 1..4096");
	T(B(0x00, 0x63), "data.payload 100 != sum of page lengths 99");
	T(B(0x80, 0x10, 0x64), "data.offset[0] outside region 0"); /* page 1024 */
	T(B(0x01, 0x64), "data.offset[0] outside region 0");       /* page -1 */
	/* 11 bytes, and 10 whose last exceeds 64 bits. */
	T(B(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x64),
	  "data.offset[0]: a bad varint");
	T(B(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0x64),
	  "data.offset[0]: a bad varint");
	/* Codec none: no lengths at all, the payload a page. */
	in.codec_flags = LM_CODEC_NONE;
	lim.codec = LM_CODEC_NONE;
	in.payload = 4096;
	OK(B(0x00));
	T(B(0x00, 0x80, 0x20), "data.tables: 2 of 3 bytes left over");
	/* Region 1: 5000 bytes, two pages, the second partial. */
	in.region = 1;
	in.pages = 2;
	in.zero = 1;
	OK(B(0x02, 0x03)); /* normal page 1 (the partial one), zero page 0 */
	T(B(0x04, 0x03), "data.offset[0] outside region 1");
	in.normal = 0;
	in.zero = 0;
	in.ref = 2;
	in.payload = 0;
	/* refs at pages 0 and 1 of region 1: page 1 is partial, never a ref */
	T(B(0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x01), "partial last page");
	in.pages = 1;
	in.ref = 1;
	OK(B(0x00, 0x00, 0x00, 0x02)); /* to region 0 page 1 */
	T(B(0x00, 0x03, 0x00, 0x02), "data.ref[0]: src_region 3 (3 regions)");
	T(B(0x00, 0x00, 0x03, 0x02), "3 rounds back from 2");
	OK(B(0x00, 0x00, 0x02, 0x02)); /* round 0 */
	T(B(0x00, 0x00, 0x00, 0x01), "data.ref[0].src_offset not a page of region 0");
	T(B(0x00, 0x00, 0x00, 0x80, 0x10), "data.ref[0].src_offset not a page of region 0");
	T(B(0x00, 0x01, 0x00, 0x00), "is the page at offset 0x0 itself");
	T(B(0x00, 0x00), "data.ref[0]: a bad varint");
	T(B(0x00, 0x00, 0x00, 0x82), "data.ref[0].src_offset: a bad varint");
	/* deltas: round 2, base rounds 0 and 1 */
	in.ref = 0;
	in.delta = 1;
	in.payload = 4096;
	OK(B(0x00, 0x00, 0x64)); /* 0 back: round 1, 100 bytes */
	OK(B(0x00, 0x01, 0x64)); /* round 0 */
	T(B(0x00, 0x02, 0x64), "data.delta[0]: base round 2 - 1 - 2");
	T(B(0x00, 0x00, 0x80, 0x20), "len 4096 (page size 4096)");
	T(B(0x00, 0x00), "data.delta[0]: a bad varint");
	/* the area: one page of the encodings' 100 bytes, whose length is
	 * the page (codec none); none: the payload is the area page. */
	in.payload = 0;
	T(B(0x00, 0x00, 0x64), "data.payload 0 != sum of page lengths 4096");
	/* round 0 has no delta */
	lim.round = 0;
	in.round = 0;
	in.payload = 4096;
	memset(&E, 0, sizeof(E));
	{
		static const uint8_t b_[] = {0x00, 0x00, 0x64};
		REJECT(decode(b_, sizeof(b_), &in, &lim, &o), LM_EFIELD,
		       "data.delta[0]: base round 0 - 1 - 0");
	}
#undef T
#undef OK
#undef B
	/* The header's length: the tables between a byte and
	 * LM_DATA_PAGE_TABLES a page, the payload inside the frame. */
	memset(&in, 0, sizeof(in));
	in.pages = 2;
	in.zero = 2;
	lim.codec = LM_CODEC_NONE;
	lim.round = 0;
	lm__enc_data_hdr(hb, &in, LM_DATA_HDR + 1);
	REJECT(lm__dec_data_hdr(hb + LM_FRAME_HDR, LM_DATA_HDR + 1, &lim, &d, &E), LM_EFIELD,
	       "data.tables 1 bytes outside 2..56 for 2 pages");
	ACCEPT(lm__dec_data_hdr(hb + LM_FRAME_HDR, LM_DATA_HDR + 56, &lim, &d, &E));
	REJECT(lm__dec_data_hdr(hb + LM_FRAME_HDR, LM_DATA_HDR + 57, &lim, &d, &E), LM_EFIELD,
	       "data.tables 57 bytes outside 2..56");
	in.zero = 1;
	in.normal = 1;
	in.payload = 4096;
	lm__enc_data_hdr(hb, &in, LM_DATA_HDR + 4096);
	REJECT(lm__dec_data_hdr(hb + LM_FRAME_HDR, LM_DATA_HDR + 4095, &lim, &d, &E), LM_EFIELD,
	       "below the header and the 4096-byte payload");
	/* Without PACKED the same frame is the fixed format's. */
	lim.features = 0;
	REJECT(lm__dec_data_hdr(hb + LM_FRAME_HDR, LM_DATA_HDR + 4097, &lim, &d, &E), LM_EFIELD,
	       "data.length 4137, counts and payload give");
}

/* ---- one byte changed ------------------------------------------------------- */

/* Every decodable table is the canonical encoding of what it decodes to: a
 * changed byte is refused, or the decoded packet encodes to exactly the
 * changed bytes. The receiver never acts on anything but what the tables
 * say in one way only. */
static void test_mutations(void)
{
	uint64_t rlen[4] = {1 << 20, 4096, 64ull << 30, 40960};
	static const uint16_t codecs[] = {LM_CODEC_NONE, LM_CODEC_DEFLATE, LM_CODEC_ZSTD};
	long decoded = 0, refused = 0;

	for (int it = 0; it < 300; it++) {
		lm__limits lim = {4096,
				  MAXP,
				  LM_CODEC_AUTO,
				  1 + (uint32_t)(rnd() % 3),
				  4,
				  rlen,
				  LM_FEAT_REF | LM_FEAT_DELTA | LM_FEAT_MIXED | LM_FEAT_PACKED};
		static pk k, m;
		random_pkt(&k, &lim, codecs[rnd() % 3]);
		encode(&k, lim.page_size);
		for (size_t pos = 0; pos < k.n; pos++) {
			uint8_t t[MAXP * LM_DATA_PAGE_TABLES];
			memcpy(t, k.t, k.n);
			t[pos] ^= (uint8_t)(1u << (rnd() % 8));
			memset(&m, 0, sizeof(m));
			if (decode(t, k.n, &k.d, &lim, &m)) {
				refused++;
				continue;
			}
			decoded++;
			encode(&m, lim.page_size);
			CHECK(m.n == k.n && memcmp(m.t, t, k.n) == 0);
		}
	}
	/* Both outcomes happen: the test sees the decoder accept and refuse. */
	CHECK(decoded > 100 && refused > 100);
}

int main(void)
{
	test_example();
	test_roundtrip();
	test_worst_case();
	test_rejects();
	test_mutations();
	TEST_DONE("test_packed");
}
