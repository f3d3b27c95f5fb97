/*
 * libFuzzer target: arbitrary bytes -> every checked decoder of src/wire.h.
 *
 * Input layout:
 *   byte 0   operation (op % OP_COUNT):
 *              0 stream:   frames one after another; each header goes through
 *                          lm__dec_frame, each body (exactly f.len bytes, if the
 *                          input has them) through the decoder of its kind
 *              1 hello     2 region   3 data   4 sync
 *              5 complete  6 ack      7 error  8 frame header only
 *            For 1..8 the rest of the input is the body (8: the 12-byte
 *            header), passed in a heap buffer of exactly its size (ASan sees
 *            any over-read). For 3 (data) the rest is a be32 announced body
 *            length, the 40-byte header, then the tables (decoded only when
 *            the input really holds them).
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
		CHECK(lm__codec_get(h.codec) != NULL);
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
	CHECK((uint64_t)d.normal + d.zero + d.ref == d.pages);
	CHECK(d.ref == 0);
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
	free(q);

	/* Tables: only as many bytes as the input really has. */
	tab = 8u * ((size_t)d.normal + d.zero) + 4u * (size_t)d.normal;
	if (tn < tab)
		return;
	tq = dup_exact(t, tab);
	off = malloc(sizeof(*off) * ((size_t)d.normal + d.zero));
	plen = malloc(sizeof(*plen) * d.normal);
	if (lm__dec_data_tables(tq, &d, lim, off, plen, &e) == 0) {
		fz_decoded++;
		uint64_t rlen = lim->region_len[d.region];
		uint32_t nofs = d.normal + d.zero;
		const lm__codec_ops *ops = lm__codec_get(d.codec_flags & LM_PKT_CODEC_MASK);
		uint8_t *re = malloc(tab);

		for (uint32_t i = 0; i < nofs; i++) {
			CHECK(off[i] % lim->page_size == 0);
			CHECK(off[i] < rlen);
			lm__put64(re + 8u * i, off[i]);
		}
		for (uint32_t i = 0; i < d.normal; i++) {
			CHECK(plen[i] >= 1 && plen[i] <= lim->page_size);
			if (ops->raw_only || !ops->per_page)
				CHECK(plen[i] == lim->page_size);
			sum += plen[i];
			lm__put32(re + 8u * nofs + 4u * i, plen[i]);
		}
		if (ops->per_page)
			CHECK(sum == d.payload);
		CHECK(memcmp(re, tq, tab) == 0);
		free(re);
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
	return 0;
}
#endif
