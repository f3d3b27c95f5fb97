/*
 * test_wire.c - checks src/wire.c (and the region checksum) against
 * docs/protocol.md.
 *
 * Expected bytes are built by hand from the document's offset tables with a
 * big-endian writer of our own (not lm__put*), then compared with the
 * encoders byte for byte, so the document and the code cannot drift apart.
 * Every rejection the document lists is checked one at a time, starting
 * from a valid frame, for its LM_E* code and for the field name in the
 * message.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The library inlines its own XXH3 (src/hash_impl.h) and does not link
 * libxxhash: compile the header here too, for an independent computation. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "channel.h"
#include "checksum.h"
#include "codec/codec.h"
#include "livemig.h"
#include "wire.h"

#include "check.h"
#include "wire_check.h"

/* ---- helpers -------------------------------------------------------------- */

/* Big-endian store of the low `size` bytes of v at p (independent of wire.h). */
static void be(uint8_t *p, unsigned size, uint64_t v)
{
	for (unsigned i = 0; i < size; i++)
		p[i] = (uint8_t)(v >> (8 * (size - 1 - i)));
}

/* Byte-for-byte comparison; reports the first differing offset. */
static int same_bytes(const uint8_t *got, const uint8_t *want, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		if (got[i] != want[i]) {
			fprintf(stderr, "%s: byte %zu is 0x%02x, doc says 0x%02x\n", what, i, got[i],
				want[i]);
			return 0;
		}
	}
	return 1;
}

static const uint8_t doc_session[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
					0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};

/* Frame header per doc section 3. */
static void doc_header(uint8_t *p, uint8_t kind, uint32_t len)
{
	be(p + 0, 4, 0x4C4D4947);
	p[4] = kind;
	p[5] = 0;
	be(p + 6, 2, 0);
	be(p + 8, 4, len);
}

/* ---- constants ------------------------------------------------------------- */

static void test_constants(void)
{
	CHECK_EQ(LM_PROTOCOL_VERSION, 2);
	CHECK_EQ(LM_MAGIC, 0x4C4D4947u);
	{
		uint8_t m[4];
		be(m, 4, LM_MAGIC);
		CHECK(memcmp(m, "LMIG", 4) == 0);
	}
	CHECK_EQ(LM_KIND_HELLO, 1);
	CHECK_EQ(LM_KIND_REGION, 2);
	CHECK_EQ(LM_KIND_DATA, 3);
	CHECK_EQ(LM_KIND_SYNC, 4);
	CHECK_EQ(LM_KIND_COMPLETE, 5);
	CHECK_EQ(LM_KIND_ERROR, 6);
	CHECK_EQ(LM_KIND_ACK, 7);
	CHECK_EQ(LM_FRAME_HDR, 12);
	CHECK_EQ(LM_HELLO_LEN, 64);
	CHECK_EQ(LM_REGION_FIXED, 20);
	CHECK_EQ(LM_DATA_HDR, 40);
	CHECK_EQ(LM_SYNC_LEN, 16);
	CHECK_EQ(LM_COMPLETE_FIXED, 8);
	CHECK_EQ(LM_COMPLETE_ENTRY, 24);
	CHECK_EQ(LM_ACK_LEN, 32);
	CHECK_EQ(LM_ERROR_FIXED, 12);
	CHECK_EQ(LM_ERROR_MAX_MSG, 1024);
	CHECK_EQ(LM_ERROR_FRAME_BOUND, 12 + 12 + 1024);
	CHECK_EQ(LM_PKT_CODEC_MASK, 0x00ff);
	CHECK_EQ(LM_PKT_FLAGS_KNOWN, 0);
	CHECK_EQ(LM_FEAT_ROUND_ACK, 1);
	CHECK_EQ(LM_FEAT_REF, 2);   /* section 12: bit 1 */
	CHECK_EQ(LM_FEAT_DELTA, 4); /* bit 2 */
	CHECK_EQ(LM_FEAT_MIXED, 8); /* bit 3 */
	CHECK_EQ(LM_FEAT_DEVSTATE, 16); /* bit 4 */
	CHECK_EQ(LM_FEAT_SEALED, 32);   /* bit 5 */
	CHECK_EQ(LM_FEAT_PACKED, 64);   /* bit 6 */
	CHECK_EQ(LM_FEAT_KNOWN, 127);
	CHECK_EQ(LM__FEEDBACK_US, 100000); /* section 11: every 100 ms */
	CHECK_EQ(LM_REF_ENTRY, 16);  /* section 6, ref entry */
	CHECK_EQ(LM_DELTA_ENTRY, 8); /* delta entry */
	/* Limits table (section 15). */
	CHECK_EQ(LM_MAX_CHANNELS, 64);
	CHECK_EQ(LM_DEFAULT_CHANNELS, 2);
	CHECK_EQ(LM_MIN_PAGE_SIZE, 4096);
	CHECK_EQ(LM_MAX_PAGE_SIZE, 65536);
	CHECK_EQ(LM_MAX_PACKET_PAGES, 1024);
	CHECK_EQ(LM_DEFAULT_PACKET_PAGES, 128);
	CHECK_EQ(LM_MAX_REGIONS, 256);
	CHECK_EQ(LM_MAX_REGION_NAME, 255);
	CHECK_EQ(LM_DEFAULT_TIMEOUT_MS, 30000);
	CHECK_EQ(LM_SUM_BLOCK, 4096);
	/* Error code table (section 2): these values travel in ERROR frames. */
	CHECK_EQ(LM_EBADMAGIC, -4001);
	CHECK_EQ(LM_EVERSION, -4002);
	CHECK_EQ(LM_ESESSION, -4003);
	CHECK_EQ(LM_EFIELD, -4004);
	CHECK_EQ(LM_ECODEC, -4005);
	CHECK_EQ(LM_EFEATURE, -4006);
	CHECK_EQ(LM_EKIND, -4007);
	CHECK_EQ(LM_ECHECKSUM, -4008);
	CHECK_EQ(LM_EPEER, -4009);
	CHECK_EQ(LM_ETIMEDOUT, -4010);
	CHECK_EQ(LM_EEOF, -4011);
	CHECK_EQ(LM_EREGION, -4012);
	CHECK_EQ(LM_ESTATE, -4013);
	CHECK_EQ(LM_EDECODE, -4014);
	CHECK_EQ(LM_EINVAL, -EINVAL);
	/* Codec ids (section 12). */
	CHECK_EQ(LM_CODEC_NONE, 0);
	CHECK_EQ(LM_CODEC_DEFLATE, 1);
	CHECK_EQ(LM_CODEC_ZSTD, 2);
	CHECK_EQ(LM_CODEC_LZ4, 3);
	CHECK_EQ(LM_CODEC_ZLIB, 4);
	for (unsigned id = 0; id <= 4; id++)
		CHECK(lm__codec_get((uint16_t)id) != NULL && lm__codec_get((uint16_t)id)->id == id);
	CHECK(lm__codec_get(1)->per_page == 1 && lm__codec_get(1)->raw_only == 0);
	for (unsigned id = 2; id <= 4; id++)
		CHECK(lm__codec_get((uint16_t)id)->per_page == 0);
	for (unsigned id = 5; id < 256; id++)
		CHECK(lm__codec_get((uint16_t)id) == NULL);
	/* Per-codec arrays (stats, FEEDBACK) hold every known id. */
	CHECK_EQ(LM_FEEDBACK_CODECS, LM_MAX_CODECS);
	for (unsigned id = 0; id < 0x10000; id++)
		CHECK(!lm__codec_get((uint16_t)id) || id < LM_MAX_CODECS);
	CHECK_EQ(LM_CODEC_AUTO, 255);
	CHECK(lm__codec_get(LM_CODEC_AUTO) == NULL); /* never a packet's codec */
	CHECK(lm__codec_get(0xffff) == NULL);
	CHECK(lm__codec_none.per_page == 1 && lm__codec_none.raw_only == 1);
	CHECK_EQ(lm__codec_none.payload_bound(4096, 3), 3 * 4096);
}

/* ---- frame header ------------------------------------------------------------ */

/* DATA's entry depends on the codecs built in: computed where used. */
static const uint64_t max_body_4096_128[8] = {0, 64, 275, 0, 16, 6152, 1036, 32};

static int read_frame_bytes(const uint8_t *hdr, uint32_t ps, uint32_t pp, lm__frame *f)
{
	int fds[2], rc;
	lm__conn c;

	if (pipe(fds))
		return -errno;
	if (write(fds[1], hdr, LM_FRAME_HDR) != (ssize_t)LM_FRAME_HDR) {
		close(fds[0]);
		close(fds[1]);
		return -EIO;
	}
	lm__conn_init(&c, fds[0], 1000);
	memset(&E, 0, sizeof(E));
	rc = lm__read_frame(&c, f, ps, pp, &E);
	close(fds[0]);
	close(fds[1]);
	return rc;
}

static void test_frame(void)
{
	uint8_t got[LM_FRAME_HDR], want[LM_FRAME_HDR], b[LM_FRAME_HDR];
	lm__frame f;
	static const char *const names[8] = {"?", "hello", "region", "data", "sync",
					     "complete", "error", "ack"};

	/* Layout. */
	for (uint8_t k = 1; k <= 7; k++) {
		CHECK_EQ(lm__enc_frame(got, k, 0, 0xA1B2C3D4u), 12);
		doc_header(want, k, 0xA1B2C3D4u);
		CHECK(same_bytes(got, want, 12, "frame header"));
		memset(&f, 0xee, sizeof(f));
		ACCEPT(lm__dec_frame(got, &f, &E));
		CHECK_EQ(f.kind, k);
		CHECK_EQ(f.flags, 0);
		CHECK_EQ(f.len, 0xA1B2C3D4u);
		CHECK(strcmp(lm__kind_name(k), names[k]) == 0);
	}
	/* Rejections, one at a time from a valid header. */
	doc_header(want, LM_KIND_SYNC, 16);
	memcpy(b, want, 12);
	b[0] = 'X';
	REJECT(lm__dec_frame(b, &f, &E), LM_EBADMAGIC, "frame.magic");
	memcpy(b, want, 12);
	b[3] ^= 1;
	REJECT(lm__dec_frame(b, &f, &E), LM_EBADMAGIC, "frame.magic");
	for (unsigned k = 0; k < 256; k += (k < 10 ? 1 : 41)) {
		if (k >= 1 && k <= LM_KIND_MAX)
			continue;
		memcpy(b, want, 12);
		b[4] = (uint8_t)k;
		REJECT(lm__dec_frame(b, &f, &E), LM_EKIND, "frame.kind");
	}
	memcpy(b, want, 12);
	b[4] = 255;
	REJECT(lm__dec_frame(b, &f, &E), LM_EKIND, "frame.kind");
	for (unsigned v = 1; v < 256; v <<= 1) {
		memcpy(b, want, 12);
		b[5] = (uint8_t)v;
		REJECT(lm__dec_frame(b, &f, &E), LM_EFIELD, "frame.flags");
	}
	for (int i = 6; i < 8; i++) {
		memcpy(b, want, 12);
		b[i] = 0x80;
		REJECT(lm__dec_frame(b, &f, &E), LM_EFIELD, "frame.reserved");
	}
	/* Check order: magic before kind, kind before flags. */
	memcpy(b, want, 12);
	b[0] = 0;
	b[4] = 99;
	REJECT(lm__dec_frame(b, &f, &E), LM_EBADMAGIC, "frame.magic");
	memcpy(b, want, 12);
	b[4] = 0;
	b[5] = 1;
	REJECT(lm__dec_frame(b, &f, &E), LM_EKIND, "frame.kind");

	/* Maximum body lengths (section 3), enforced when a frame is read. */
	for (uint8_t k = 1; k <= 7; k++) {
		char field[32];
		uint64_t max = k == LM_KIND_DATA ? 40 + (8 + 16) * 128 + lm__codec_payload_bound(4096, 128)
						 : max_body_4096_128[k];
		CHECK_EQ(lm__max_body(k, 4096, 128), max);
		doc_header(b, k, (uint32_t)max);
		CHECK_EQ(read_frame_bytes(b, 4096, 128, &f), 0);
		CHECK_EQ(f.len, max);
		doc_header(b, k, (uint32_t)max + 1);
		snprintf(field, sizeof(field), "%s.length", names[k]);
		REJECT(read_frame_bytes(b, 4096, 128, &f), LM_EFIELD, field);
	}
	doc_header(b, LM_KIND_DATA, 0xffffffffu);
	REJECT(read_frame_bytes(b, 65536, 1024, &f), LM_EFIELD, "data.length");
}

static void test_max_body(void)
{
	CHECK_EQ(lm__max_body(LM_KIND_HELLO, 65536, 1024), 64);
	CHECK_EQ(lm__max_body(LM_KIND_REGION, 65536, 1024), 20 + 255);
	CHECK_EQ(lm__max_body(LM_KIND_SYNC, 65536, 1024), 16);
	CHECK_EQ(lm__max_body(LM_KIND_COMPLETE, 65536, 1024), 8 + 24 * 256);
	CHECK_EQ(lm__max_body(LM_KIND_ERROR, 65536, 1024), 12 + 1024);
	CHECK_EQ(lm__max_body(LM_KIND_ACK, 65536, 1024), 32);
	/* DATA: 40 + (8 + 16) x packet_pages + the largest payload bound of
	 * any codec, which is at least packet_pages x page_size (codec none):
	 * an offset per page and the largest of a 16-byte ref entry, an 8-byte
	 * delta entry plus a 4-byte area length, or a 4-byte length. */
	static const uint32_t ps_pp[][2] = {{4096, 128}, {4096, 1024}, {65536, 1024}, {4096, 1},
					    {16384, 7}};
	for (size_t i = 0; i < sizeof(ps_pp) / sizeof(ps_pp[0]); i++) {
		uint32_t ps = ps_pp[i][0], pp = ps_pp[i][1];
		uint64_t bound = 0;
		for (unsigned id = 0; id < 256; id++) {
			const lm__codec_ops *ops = lm__codec_get((uint16_t)id);
			if (ops && ops->payload_bound(ps, pp) > bound)
				bound = ops->payload_bound(ps, pp);
		}
		CHECK(bound >= (uint64_t)pp * ps);
		CHECK_EQ(lm__codec_payload_bound(ps, pp), bound);
		CHECK_EQ(lm__max_body(LM_KIND_DATA, ps, pp), 40 + 24ull * pp + bound);
	}
	CHECK_EQ(lm__max_body(0, 4096, 128), 0);
	CHECK_EQ(lm__max_body(LM_KIND_FEEDBACK, 4096, 128), LM_FEEDBACK_LEN);
	CHECK_EQ(lm__max_body(LM_KIND_MAX + 1, 4096, 128), 0);
	CHECK_EQ(lm__max_body(255, 4096, 128), 0);
	/* The largest legal v1 DATA frame fits the bound. */
	{
		lm__data_hdr d = {0};
		d.pages = d.normal = 1024;
		d.payload = 1024u * 65536u;
		CHECK(lm__data_body_len(&d) <= lm__max_body(LM_KIND_DATA, 65536, 1024));
	}
	/* And so do the largest with ref or delta pages: all refs; all deltas
	 * with an area of one page per delta page (each encoding < a page). */
	{
		lm__data_hdr d = {0};
		d.pages = d.ref = 1024;
		CHECK_EQ(lm__data_body_len(&d), 40 + 24 * 1024);
		CHECK(lm__data_body_len(&d) <= lm__max_body(LM_KIND_DATA, 4096, 1024));
		memset(&d, 0, sizeof(d));
		d.pages = d.delta = 1024;
		d.area = 1024;
		d.payload = 1024u * 65536u;
		CHECK_EQ(lm__data_body_len(&d), 40 + 20 * 1024 + 67108864);
		CHECK(lm__data_body_len(&d) <= lm__max_body(LM_KIND_DATA, 65536, 1024));
		/* Mixed: every kind, the area as large as it can be. */
		memset(&d, 0, sizeof(d));
		d.pages = 128;
		d.normal = 32;
		d.zero = 32;
		d.ref = 32;
		d.delta = 32;
		d.area = 32;
		d.payload = 64u * 4096u;
		CHECK(lm__data_body_len(&d) <= lm__max_body(LM_KIND_DATA, 4096, 128));
	}
}

/* ---- HELLO --------------------------------------------------------------------- */

typedef struct hello_vals {
	uint16_t version, channel, channels, codec;
	uint8_t session[16];
	uint32_t page_size, packet_pages, region_count;
	uint64_t features, required;
} hello_vals;

/* Body per the doc's HELLO table. */
static void doc_hello_body(uint8_t *b, const hello_vals *v)
{
	memset(b, 0xA5, 64); /* every byte below is written explicitly */
	be(b + 0, 2, v->version);
	be(b + 2, 2, 0);
	memcpy(b + 4, v->session, 16);
	be(b + 20, 2, v->channel);
	be(b + 22, 2, v->channels);
	be(b + 24, 4, v->page_size);
	be(b + 28, 2, v->codec);
	be(b + 30, 2, 0);
	be(b + 32, 4, v->packet_pages);
	be(b + 36, 4, v->region_count);
	be(b + 40, 8, v->features);
	be(b + 48, 8, v->required);
	be(b + 56, 8, 0);
}

static void to_hello(lm__hello *h, const hello_vals *v)
{
	memset(h, 0, sizeof(*h));
	h->version = v->version;
	memcpy(h->session, v->session, 16);
	h->channel = v->channel;
	h->channels = v->channels;
	h->page_size = v->page_size;
	h->codec = v->codec;
	h->packet_pages = v->packet_pages;
	h->region_count = v->region_count;
	h->features = v->features;
	h->required = v->required;
}

static void hello_roundtrip(const hello_vals *v)
{
	uint8_t got[12 + 64], want[12 + 64];
	lm__hello h, out;

	to_hello(&h, v);
	CHECK_EQ(lm__enc_hello(got, &h), 76);
	doc_header(want, LM_KIND_HELLO, 64);
	doc_hello_body(want + 12, v);
	CHECK(same_bytes(got, want, sizeof(want), "hello"));
	memset(&out, 0x5a, sizeof(out));
	ACCEPT(lm__dec_hello(got + 12, 64, &out, &E));
	CHECK_EQ(out.version, v->version);
	CHECK(memcmp(out.session, v->session, 16) == 0);
	CHECK_EQ(out.channel, v->channel);
	CHECK_EQ(out.channels, v->channels);
	CHECK_EQ(out.page_size, v->page_size);
	CHECK_EQ(out.codec, v->codec);
	CHECK_EQ(out.packet_pages, v->packet_pages);
	CHECK_EQ(out.region_count, v->region_count);
	CHECK(out.features == v->features);
	CHECK(out.required == v->required);
}

static void test_hello(void)
{
	static const uint8_t doc_hex[76] = {
		0x4c, 0x4d, 0x49, 0x47, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x02, 0x00, 0x00,
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
		0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,
		0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
	hello_vals doc = {2, 1, 4, 0, {0}, 4096, 128, 2, 0, 0};
	hello_vals lo = {2, 0, 1, 0, {0}, 4096, 1, 0, 0, 0};
	hello_vals hi = {2, 63, 64, 0, {0}, 65536, 1024, 256, ~0ull, 0};
	uint8_t enc[76], v[64], b[64];
	lm__hello h;

	memcpy(doc.session, doc_session, 16);
	memset(lo.session, 0, 16);
	lo.session[15] = 1; /* one non-zero bit is enough */
	memset(hi.session, 0xff, 16);

	/* The doc's hex dump (section 17) is what the encoder writes. */
	to_hello(&h, &doc);
	CHECK_EQ(lm__enc_hello(enc, &h), sizeof(doc_hex));
	CHECK(same_bytes(enc, doc_hex, sizeof(doc_hex), "hello hex dump"));
	hello_roundtrip(&doc);
	hello_roundtrip(&lo);
	hello_roundtrip(&hi);
	for (uint32_t ps = 4096; ps <= 65536; ps <<= 1) {
		hello_vals x = doc;
		x.page_size = ps;
		hello_roundtrip(&x);
	}

	/* Rejections, one field at a time from a valid body. */
	doc_hello_body(v, &doc);
	REJECT(lm__dec_hello(v, 63, &h, &E), LM_EFIELD, "hello.length");
	REJECT(lm__dec_hello(v, 65, &h, &E), LM_EFIELD, "hello.length");
	REJECT(lm__dec_hello(v, 0, &h, &E), LM_EFIELD, "hello.length");
	static const uint16_t bad_versions[] = {0, 1, 3, 0x0200, 0xffff};
	for (size_t i = 0; i < sizeof(bad_versions) / sizeof(bad_versions[0]); i++) {
		memcpy(b, v, 64);
		be(b + 0, 2, bad_versions[i]);
		REJECT(lm__dec_hello(b, 64, &h, &E), LM_EVERSION, "hello.version");
	}
	static const int reserved_bytes[] = {2, 3, 30, 31, 56, 57, 60, 63};
	for (size_t i = 0; i < sizeof(reserved_bytes) / sizeof(reserved_bytes[0]); i++) {
		memcpy(b, v, 64);
		b[reserved_bytes[i]] = 1;
		REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFIELD, "hello.reserved");
	}
	memcpy(b, v, 64);
	memset(b + 4, 0, 16);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_ESESSION, "hello.session");
	static const uint16_t bad_channels[] = {0, 65, 1000, 0xffff};
	for (size_t i = 0; i < sizeof(bad_channels) / sizeof(bad_channels[0]); i++) {
		memcpy(b, v, 64);
		be(b + 20, 2, 0);
		be(b + 22, 2, bad_channels[i]);
		REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFIELD, "hello.channels");
	}
	memcpy(b, v, 64);
	be(b + 20, 2, 4); /* channel == channels */
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFIELD, "hello.channel ");
	memcpy(b, v, 64);
	be(b + 20, 2, 0xffff);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFIELD, "hello.channel ");
	static const uint32_t bad_pages[] = {0, 1, 512, 2048, 3000, 4095, 4097, 12288, 65535,
					     65537, 131072, 0x80000000u, 0xffffffffu};
	for (size_t i = 0; i < sizeof(bad_pages) / sizeof(bad_pages[0]); i++) {
		memcpy(b, v, 64);
		be(b + 24, 4, bad_pages[i]);
		REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFIELD, "hello.page_size");
	}
	static const uint16_t bad_codecs[] = {5, 6, 255, 256, 0xffff};
	for (size_t i = 0; i < sizeof(bad_codecs) / sizeof(bad_codecs[0]); i++) {
		memcpy(b, v, 64);
		be(b + 28, 2, bad_codecs[i]);
		REJECT(lm__dec_hello(b, 64, &h, &E), LM_ECODEC, "hello.codec");
	}
	static const uint32_t bad_pp[] = {0, 1025, 4096, 0xffffffffu};
	for (size_t i = 0; i < sizeof(bad_pp) / sizeof(bad_pp[0]); i++) {
		memcpy(b, v, 64);
		be(b + 32, 4, bad_pp[i]);
		REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFIELD, "hello.packet_pages");
	}
	static const uint32_t bad_rc[] = {257, 1000, 0xffffffffu};
	for (size_t i = 0; i < sizeof(bad_rc) / sizeof(bad_rc[0]); i++) {
		memcpy(b, v, 64);
		be(b + 36, 4, bad_rc[i]);
		REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFIELD, "hello.region_count");
	}
	for (int bit = 7; bit < 64; bit += 20) { /* bits 0..6: ROUND_ACK, REF, DELTA, MIXED, DEVSTATE, SEALED, PACKED */
		memcpy(b, v, 64);
		be(b + 48, 8, 1ull << bit);
		REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFEATURE, "hello.required");
	}
	memcpy(b, v, 64);
	be(b + 48, 8, 1ull << 63);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFEATURE, "hello.required");
	/* The known bits may be required, alone or together (MIXED with
	 * codec auto, see test_hello_mixed). */
	for (uint64_t req = 1; req <= LM_FEAT_KNOWN; req++) {
		memcpy(b, v, 64);
		be(b + 28, 2, (req & LM_FEAT_MIXED) ? LM_CODEC_AUTO : 0);
		be(b + 40, 8, req);
		be(b + 48, 8, req);
		ACCEPT(lm__dec_hello(b, 64, &h, &E));
		CHECK(h.required == req && h.features == req);
		CHECK(lm__hello_features(&h) == req);
	}
	memcpy(b, v, 64);
	be(b + 28, 2, LM_CODEC_AUTO);
	be(b + 48, 8, LM_FEAT_KNOWN | 128);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFEATURE, "hello.required");
	/* Unknown optional features are ignored. */
	memcpy(b, v, 64);
	be(b + 40, 8, 0x8000000000000001ull);
	ACCEPT(lm__dec_hello(b, 64, &h, &E));
	CHECK(h.features == 0x8000000000000001ull);
	/* Check order (section 4): version before reserved and everything else. */
	memcpy(b, v, 64);
	be(b + 0, 2, 3);
	b[2] = 1;
	memset(b + 4, 0, 16);
	be(b + 24, 4, 3000);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_EVERSION, "hello.version");
	memcpy(b, v, 64);
	b[63] = 1;
	memset(b + 4, 0, 16);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFIELD, "hello.reserved");
}

/* Codec auto: hello.codec 255 exactly when hello.required has MIXED. */
static void test_hello_mixed(void)
{
	hello_vals doc = {2, 1, 4, 0, {0}, 4096, 128, 2, 0, 0};
	uint8_t b[64];
	lm__hello h;

	memcpy(doc.session, doc_session, 16);
#define HELLO(codec_, feat_, req_)                 \
	do {                                       \
		doc_hello_body(b, &doc);           \
		be(b + 28, 2, (codec_));           \
		be(b + 40, 8, (feat_));            \
		be(b + 48, 8, (req_));             \
	} while (0)
	HELLO(LM_CODEC_AUTO, LM_FEAT_MIXED, LM_FEAT_MIXED);
	ACCEPT(lm__dec_hello(b, 64, &h, &E));
	CHECK(h.codec == LM_CODEC_AUTO && lm__hello_features(&h) == LM_FEAT_MIXED);
	/* Required alone is offered too. */
	HELLO(LM_CODEC_AUTO, LM_FEAT_ROUND_ACK, LM_FEAT_MIXED);
	ACCEPT(lm__dec_hello(b, 64, &h, &E));
	CHECK(lm__hello_features(&h) == (LM_FEAT_MIXED | LM_FEAT_ROUND_ACK));
	/* Unknown optional bits never count. */
	HELLO(LM_CODEC_AUTO, ~0ull, LM_FEAT_MIXED);
	ACCEPT(lm__dec_hello(b, 64, &h, &E));
	CHECK(lm__hello_features(&h) == LM_FEAT_KNOWN);
	/* 255 without MIXED required: offered only, or not at all. */
	HELLO(LM_CODEC_AUTO, LM_FEAT_MIXED, 0);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_ECODEC, "hello.codec 255");
	HELLO(LM_CODEC_AUTO, 0, 0);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_ECODEC, "hello.codec 255");
	HELLO(LM_CODEC_AUTO, LM_FEAT_KNOWN & ~LM_FEAT_MIXED, LM_FEAT_ROUND_ACK);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_ECODEC, "hello.codec 255");
	/* MIXED required with a pinned codec, every known one. */
	for (uint16_t c = 0; c <= 4; c++) {
		HELLO(c, LM_FEAT_MIXED, LM_FEAT_MIXED);
		REJECT(lm__dec_hello(b, 64, &h, &E), LM_ECODEC, "hello.codec");
		CHECK(strstr(E.msg, "mixed") != NULL);
		/* Offered but not required: the hello stands, MIXED is not
		 * agreed. */
		HELLO(c, LM_FEAT_MIXED | LM_FEAT_REF, 0);
		ACCEPT(lm__dec_hello(b, 64, &h, &E));
		CHECK(lm__hello_features(&h) == LM_FEAT_REF);
	}
	/* An unknown codec stays unknown, MIXED or not. */
	HELLO(7, LM_FEAT_MIXED, LM_FEAT_MIXED);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_ECODEC, "hello.codec 7 unknown");
	HELLO(254, 0, 0);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_ECODEC, "hello.codec 254 unknown");
	/* Check order: the codec before packet_pages and required. */
	HELLO(LM_CODEC_AUTO, 0, 1ull << 40);
	be(b + 32, 4, 0);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_ECODEC, "hello.codec");
	HELLO(LM_CODEC_AUTO, 0, LM_FEAT_MIXED | 1ull << 40);
	REJECT(lm__dec_hello(b, 64, &h, &E), LM_EFEATURE, "hello.required");
#undef HELLO
}

/* ---- REGION -------------------------------------------------------------------- */

static size_t doc_region(uint8_t *p, uint32_t id, uint64_t len, uint16_t name_len, const char *name)
{
	doc_header(p, LM_KIND_REGION, 20u + name_len);
	be(p + 12 + 0, 4, id);
	be(p + 12 + 4, 4, 0);
	be(p + 12 + 8, 8, len);
	be(p + 12 + 16, 2, name_len);
	be(p + 12 + 18, 2, 0);
	memcpy(p + 12 + 20, name, name_len);
	return 12u + 20u + name_len;
}

static void region_roundtrip(uint32_t id, uint64_t len, const char *name)
{
	uint8_t got[12 + 20 + 255], want[12 + 20 + 255];
	lm__region_msg m, out;
	size_t n = strlen(name), wn;

	memset(&m, 0, sizeof(m));
	m.id = id;
	m.len = len;
	m.name_len = (uint16_t)n;
	memcpy(m.name, name, n);
	CHECK_EQ(lm__enc_region(got, &m), 12 + 20 + n);
	wn = doc_region(want, id, len, (uint16_t)n, name);
	CHECK_EQ(wn, 12 + 20 + n);
	CHECK(same_bytes(got, want, wn, "region"));
	memset(&out, 0x5a, sizeof(out));
	ACCEPT(lm__dec_region(got + 12, (uint32_t)(20 + n), &out, &E));
	CHECK_EQ(out.id, id);
	CHECK(out.len == len);
	CHECK_EQ(out.name_len, n);
	CHECK(strcmp(out.name, name) == 0);
}

static void test_region(void)
{
	char longname[256];
	uint8_t v[12 + 20 + 255], b[20 + 255];
	lm__region_msg m;
	const uint8_t *body = v + 12;

	memset(longname, 'n', 255);
	longname[0] = 'A';
	longname[254] = 'Z';
	longname[255] = 0;
	region_roundtrip(0, 0, "r");
	region_roundtrip(0xffffffffu, 0x7fffffffffffffffull, longname);
	region_roundtrip(3, 5000, "guest-ram.0");
	region_roundtrip(255, 1ull << 40, "\xc3\xa9t\xc3\xa9"); /* any bytes except NUL */

	doc_region(v, 1, 16384, 4, "heap");
	ACCEPT(lm__dec_region(body, 24, &m, &E));
	REJECT(lm__dec_region(body, 19, &m, &E), LM_EFIELD, "region.length");
	REJECT(lm__dec_region(body, 276, &m, &E), LM_EFIELD, "region.length");
	REJECT(lm__dec_region(body, 0, &m, &E), LM_EFIELD, "region.length");
	static const int reserved_bytes[] = {4, 5, 6, 7, 18, 19};
	for (size_t i = 0; i < sizeof(reserved_bytes) / sizeof(reserved_bytes[0]); i++) {
		memcpy(b, body, 24);
		b[reserved_bytes[i]] = 0x10;
		REJECT(lm__dec_region(b, 24, &m, &E), LM_EFIELD, "region.reserved");
	}
	memcpy(b, body, 24);
	be(b + 16, 2, 0);
	REJECT(lm__dec_region(b, 20, &m, &E), LM_EFIELD, "region.name_len");
	memcpy(b, body, 24);
	be(b + 16, 2, 256);
	REJECT(lm__dec_region(b, 24, &m, &E), LM_EFIELD, "region.name_len");
	memcpy(b, body, 24);
	be(b + 16, 2, 0xffff);
	REJECT(lm__dec_region(b, 24, &m, &E), LM_EFIELD, "region.name_len");
	memcpy(b, body, 24);
	be(b + 16, 2, 3); /* frame length 24 != 20 + 3 */
	REJECT(lm__dec_region(b, 24, &m, &E), LM_EFIELD, "region.length");
	memcpy(b, body, 24);
	be(b + 16, 2, 5); /* frame length 24 != 20 + 5 */
	REJECT(lm__dec_region(b, 24, &m, &E), LM_EFIELD, "region.length");
	memcpy(b, body, 24);
	b[20 + 2] = 0;
	REJECT(lm__dec_region(b, 24, &m, &E), LM_EFIELD, "region.name");
	memcpy(b, body, 24);
	b[20] = 0;
	REJECT(lm__dec_region(b, 24, &m, &E), LM_EFIELD, "region.name");
	memcpy(b, body, 24);
	be(b + 8, 8, 0x8000000000000000ull);
	REJECT(lm__dec_region(b, 24, &m, &E), LM_EFIELD, "region.len");
	memcpy(b, body, 24);
	be(b + 8, 8, ~0ull);
	REJECT(lm__dec_region(b, 24, &m, &E), LM_EFIELD, "region.len");
}

/* ---- DATA ----------------------------------------------------------------------- */

typedef struct data_vals {
	uint64_t packet_num;
	uint32_t region, round, pages, normal, zero, ref, payload;
	uint16_t codec_flags, delta;
	uint32_t area; /* not in the header: the delta area's pages */
} data_vals;

static void doc_data_hdr(uint8_t *b, const data_vals *d)
{
	be(b + 0, 8, d->packet_num);
	be(b + 8, 4, d->region);
	be(b + 12, 4, d->round);
	be(b + 16, 4, d->pages);
	be(b + 20, 4, d->normal);
	be(b + 24, 4, d->zero);
	be(b + 28, 4, d->ref);
	be(b + 32, 4, d->payload);
	be(b + 36, 2, d->codec_flags);
	be(b + 38, 2, d->delta);
}

/* Section 6: 40 + 8 x pages + 16 x ref + 8 x delta + 4 x (normal + area) +
 * payload, pages counted as the sum of the four kinds. */
static uint64_t doc_body_len(const data_vals *d)
{
	return 40 + 8ull * ((uint64_t)d->normal + d->zero + d->ref + d->delta) + 16ull * d->ref +
	       8ull * d->delta + 4ull * ((uint64_t)d->normal + d->area) + d->payload;
}

static void to_data(lm__data_hdr *h, const data_vals *d)
{
	memset(h, 0, sizeof(*h));
	h->packet_num = d->packet_num;
	h->region = d->region;
	h->round = d->round;
	h->pages = d->pages;
	h->normal = d->normal;
	h->zero = d->zero;
	h->ref = d->ref;
	h->payload = d->payload;
	h->codec_flags = d->codec_flags;
	h->delta = d->delta;
	h->area = d->area;
}

static void data_roundtrip(const data_vals *d, const lm__limits *lim)
{
	uint8_t got[12 + 40], want[12 + 40];
	lm__data_hdr h, out;
	uint64_t bl = doc_body_len(d);

	to_data(&h, d);
	CHECK(lm__data_body_len(&h) == bl);
	CHECK_EQ(lm__enc_data_hdr(got, &h, (uint32_t)bl), 52);
	doc_header(want, LM_KIND_DATA, (uint32_t)bl);
	doc_data_hdr(want + 12, d);
	CHECK(same_bytes(got, want, sizeof(want), "data header"));
	memset(&out, 0x5a, sizeof(out));
	ACCEPT(lm__dec_data_hdr(got + 12, (uint32_t)bl, lim, &out, &E));
	CHECK(out.packet_num == d->packet_num);
	CHECK_EQ(out.region, d->region);
	CHECK_EQ(out.round, d->round);
	CHECK_EQ(out.pages, d->pages);
	CHECK_EQ(out.normal, d->normal);
	CHECK_EQ(out.zero, d->zero);
	CHECK_EQ(out.ref, d->ref);
	CHECK_EQ(out.payload, d->payload);
	CHECK_EQ(out.codec_flags, d->codec_flags);
	CHECK_EQ(out.delta, d->delta);
	CHECK_EQ(out.area, d->area); /* derived from the frame length */
}

static void test_data_examples(void)
{
	/* Section 17: zero pages only. */
	static const uint8_t zero_hex[68] = {
		0x4c, 0x4d, 0x49, 0x47, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x38, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x50, 0x00};
	/* Section 17: one normal and one zero page, header and tables. */
	static const uint8_t mixed_hex[72] = {
		0x4c, 0x4d, 0x49, 0x47, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x3c, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
		0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00};
	uint64_t rlen[2] = {8192, 0x6000};
	lm__limits lim = {4096, 128, 0, 0, 2, rlen, 0};
	uint8_t got[128], want[128];
	lm__data_hdr d, out;
	uint64_t off[4];
	uint32_t plen[4];
	size_t n;

	memset(&d, 0, sizeof(d));
	d.packet_num = 5;
	d.region = 1;
	d.pages = 2;
	d.zero = 2;
	CHECK_EQ(lm__data_body_len(&d), 56);
	n = lm__enc_data_hdr(got, &d, (uint32_t)lm__data_body_len(&d));
	lm__put64(got + n, 0x3000);
	lm__put64(got + n + 8, 0x5000);
	n += 16;
	CHECK_EQ(n, sizeof(zero_hex));
	CHECK(same_bytes(got, zero_hex, sizeof(zero_hex), "data (zero pages) hex dump"));
	/* The same bytes, built from the tables. */
	doc_header(want, LM_KIND_DATA, 56);
	doc_data_hdr(want + 12, &(data_vals){5, 1, 0, 2, 0, 2, 0, 0, 0, 0, 0});
	be(want + 52, 8, 0x3000);
	be(want + 60, 8, 0x5000);
	CHECK(same_bytes(zero_hex, want, sizeof(zero_hex), "data (zero pages) from tables"));
	ACCEPT(lm__dec_data_hdr(zero_hex + 12, 56, &lim, &out, &E));
	ACCEPT(lm__dec_data_tables(zero_hex + 52, &out, &lim, off, plen, &E));
	CHECK(off[0] == 0x3000 && off[1] == 0x5000);

	memset(&d, 0, sizeof(d));
	d.packet_num = 6;
	d.pages = 2;
	d.normal = 1;
	d.zero = 1;
	d.payload = 4096;
	CHECK_EQ(lm__data_body_len(&d), 4156);
	n = lm__enc_data_hdr(got, &d, (uint32_t)lm__data_body_len(&d));
	lm__put64(got + n, 0);
	lm__put64(got + n + 8, 0x1000);
	lm__put32(got + n + 16, 4096);
	n += 20;
	CHECK_EQ(n, sizeof(mixed_hex));
	CHECK(same_bytes(got, mixed_hex, sizeof(mixed_hex), "data (mixed) hex dump"));
	doc_header(want, LM_KIND_DATA, 4156);
	doc_data_hdr(want + 12, &(data_vals){6, 0, 0, 2, 1, 1, 0, 4096, 0, 0, 0});
	be(want + 52, 8, 0);
	be(want + 60, 8, 0x1000);
	be(want + 68, 4, 4096);
	CHECK(same_bytes(mixed_hex, want, sizeof(mixed_hex), "data (mixed) from tables"));
	ACCEPT(lm__dec_data_hdr(mixed_hex + 12, 4156, &lim, &out, &E));
	ACCEPT(lm__dec_data_tables(mixed_hex + 52, &out, &lim, off, plen, &E));
	CHECK(off[0] == 0 && off[1] == 0x1000 && plen[0] == 4096);
}

static void test_data_body_len(void)
{
	lm__data_hdr d;

	memset(&d, 0, sizeof(d));
	CHECK_EQ(lm__data_body_len(&d), 40);
	d.zero = 1;
	CHECK_EQ(lm__data_body_len(&d), 48);
	d.zero = 0;
	d.normal = 1;
	d.payload = 4096;
	CHECK_EQ(lm__data_body_len(&d), 40 + 8 + 4 + 4096);
	d.normal = 3;
	d.zero = 5;
	d.ref = 7;
	d.payload = 1000;
	/* Every page has an offset, ref pages a 16-byte entry too. */
	CHECK_EQ(lm__data_body_len(&d), 40 + 8 * 15 + 16 * 7 + 4 * 3 + 1000);
	d.delta = 2;
	CHECK_EQ(lm__data_body_len(&d), 40 + 8 * 17 + 16 * 7 + 8 * 2 + 4 * 3 + 1000);
	d.area = 1; /* one more length entry; the area's bytes are in payload */
	CHECK_EQ(lm__data_body_len(&d), 40 + 8 * 17 + 16 * 7 + 8 * 2 + 4 * 4 + 1000);
	memset(&d, 0, sizeof(d));
	d.ref = 1;
	CHECK_EQ(lm__data_body_len(&d), 40 + 8 + 16);
	d.ref = 0;
	d.delta = 1;
	CHECK_EQ(lm__data_body_len(&d), 40 + 8 + 8);
	d.area = 1;
	d.payload = 4096;
	CHECK_EQ(lm__data_body_len(&d), 40 + 8 + 8 + 4 + 4096);
	d.delta = 0;
	d.area = 0;
	d.payload = 0;
	/* Without ref and delta pages the layout is version 2's. */
	d.normal = 2;
	d.zero = 3;
	d.payload = 8192;
	CHECK_EQ(lm__data_body_len(&d), 40 + 8 * 5 + 4 * 2 + 8192);
	d.zero = 0;
	d.ref = 0;
	d.normal = 1024;
	d.payload = 1024u * 65536u;
	CHECK_EQ(lm__data_body_len(&d), 40 + 12 * 1024 + 67108864);
	/* No 32-bit or 64-bit overflow with every count at its maximum. */
	d.normal = d.zero = d.ref = d.payload = 0xffffffffu;
	CHECK(lm__data_body_len(&d) == 40ull + 45ull * 0xffffffffull);
	CHECK(lm__data_body_len(&d) > 0xffffffffull);
	d.delta = 0xffff;
	d.area = 0xffffffffu;
	CHECK(lm__data_body_len(&d) == 40ull + 49ull * 0xffffffffull + 16ull * 0xffff);
	CHECK(lm__data_tables_len(&d) == lm__data_body_len(&d) - 40 - 0xffffffffull);
}

static void test_data_roundtrip(void)
{
	uint64_t rlen[256];
	lm__limits lim = {65536, 1024, 0, 0xffffffffu, 256, rlen, 0};
	data_vals d;

	for (int i = 0; i < 256; i++)
		rlen[i] = 1ull << 40;
	/* Every field at its largest valid value. */
	d = (data_vals){~0ull, 255, 0xffffffffu, 1024, 1024, 0, 0, 1024u * 65536u, 0, 0, 0};
	data_roundtrip(&d, &lim);
	d = (data_vals){~0ull, 255, 0xffffffffu, 1024, 0, 1024, 0, 0, 0, 0, 0};
	data_roundtrip(&d, &lim);
	d = (data_vals){~0ull, 255, 0xffffffffu, 1024, 512, 512, 0, 512u * 65536u, 0, 0, 0};
	data_roundtrip(&d, &lim);
	/* Smallest. */
	lim.round = 0;
	lim.page_size = 4096;
	lim.packet_pages = 1;
	lim.region_count = 1;
	d = (data_vals){0, 0, 0, 1, 1, 0, 0, 4096, 0, 0, 0};
	data_roundtrip(&d, &lim);
	d = (data_vals){0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0};
	data_roundtrip(&d, &lim);
	/* A payload below the bound passes the header check (per-page codecs);
	 * the length table decides (test_data_tables). */
	d = (data_vals){1, 0, 0, 1, 1, 0, 0, 100, 0x0000, 0, 0};
	data_roundtrip(&d, &lim);
	/* Ref and delta pages, once the session agreed them. */
	lim.features = LM_FEAT_REF | LM_FEAT_DELTA;
	d = (data_vals){2, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0};
	data_roundtrip(&d, &lim);
	lim.round = 5;
	d = (data_vals){3, 0, 5, 1, 0, 0, 0, 0, 0, 1, 0};   /* an empty delta: no area */
	data_roundtrip(&d, &lim);
	d = (data_vals){3, 0, 5, 1, 0, 0, 0, 4096, 0, 1, 1}; /* one area page */
	data_roundtrip(&d, &lim);
	lim.page_size = 65536;
	lim.packet_pages = 1024;
	lim.region_count = 256;
	lim.round = 0xffffffffu;
	d = (data_vals){~0ull, 255, 0xffffffffu, 1024, 0, 0, 1024, 0, 0, 0, 0};
	data_roundtrip(&d, &lim);
	/* delta is 16 bits: at most 1024 pages here, each area page at most
	 * one per delta page. */
	d = (data_vals){~0ull, 255, 0xffffffffu, 1024, 0, 0, 0, 1024u * 65536u, 0, 1024, 1024};
	data_roundtrip(&d, &lim);
	d = (data_vals){~0ull, 255, 0xffffffffu, 1024, 256, 256, 256, 300u * 65536u, 0, 256, 44};
	data_roundtrip(&d, &lim);
}

static void test_data_rejects(void)
{
	uint64_t rlen[3] = {1 << 20, 5000, 0};
	lm__limits lim = {4096, 128, 0, 3, 3, rlen, 0};
	data_vals good = {77, 1, 3, 2, 1, 1, 0, 4096, 0, 0, 0};
	uint8_t v[40], b[40];
	lm__data_hdr d;
	uint32_t bl = (uint32_t)doc_body_len(&good);

	doc_data_hdr(v, &good);
	ACCEPT(lm__dec_data_hdr(v, bl, &lim, &d, &E));

	REJECT(lm__dec_data_hdr(v, 39, &lim, &d, &E), LM_EFIELD, "data.length");
	REJECT(lm__dec_data_hdr(v, 0, &lim, &d, &E), LM_EFIELD, "data.length");
	/* Bytes 38..39 were data.reserved before ref and delta pages; they
	 * are data.delta now. A delta count that the pages do not add up to
	 * is a pages error, whatever the features. */
	for (int i = 38; i < 40; i++) {
		lm__limits l2 = lim;
		memcpy(b, v, 40);
		b[i] = 0x01;
		REJECT(lm__dec_data_hdr(b, bl, &lim, &d, &E), LM_EFIELD, "data.pages");
		l2.features = LM_FEAT_KNOWN;
		REJECT(lm__dec_data_hdr(b, bl, &l2, &d, &E), LM_EFIELD, "data.pages");
	}
#define MUT(field_off, size, value, code, name)                                         \
	do {                                                                            \
		memcpy(b, v, 40);                                                       \
		be(b + (field_off), (size), (value));                                   \
		REJECT(lm__dec_data_hdr(b, bl, &lim, &d, &E), code, name);              \
	} while (0)
	MUT(8, 4, 3, LM_EFIELD, "data.region");
	MUT(8, 4, 0xffffffffu, LM_EFIELD, "data.region");
	MUT(12, 4, 2, LM_EFIELD, "data.round");
	MUT(12, 4, 4, LM_EFIELD, "data.round");
	MUT(12, 4, 0, LM_EFIELD, "data.round");
	MUT(36, 2, 0x0100, LM_EFIELD, "data.codec_flags");
	MUT(36, 2, 0x8000, LM_EFIELD, "data.codec_flags");
	MUT(36, 2, 0xff00, LM_EFIELD, "data.codec_flags");
	MUT(36, 2, 0x0001, LM_ECODEC, "data.codec");
	MUT(36, 2, 0x00ff, LM_ECODEC, "data.codec");
#undef MUT
	ACCEPT(lm__dec_data_hdr(v, bl, &lim, &d, &E)); /* v itself is untouched */
	/* pages: 0, above packet_pages, and counts that do not add up. */
	{
		data_vals x = good;
		x.pages = 0;
		x.normal = 0;
		x.zero = 0;
		x.payload = 0;
		doc_data_hdr(b, &x);
		REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &lim, &d, &E), LM_EFIELD,
		       "data.pages");
		x = good;
		x.pages = 129;
		x.zero = 128;
		doc_data_hdr(b, &x);
		REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &lim, &d, &E), LM_EFIELD,
		       "data.pages");
		x = good;
		x.pages = 3;
		doc_data_hdr(b, &x);
		REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &lim, &d, &E), LM_EFIELD,
		       "data.pages");
		x = good;
		x.pages = 1;
		doc_data_hdr(b, &x);
		REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &lim, &d, &E), LM_EFIELD,
		       "data.pages");
		/* Sum overflowing 32 bits must not wrap to pages. */
		x = good;
		x.pages = 2;
		x.normal = 0;
		x.zero = 0xffffffffu;
		x.ref = 3;
		x.payload = 0;
		doc_data_hdr(b, &x);
		REJECT(lm__dec_data_hdr(b, 40, &lim, &d, &E), LM_EFIELD, "data.pages");
		/* ref pages: only when the session agreed REF (and only REF:
		 * DELTA or ROUND_ACK alone do not allow them). */
		{
			lm__limits l2 = lim;
			x = good;
			x.pages = 3;
			x.ref = 1;
			doc_data_hdr(b, &x);
			REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &lim, &d, &E),
			       LM_EFEATURE, "data.ref");
			l2.features = LM_FEAT_ROUND_ACK | LM_FEAT_DELTA;
			REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &l2, &d, &E),
			       LM_EFEATURE, "data.ref");
			l2.features = LM_FEAT_REF;
			ACCEPT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &l2, &d, &E));
			CHECK(d.ref == 1 && d.pages == 3 && d.area == 0);
			x.pages = 1;
			x.normal = 0;
			x.zero = 0;
			x.payload = 0;
			doc_data_hdr(b, &x);
			REJECT(lm__dec_data_hdr(b, 64, &lim, &d, &E), LM_EFEATURE, "data.ref");
			REJECT(lm__dec_data_hdr(b, 56, &lim, &d, &E), LM_EFEATURE, "data.ref");
			ACCEPT(lm__dec_data_hdr(b, 64, &l2, &d, &E));
			REJECT(lm__dec_data_hdr(b, 56, &l2, &d, &E), LM_EFIELD, "data.length");
			/* The same for delta pages and DELTA. */
			x = good;
			x.pages = 3;
			x.delta = 1;
			doc_data_hdr(b, &x);
			REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &lim, &d, &E),
			       LM_EFEATURE, "data.delta");
			l2.features = LM_FEAT_ROUND_ACK | LM_FEAT_REF;
			REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &l2, &d, &E),
			       LM_EFEATURE, "data.delta");
			l2.features = LM_FEAT_DELTA;
			ACCEPT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &l2, &d, &E));
			CHECK(d.delta == 1 && d.area == 0);
			x.area = 1;
			x.payload = 2 * 4096;
			doc_data_hdr(b, &x);
			ACCEPT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &l2, &d, &E));
			CHECK(d.delta == 1 && d.area == 1);
			/* Check order: the feature before codec_flags and the
			 * codec, and before the frame length. */
			x.codec_flags = 0x0100;
			doc_data_hdr(b, &x);
			REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &lim, &d, &E),
			       LM_EFEATURE, "data.delta");
			REJECT(lm__dec_data_hdr(b, 41, &lim, &d, &E), LM_EFEATURE, "data.delta");
			REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &l2, &d, &E),
			       LM_EFIELD, "data.codec_flags");
			x.codec_flags = 0x0002;
			doc_data_hdr(b, &x);
			REJECT(lm__dec_data_hdr(b, 41, &lim, &d, &E), LM_EFEATURE, "data.delta");
			REJECT(lm__dec_data_hdr(b, 41, &l2, &d, &E), LM_ECODEC, "data.codec");
			/* ... and after the pages sum. */
			x = good;
			x.delta = 1;
			doc_data_hdr(b, &x);
			REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &lim, &d, &E), LM_EFIELD,
			       "data.pages");
		}
		/* payload above the codec's bound for the normal pages. */
		x = good;
		x.payload = 4097;
		doc_data_hdr(b, &x);
		REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &lim, &d, &E), LM_EFIELD,
		       "data.payload");
		x = good;
		x.normal = 0;
		x.zero = 2;
		x.payload = 1;
		doc_data_hdr(b, &x);
		REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &lim, &d, &E), LM_EFIELD,
		       "data.payload");
		/* Mixed sessions (codec auto): any known codec, per packet;
		 * the payload bound is the packet's codec's. */
		{
			lm__limits l2 = lim;
			l2.codec = LM_CODEC_AUTO;
			l2.features = LM_FEAT_MIXED;
			for (uint16_t c = 0; c <= 4; c++) {
				x = good;
				x.codec_flags = c;
				doc_data_hdr(b, &x);
				ACCEPT(lm__dec_data_hdr(b, bl, &l2, &d, &E));
				CHECK_EQ(d.codec_flags, c);
			}
			static const uint16_t unknown[] = {5, 6, 7, 8, 0x7f, 0xfe, 0xff};
			for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
				x = good;
				x.codec_flags = unknown[i];
				doc_data_hdr(b, &x);
				REJECT(lm__dec_data_hdr(b, bl, &l2, &d, &E), LM_ECODEC, "data.codec");
				CHECK(strstr(E.msg, "unknown") != NULL);
			}
			x = good;
			x.codec_flags = 0x0102; /* flags still refused */
			doc_data_hdr(b, &x);
			REJECT(lm__dec_data_hdr(b, bl, &l2, &d, &E), LM_EFIELD, "data.codec_flags");
			x = good;
			x.payload = 4097; /* above none's bound for one page... */
			doc_data_hdr(b, &x);
			REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &l2, &d, &E),
			       LM_EFIELD, "data.payload");
			x.codec_flags = LM_CODEC_ZSTD; /* ...within zstd's */
			doc_data_hdr(b, &x);
			if (lm__codec_get(LM_CODEC_ZSTD))
				ACCEPT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x), &l2, &d, &E));
			/* A pinned codec takes itself and none only. */
			l2.codec = LM_CODEC_ZSTD;
			for (uint16_t c = 0; c <= 4; c++) {
				x = good;
				x.codec_flags = c;
				doc_data_hdr(b, &x);
				if (c == LM_CODEC_ZSTD || c == LM_CODEC_NONE)
					ACCEPT(lm__dec_data_hdr(b, bl, &l2, &d, &E));
				else
					REJECT(lm__dec_data_hdr(b, bl, &l2, &d, &E), LM_ECODEC,
					       "data.codec");
			}
		}
		/* The session codec's id, when no such codec exists. */
		{
			lm__limits l2 = lim;
			l2.codec = 7;
			x = good;
			x.codec_flags = 7;
			doc_data_hdr(b, &x);
			REJECT(lm__dec_data_hdr(b, bl, &l2, &d, &E), LM_ECODEC, "data.codec");
			x.codec_flags = 0; /* raw fallback is still allowed */
			doc_data_hdr(b, &x);
			ACCEPT(lm__dec_data_hdr(b, bl, &l2, &d, &E));
		}
	}
	/* The frame length must equal the formula. */
	REJECT(lm__dec_data_hdr(v, bl + 1, &lim, &d, &E), LM_EFIELD, "data.length");
	REJECT(lm__dec_data_hdr(v, bl - 1, &lim, &d, &E), LM_EFIELD, "data.length");
	REJECT(lm__dec_data_hdr(v, 40, &lim, &d, &E), LM_EFIELD, "data.length");
	REJECT(lm__dec_data_hdr(v, 0xffffffffu, &lim, &d, &E), LM_EFIELD, "data.length");
}

/* Tables: (normal + zero) x be64 offsets, then normal x be32 lengths. */
static void test_data_tables(void)
{
	uint64_t rlen[3] = {1 << 20, 5000, 0};
	lm__limits lim = {4096, 128, 0, 0, 3, rlen, 0};
	lm__data_hdr d;
	uint8_t t[3 * 8 + 2 * 4];
	uint64_t off[3];
	uint32_t plen[3];

	/* Region 0: normal at 0x1000 and 0xff000 (the last page), zero at 0. */
	memset(&d, 0, sizeof(d));
	d.region = 0;
	d.pages = 3;
	d.normal = 2;
	d.zero = 1;
	d.payload = 8192;
	be(t + 0, 8, 0x1000);
	be(t + 8, 8, 0xff000);
	be(t + 16, 8, 0);
	be(t + 24, 4, 4096);
	be(t + 28, 4, 4096);
	ACCEPT(lm__dec_data_tables(t, &d, &lim, off, plen, &E));
	CHECK(off[0] == 0x1000 && off[1] == 0xff000 && off[2] == 0);
	CHECK(plen[0] == 4096 && plen[1] == 4096);

#define TMUT(pos, size, value, code, name)                                              \
	do {                                                                            \
		uint8_t c_[sizeof(t)];                                                  \
		memcpy(c_, t, sizeof(t));                                               \
		be(c_ + (pos), (size), (value));                                        \
		REJECT(lm__dec_data_tables(c_, &d, &lim, off, plen, &E), code, name);   \
	} while (0)
	TMUT(0, 8, 0x1001, LM_EFIELD, "data.offset[0]");
	TMUT(0, 8, 0x800, LM_EFIELD, "data.offset[0]");
	TMUT(8, 8, 1 << 20, LM_EFIELD, "data.offset[1]");      /* == region length */
	TMUT(8, 8, 0x7ffffffffffff000ull, LM_EFIELD, "data.offset[1]");
	TMUT(8, 8, ~0ull, LM_EFIELD, "data.offset[1]");
	TMUT(16, 8, 0x4, LM_EFIELD, "data.offset[2]");          /* a zero page's offset */
	TMUT(16, 8, 1 << 21, LM_EFIELD, "data.offset[2]");
	TMUT(24, 4, 0, LM_EFIELD, "data.length[0]");
	TMUT(24, 4, 4097, LM_EFIELD, "data.length[0]");
	TMUT(28, 4, 0xffffffffu, LM_EFIELD, "data.length[1]");
	TMUT(28, 4, 4095, LM_EFIELD, "data.length[1]");         /* codec none: page_size */
	TMUT(24, 4, 1, LM_EFIELD, "data.length[0]");
#undef TMUT
	/* payload must be the sum of the lengths (per-page codecs, none included). */
	d.payload = 8191;
	REJECT(lm__dec_data_tables(t, &d, &lim, off, plen, &E), LM_EFIELD, "data.payload");
	d.payload = 8192;

	/* Partial last page: region 1 is 5000 bytes, pages at 0 and 4096. */
	memset(&d, 0, sizeof(d));
	d.region = 1;
	d.pages = 2;
	d.normal = 1;
	d.zero = 1;
	d.payload = 4096;
	be(t + 0, 8, 4096);
	be(t + 8, 8, 0);
	be(t + 16, 4, 4096);
	ACCEPT(lm__dec_data_tables(t, &d, &lim, off, plen, &E));
	be(t + 0, 8, 8192);
	REJECT(lm__dec_data_tables(t, &d, &lim, off, plen, &E), LM_EFIELD, "data.offset[0]");
	be(t + 0, 8, 4096);
	be(t + 8, 8, 8192);
	REJECT(lm__dec_data_tables(t, &d, &lim, off, plen, &E), LM_EFIELD, "data.offset[1]");

	/* An empty region has no pages at all. */
	memset(&d, 0, sizeof(d));
	d.region = 2;
	d.pages = 1;
	d.zero = 1;
	be(t + 0, 8, 0);
	REJECT(lm__dec_data_tables(t, &d, &lim, off, plen, &E), LM_EFIELD, "data.offset[0]");
}

/* The delta area's page count is not a field: the frame length gives it
 * (section 6), 4 bytes of length table per area page, 1..delta of them. */
static void test_data_area(void)
{
	uint64_t rlen[1] = {1 << 20};
	lm__limits lim = {4096, 128, 0, 2, 1, rlen, LM_FEAT_REF | LM_FEAT_DELTA};
	data_vals x = {9, 0, 2, 4, 1, 0, 0, 4096, 0, 3, 0};
	uint8_t b[40];
	lm__data_hdr d;
	uint32_t base = (uint32_t)doc_body_len(&x); /* area 0 */

	doc_data_hdr(b, &x);
	ACCEPT(lm__dec_data_hdr(b, base, &lim, &d, &E));
	CHECK_EQ(d.area, 0);
	/* payload counts the area's bytes too: raise it with the area so the
	 * formula holds; the header alone cannot tell the two apart, the
	 * length table and the delta table do. */
	for (uint32_t k = 1; k <= 3; k++) {
		ACCEPT(lm__dec_data_hdr(b, base + 4 * k, &lim, &d, &E));
		CHECK_EQ(d.area, k);
		CHECK(lm__data_body_len(&d) == base + 4ull * k);
	}
	/* More area pages than delta pages, or a length that is not a whole
	 * number of length entries. */
	REJECT(lm__dec_data_hdr(b, base + 16, &lim, &d, &E), LM_EFIELD, "data.length");
	REJECT(lm__dec_data_hdr(b, base + 4 * 1000, &lim, &d, &E), LM_EFIELD, "data.length");
	for (uint32_t k = 1; k < 4; k++)
		REJECT(lm__dec_data_hdr(b, base + k, &lim, &d, &E), LM_EFIELD, "data.length");
	REJECT(lm__dec_data_hdr(b, base + 6, &lim, &d, &E), LM_EFIELD, "data.length");
	REJECT(lm__dec_data_hdr(b, base - 4, &lim, &d, &E), LM_EFIELD, "data.length");
	REJECT(lm__dec_data_hdr(b, 0xfffffffcu, &lim, &d, &E), LM_EFIELD, "data.length");
	/* Without delta pages there is no area. */
	x.delta = 0;
	x.pages = 1;
	doc_data_hdr(b, &x);
	base = (uint32_t)doc_body_len(&x);
	ACCEPT(lm__dec_data_hdr(b, base, &lim, &d, &E));
	REJECT(lm__dec_data_hdr(b, base + 4, &lim, &d, &E), LM_EFIELD, "data.length");
	/* The payload bound counts the area's pages (codec none: n x page_size). */
	x = (data_vals){9, 0, 2, 2, 1, 0, 0, 3 * 4096, 0, 1, 0};
	doc_data_hdr(b, &x);
	REJECT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x) + 4, &lim, &d, &E), LM_EFIELD,
	       "data.payload");
	x.payload = 2 * 4096;
	doc_data_hdr(b, &x);
	ACCEPT(lm__dec_data_hdr(b, (uint32_t)doc_body_len(&x) + 4, &lim, &d, &E));
	CHECK_EQ(d.area, 1);
	/* The length table then has normal + area entries. */
	{
		uint8_t t[2 * 8 + 8 + 2 * 4];
		uint64_t off[2];
		uint32_t plen[2];
		lm__delta dl[1];
		be(t + 0, 8, 0x1000);
		be(t + 8, 8, 0x2000);
		be(t + 16, 4, 0);       /* base_round */
		be(t + 20, 4, 10);      /* len */
		be(t + 24, 4, 4096);    /* length[0]: the normal page */
		be(t + 28, 4, 4096);    /* length[1]: the area's page */
		CHECK_EQ(lm__data_tables_len(&d), sizeof(t));
		ACCEPT(lm__dec_data_tables(t, &d, &lim, off, plen, &E));
		CHECK(plen[0] == 4096 && plen[1] == 4096);
		ACCEPT(lm__dec_data_kinds(t, &d, &lim, off, NULL, dl, &E));
		CHECK(dl[0].base_round == 0 && dl[0].len == 10);
		be(t + 28, 4, 4095);
		REJECT(lm__dec_data_tables(t, &d, &lim, off, plen, &E), LM_EFIELD, "data.length[1]");
		be(t + 28, 4, 0);
		REJECT(lm__dec_data_tables(t, &d, &lim, off, plen, &E), LM_EFIELD, "data.length[1]");
	}
}

/* Ref and delta tables (section 6, "Ref and delta pages"): every rule the
 * wire decoder can check alone, one mutation at a time from a valid packet.
 * Region 0 and 3: 1 MiB; region 1: 5000 bytes (a partial last page);
 * region 2: empty. The packet (round 3, region 0): normal 0x1000, zero
 * 0x2000, refs at 0x3000 and 0x4000, deltas at 0x5000 and 0x6000. */
static void test_data_kinds(void)
{
	uint64_t rlen[4] = {1 << 20, 5000, 0, 1 << 20};
	lm__limits lim = {4096, 128, 0, 3, 4, rlen, LM_FEAT_REF | LM_FEAT_DELTA};
	enum { NOFF = 6, REFS = NOFF * 8, DELTAS = REFS + 2 * 16, LENS = DELTAS + 2 * 8,
	       TLEN = LENS + 3 * 4 };
	uint8_t t[TLEN], c[TLEN];
	static const uint64_t offs[NOFF] = {0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000};
	lm__data_hdr d;
	uint64_t off[NOFF];
	uint32_t plen[3];
	lm__ref refs[2];
	lm__delta deltas[2];

	memset(&d, 0, sizeof(d));
	d.round = 3;
	d.pages = NOFF;
	d.normal = 1;
	d.zero = 1;
	d.ref = 2;
	d.delta = 2;
	d.area = 2;
	d.payload = 3 * 4096;
	CHECK_EQ(lm__data_tables_len(&d), TLEN);
	for (int i = 0; i < NOFF; i++)
		be(t + 8 * i, 8, offs[i]);
	be(t + REFS + 0, 4, 0);       /* ref[0]: region 0, this round, 0x1000 */
	be(t + REFS + 4, 4, 3);
	be(t + REFS + 8, 8, 0x1000);
	be(t + REFS + 16, 4, 1);      /* ref[1]: region 1, round 0, offset 0 */
	be(t + REFS + 20, 4, 0);
	be(t + REFS + 24, 8, 0);
	be(t + DELTAS + 0, 4, 2);     /* delta[0]: base round 2, 100 bytes */
	be(t + DELTAS + 4, 4, 100);
	be(t + DELTAS + 8, 4, 0);     /* delta[1]: base round 0, 4000 bytes */
	be(t + DELTAS + 12, 4, 4000);
	for (int i = 0; i < 3; i++)
		be(t + LENS + 4 * i, 4, 4096);
	ACCEPT(lm__dec_data_tables(t, &d, &lim, off, plen, &E));
	ACCEPT(lm__dec_data_kinds(t, &d, &lim, off, refs, deltas, &E));
	CHECK(refs[0].src_region == 0 && refs[0].src_round == 3 && refs[0].src_offset == 0x1000);
	CHECK(refs[1].src_region == 1 && refs[1].src_round == 0 && refs[1].src_offset == 0);
	CHECK(deltas[0].base_round == 2 && deltas[0].len == 100);
	CHECK(deltas[1].base_round == 0 && deltas[1].len == 4000);

#define KMUT(pos, size, value, name)                                                    \
	do {                                                                            \
		memcpy(c, t, sizeof(t));                                                \
		be(c + (pos), (size), (value));                                         \
		ACCEPT(lm__dec_data_tables(c, &d, &lim, off, plen, &E));                \
		REJECT(lm__dec_data_kinds(c, &d, &lim, off, refs, deltas, &E), LM_EFIELD, name); \
	} while (0)
#define KOK(pos, size, value)                                                           \
	do {                                                                            \
		memcpy(c, t, sizeof(t));                                                \
		be(c + (pos), (size), (value));                                         \
		ACCEPT(lm__dec_data_tables(c, &d, &lim, off, plen, &E));                \
		ACCEPT(lm__dec_data_kinds(c, &d, &lim, off, refs, deltas, &E));         \
	} while (0)
	/* src_region: < region_count. */
	KMUT(REFS + 0, 4, 4, "data.ref[0].src_region");
	KMUT(REFS + 16, 4, 0xffffffffu, "data.ref[1].src_region");
	KOK(REFS + 0, 4, 3);
	/* src_round: at most the packet's round. */
	KMUT(REFS + 4, 4, 4, "data.ref[0].src_round");
	KMUT(REFS + 20, 4, 0xffffffffu, "data.ref[1].src_round");
	KOK(REFS + 4, 4, 0);
	/* src_offset: page-aligned, inside the source region. */
	KMUT(REFS + 8, 8, 0x1001, "data.ref[0].src_offset");
	KMUT(REFS + 8, 8, 0x800, "data.ref[0].src_offset");
	KMUT(REFS + 8, 8, 1 << 20, "data.ref[0].src_offset");
	KMUT(REFS + 8, 8, ~0ull, "data.ref[0].src_offset");
	KMUT(REFS + 8, 8, 0x8000000000000000ull, "data.ref[0].src_offset");
	KOK(REFS + 8, 8, 0xff000);
	KMUT(REFS + 24, 8, 8192, "data.ref[1].src_offset"); /* past region 1 */
	memcpy(c, t, sizeof(t));
	be(c + REFS + 16, 4, 2); /* the empty region has no page */
	REJECT(lm__dec_data_kinds(c, &d, &lim, off, refs, deltas, &E), LM_EFIELD,
	       "data.ref[1].src_offset");
	/* A ref to its own page; the same offset in another region is not. */
	KMUT(REFS + 8, 8, 0x3000, "data.ref[0] is the page at offset 0x3000 itself");
	memcpy(c, t, sizeof(t));
	be(c + REFS + 16, 4, 0);
	be(c + REFS + 24, 8, 0x4000);
	REJECT(lm__dec_data_kinds(c, &d, &lim, off, refs, deltas, &E), LM_EFIELD,
	       "data.ref[1] is the page at offset 0x4000 itself");
	be(c + REFS + 16, 4, 3);
	ACCEPT(lm__dec_data_kinds(c, &d, &lim, off, refs, deltas, &E));
	/* Another page of the same packet, even another ref page, passes the
	 * wire check: the receiver decides (test_refs). */
	KOK(REFS + 8, 8, 0x4000);
	KOK(REFS + 8, 8, 0x6000);
	/* A region's partial last page is never a ref's source... */
	KMUT(REFS + 24, 8, 4096, "data.ref[1]: a region's partial last page");
	/* base_round: before the packet's round. */
	KMUT(DELTAS + 0, 4, 3, "data.delta[0].base_round");
	KMUT(DELTAS + 8, 4, 4, "data.delta[1].base_round");
	KMUT(DELTAS + 8, 4, 0xffffffffu, "data.delta[1].base_round");
	/* len: below the page size. */
	KMUT(DELTAS + 12, 4, 4096, "data.delta[1].len");
	KMUT(DELTAS + 12, 4, 0xffffffffu, "data.delta[1].len");
	KOK(DELTAS + 12, 4, 4095);                                 /* 4195 bytes: 2 pages */
	/* 4000 + 0 bytes need 1 area page, not the table's 2. */
	KMUT(DELTAS + 4, 4, 0, "data.delta: encodings of 4000 bytes need 1 area pages, the length table has 2");
	memcpy(c, t, sizeof(t));
	be(c + DELTAS + 4, 4, 0);
	be(c + DELTAS + 12, 4, 4096 - 1 - 100 + 100); /* 4095 + 0: one page */
	REJECT(lm__dec_data_kinds(c, &d, &lim, off, refs, deltas, &E), LM_EFIELD, "data.delta: encodings of 4095 bytes need 1 area pages, the length table has 2");
	KMUT(DELTAS + 12, 4, 3996, "data.delta: encodings of 4096 bytes need 1 area pages");
	KOK(DELTAS + 12, 4, 3997);                                 /* 4097: 2 pages */
	memcpy(c, t, sizeof(t));
	be(c + DELTAS + 4, 4, 0);
	be(c + DELTAS + 12, 4, 0);
	REJECT(lm__dec_data_kinds(c, &d, &lim, off, refs, deltas, &E), LM_EFIELD,
	       "data.delta: encodings of 0 bytes need 0 area pages");
	/* Entries are checked in order: the first bad one is named. */
	memcpy(c, t, sizeof(t));
	be(c + REFS + 16, 4, 9);
	be(c + DELTAS + 0, 4, 9);
	REJECT(lm__dec_data_kinds(c, &d, &lim, off, refs, deltas, &E), LM_EFIELD,
	       "data.ref[1].src_region");
	be(c + REFS + 16, 4, 1);
	REJECT(lm__dec_data_kinds(c, &d, &lim, off, refs, deltas, &E), LM_EFIELD,
	       "data.delta[0].base_round");
#undef KMUT
#undef KOK

	/* ...nor a ref or delta page itself: region 1, its partial page 4096
	 * as a ref, then as a delta. */
	{
		uint8_t u[8 + 16];
		lm__data_hdr r1;
		uint64_t o[1];
		memset(&r1, 0, sizeof(r1));
		r1.region = 1;
		r1.round = 3;
		r1.pages = r1.ref = 1;
		be(u, 8, 4096);
		be(u + 8, 4, 0);
		be(u + 12, 4, 1);
		be(u + 16, 8, 0x1000);
		ACCEPT(lm__dec_data_tables(u, &r1, &lim, o, plen, &E));
		REJECT(lm__dec_data_kinds(u, &r1, &lim, o, refs, deltas, &E), LM_EFIELD,
		       "data.ref[0]: a region's partial last page");
		be(u, 8, 0);
		ACCEPT(lm__dec_data_tables(u, &r1, &lim, o, plen, &E));
		ACCEPT(lm__dec_data_kinds(u, &r1, &lim, o, refs, deltas, &E)); /* page 0 is whole */
		r1.ref = 0;
		r1.delta = 1;
		be(u, 8, 4096);
		be(u + 8, 4, 0);
		be(u + 12, 4, 0);
		ACCEPT(lm__dec_data_tables(u, &r1, &lim, o, plen, &E));
		REJECT(lm__dec_data_kinds(u, &r1, &lim, o, refs, deltas, &E), LM_EFIELD,
		       "data.delta[0]: a region's partial last page");
		be(u, 8, 0);
		ACCEPT(lm__dec_data_tables(u, &r1, &lim, o, plen, &E));
		ACCEPT(lm__dec_data_kinds(u, &r1, &lim, o, refs, deltas, &E));
	}
	/* Round 0: no delta can have a base, and a ref only this round. */
	{
		uint8_t u[8 + 8];
		lm__data_hdr r0;
		uint64_t o[1];
		memset(&r0, 0, sizeof(r0));
		r0.pages = r0.delta = 1;
		be(u, 8, 0);
		be(u + 8, 4, 0);
		be(u + 12, 4, 0);
		lim.round = 0;
		ACCEPT(lm__dec_data_tables(u, &r0, &lim, o, plen, &E));
		REJECT(lm__dec_data_kinds(u, &r0, &lim, o, refs, deltas, &E), LM_EFIELD,
		       "data.delta[0].base_round 0 not before the packet's round 0");
	}
}

/* ---- SYNC ---------------------------------------------------------------------- */

static void test_sync(void)
{
	static const struct {
		uint32_t round;
		uint64_t packets;
	} cases[] = {{0, 0}, {1, 12345}, {0xffffffffu, ~0ull}};
	uint8_t got[28], want[28], b[16];
	lm__sync s, out;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s.round = cases[i].round;
		s.packets = cases[i].packets;
		CHECK_EQ(lm__enc_sync(got, &s), 28);
		doc_header(want, LM_KIND_SYNC, 16);
		be(want + 12 + 0, 4, cases[i].round);
		be(want + 12 + 4, 4, 0);
		be(want + 12 + 8, 8, cases[i].packets);
		CHECK(same_bytes(got, want, 28, "sync"));
		memset(&out, 0x5a, sizeof(out));
		ACCEPT(lm__dec_sync(got + 12, 16, &out, &E));
		CHECK_EQ(out.round, cases[i].round);
		CHECK(out.packets == cases[i].packets);
	}
	REJECT(lm__dec_sync(want + 12, 15, &out, &E), LM_EFIELD, "sync.length");
	REJECT(lm__dec_sync(want + 12, 17, &out, &E), LM_EFIELD, "sync.length");
	REJECT(lm__dec_sync(want + 12, 0, &out, &E), LM_EFIELD, "sync.length");
	for (int i = 4; i < 8; i++) {
		memcpy(b, want + 12, 16);
		b[i] = 0x40;
		REJECT(lm__dec_sync(b, 16, &out, &E), LM_EFIELD, "sync.reserved");
	}
}

/* ---- COMPLETE ------------------------------------------------------------------- */

static void test_complete(void)
{
	static lm__region_sum sums[256], out[256];
	static uint8_t got[12 + 8 + 24 * 256], want[12 + 8 + 24 * 256];
	uint8_t b[8 + 24 * 2];
	uint32_t n;

	CHECK_EQ(lm__complete_bound(0), 20);
	CHECK_EQ(lm__complete_bound(2), 20 + 48);
	CHECK_EQ(lm__complete_bound(256), 12 + 6152);

	/* 0, 1, 2 and 256 entries, values at their limits. */
	static const uint32_t counts[] = {0, 1, 2, 256};
	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		uint32_t cnt = counts[c];
		size_t len = 8 + 24 * (size_t)cnt;
		for (uint32_t i = 0; i < cnt; i++) {
			sums[i].id = i == 1 ? 0xffffffffu : i;
			sums[i].len = i == 0 ? 0 : 0x7fffffffffffffffull - i;
			sums[i].checksum = i == 0 ? ~0ull : 0x0123456789abcdefull * (i + 1);
		}
		CHECK_EQ(lm__enc_complete(got, sums, cnt), 12 + len);
		doc_header(want, LM_KIND_COMPLETE, (uint32_t)len);
		be(want + 12, 4, cnt);
		be(want + 16, 4, 0);
		for (uint32_t i = 0; i < cnt; i++) {
			uint8_t *q = want + 12 + 8 + 24 * i;
			be(q + 0, 4, sums[i].id);
			be(q + 4, 4, 0);
			be(q + 8, 8, sums[i].len);
			be(q + 16, 8, sums[i].checksum);
		}
		CHECK(same_bytes(got, want, 12 + len, "complete"));
		n = 12345;
		ACCEPT(lm__dec_complete(got + 12, (uint32_t)len, out, 256, &n, &E));
		CHECK_EQ(n, cnt);
		int same = 1;
		for (uint32_t i = 0; i < cnt; i++)
			same &= out[i].id == sums[i].id && out[i].len == sums[i].len &&
				out[i].checksum == sums[i].checksum;
		CHECK(same);
		/* cap = count is enough. */
		ACCEPT(lm__dec_complete(got + 12, (uint32_t)len, out, cnt, &n, &E));
	}

	/* Rejections from a valid 2-entry body. */
	for (uint32_t i = 0; i < 2; i++) {
		sums[i].id = i;
		sums[i].len = 4096;
		sums[i].checksum = 0x1111111111111111ull;
	}
	lm__enc_complete(got, sums, 2);
	memcpy(b, got + 12, sizeof(b));
	ACCEPT(lm__dec_complete(b, 56, out, 2, &n, &E));
	REJECT(lm__dec_complete(b, 7, out, 2, &n, &E), LM_EFIELD, "complete.length");
	REJECT(lm__dec_complete(b, 0, out, 2, &n, &E), LM_EFIELD, "complete.length");
	REJECT(lm__dec_complete(b, 55, out, 2, &n, &E), LM_EFIELD, "complete.length");
	REJECT(lm__dec_complete(b, 32, out, 2, &n, &E), LM_EFIELD, "complete.length");
	REJECT(lm__dec_complete(b, 8, out, 2, &n, &E), LM_EFIELD, "complete.length");
	for (int i = 4; i < 8; i++) {
		uint8_t c[sizeof(b)];
		memcpy(c, b, sizeof(b));
		c[i] = 2;
		REJECT(lm__dec_complete(c, 56, out, 2, &n, &E), LM_EFIELD, "complete.reserved");
	}
	REJECT(lm__dec_complete(b, 56, out, 1, &n, &E), LM_EFIELD, "complete.regions");
	REJECT(lm__dec_complete(b, 56, out, 0, &n, &E), LM_EFIELD, "complete.regions");
	{
		uint8_t c[sizeof(b)];
		memcpy(c, b, sizeof(b));
		be(c, 4, 0xffffffffu);
		REJECT(lm__dec_complete(c, 56, out, 256, &n, &E), LM_EFIELD, "complete.regions");
		memcpy(c, b, sizeof(b));
		be(c, 4, 3); /* count within cap but the length says 2 */
		REJECT(lm__dec_complete(c, 56, out, 256, &n, &E), LM_EFIELD, "complete.length");
	}
	static const int entry_reserved[] = {8 + 4, 8 + 7, 8 + 24 + 4, 8 + 24 + 7};
	for (size_t i = 0; i < sizeof(entry_reserved) / sizeof(entry_reserved[0]); i++) {
		uint8_t c[sizeof(b)];
		memcpy(c, b, sizeof(b));
		c[entry_reserved[i]] = 0x80;
		REJECT(lm__dec_complete(c, 56, out, 2, &n, &E), LM_EFIELD, "complete.entry.reserved");
	}
}

/* ---- FEEDBACK ------------------------------------------------------------------ */

static void test_feedback(void)
{
	uint8_t got[LM_FRAME_HDR + LM_FEEDBACK_LEN], want[sizeof(got)], b[LM_FEEDBACK_LEN];
	lm__feedback f, out;

	memset(&f, 0, sizeof(f));
	f.round = 7;
	f.cpu_ns = 0x0102030405060708ull;
	f.wall_ns = ~0ull;
	for (uint32_t i = 0; i < LM_FEEDBACK_CODECS; i++) {
		f.codec[i].pages = 1000u + i;
		f.codec[i].ns = (uint64_t)i << 40;
	}
	CHECK_EQ(lm__enc_feedback(got, &f), LM_FRAME_HDR + LM_FEEDBACK_LEN);
	doc_header(want, LM_KIND_FEEDBACK, LM_FEEDBACK_LEN);
	be(want + 12, 4, 7);
	be(want + 16, 4, 0);
	be(want + 20, 8, f.cpu_ns);
	be(want + 28, 8, f.wall_ns);
	for (uint32_t i = 0; i < LM_FEEDBACK_CODECS; i++) {
		be(want + 36 + 16 * i, 8, 1000u + i);
		be(want + 44 + 16 * i, 8, (uint64_t)i << 40);
	}
	CHECK(same_bytes(got, want, sizeof(got), "feedback"));
	memset(&out, 0x5a, sizeof(out));
	ACCEPT(lm__dec_feedback(got + 12, LM_FEEDBACK_LEN, &out, &E));
	CHECK(out.round == 7 && out.cpu_ns == f.cpu_ns && out.wall_ns == f.wall_ns);
	for (uint32_t i = 0; i < LM_FEEDBACK_CODECS; i++)
		CHECK(out.codec[i].pages == f.codec[i].pages && out.codec[i].ns == f.codec[i].ns);
	REJECT(lm__dec_feedback(got + 12, LM_FEEDBACK_LEN - 1, &out, &E), LM_EFIELD,
	       "feedback.length");
	REJECT(lm__dec_feedback(got + 12, LM_FEEDBACK_LEN + 1, &out, &E), LM_EFIELD,
	       "feedback.length");
	for (int i = 4; i < 8; i++) {
		memcpy(b, got + 12, sizeof(b));
		b[i] = 1;
		REJECT(lm__dec_feedback(b, sizeof(b), &out, &E), LM_EFIELD, "feedback.reserved");
	}
}

/* ---- ACK ----------------------------------------------------------------------- */

static void test_ack(void)
{
	static const uint8_t kinds[] = {LM_KIND_HELLO, LM_KIND_SYNC, LM_KIND_COMPLETE};
	static const uint64_t feats[] = {0, 1, ~0ull};
	uint8_t got[44], want[44], v[32], b[32];
	lm__ack a, out;

	for (size_t k = 0; k < 3; k++) {
		for (size_t f = 0; f < 3; f++) {
			memset(&a, 0, sizeof(a));
			a.kind = kinds[k];
			a.status = 0;
			a.features = feats[f];
			memcpy(a.session, doc_session, 16);
			CHECK_EQ(lm__enc_ack(got, &a), 44);
			doc_header(want, LM_KIND_ACK, 32);
			memset(want + 12, 0xA5, 32);
			want[12 + 0] = kinds[k];
			be(want + 12 + 1, 3, 0);
			be(want + 12 + 4, 4, 0);
			be(want + 12 + 8, 8, feats[f]);
			memcpy(want + 12 + 16, doc_session, 16);
			CHECK(same_bytes(got, want, 44, "ack"));
			memset(&out, 0x5a, sizeof(out));
			ACCEPT(lm__dec_ack(got + 12, 32, &out, &E));
			CHECK_EQ(out.kind, kinds[k]);
			CHECK_EQ(out.status, 0);
			CHECK(out.features == feats[f]);
			CHECK(memcmp(out.session, doc_session, 16) == 0);
		}
	}
	memcpy(v, want + 12, 32); /* ACK(COMPLETE), features ~0 */
	REJECT(lm__dec_ack(v, 31, &out, &E), LM_EFIELD, "ack.length");
	REJECT(lm__dec_ack(v, 33, &out, &E), LM_EFIELD, "ack.length");
	for (int i = 1; i < 4; i++) {
		memcpy(b, v, 32);
		b[i] = 1;
		REJECT(lm__dec_ack(b, 32, &out, &E), LM_EFIELD, "ack.reserved");
	}
	static const uint8_t bad_kinds[] = {0, 2, 3, 6, 7, 8, 255};
	for (size_t i = 0; i < sizeof(bad_kinds); i++) {
		memcpy(b, v, 32);
		b[0] = bad_kinds[i];
		REJECT(lm__dec_ack(b, 32, &out, &E), LM_EFIELD, "ack.kind");
	}
	static const uint32_t bad_status[] = {1, 0xffffffffu, (uint32_t)LM_ECHECKSUM, 0x80000000u};
	for (size_t i = 0; i < sizeof(bad_status) / sizeof(bad_status[0]); i++) {
		memcpy(b, v, 32);
		be(b + 4, 4, bad_status[i]);
		REJECT(lm__dec_ack(b, 32, &out, &E), LM_EFIELD, "ack.status");
	}
}

/* ---- ERROR --------------------------------------------------------------------- */

static void test_error(void)
{
	static char big[1500];
	static uint8_t got[12 + 12 + 1024 + 16], want[12 + 12 + 1024];
	lm__error_msg m;
	size_t n;

	/* Layout and round trip. */
	static const struct {
		int32_t code;
		uint16_t channel;
		const char *msg;
	} cases[] = {
		{LM_ECHECKSUM, 0, "region ram: checksum 0x1, sender's 0x2"},
		{LM_ESESSION, 63, "hello.session belongs to another migration: refused"},
		{-104, 0xffff, ""},
		{-5000, 1, "x"},
		{-1, 2, "y"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t ml = strlen(cases[i].msg);
		n = lm__enc_error(got, cases[i].code, cases[i].channel, cases[i].msg);
		CHECK_EQ(n, 24 + ml);
		doc_header(want, LM_KIND_ERROR, (uint32_t)(12 + ml));
		be(want + 12 + 0, 4, (uint32_t)cases[i].code);
		be(want + 12 + 4, 2, cases[i].channel);
		be(want + 12 + 6, 2, 0);
		be(want + 12 + 8, 2, ml);
		be(want + 12 + 10, 2, 0);
		memcpy(want + 24, cases[i].msg, ml);
		CHECK(same_bytes(got, want, n, "error"));
		memset(&m, 0x5a, sizeof(m));
		ACCEPT(lm__dec_error(got + 12, (uint32_t)(12 + ml), &m, &E));
		CHECK_EQ(m.code, cases[i].code);
		CHECK_EQ(m.channel, cases[i].channel);
		CHECK_EQ(m.msg_len, ml);
		CHECK(strcmp(m.msg, cases[i].msg) == 0);
	}
	/* 1024 bytes exactly; longer messages are truncated by the encoder. */
	memset(big, 'e', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	n = lm__enc_error(got, LM_EFIELD, 5, big);
	CHECK_EQ(n, 12 + 12 + 1024);
	CHECK_EQ(lm__get32(got + 8), 1036);
	CHECK_EQ(lm__get16(got + 12 + 8), 1024);
	ACCEPT(lm__dec_error(got + 12, 1036, &m, &E));
	CHECK_EQ(m.msg_len, 1024);
	CHECK_EQ(strlen(m.msg), 1024);
	big[1024] = 0;
	CHECK_EQ(lm__enc_error(got, LM_EFIELD, 5, big), 1048);

	/* Codes outside -5000..-1 read as LM_EPEER. */
	static const uint32_t odd_codes[] = {0, 1, 0x7fffffffu, 0x80000000u, (uint32_t)-5001};
	for (size_t i = 0; i < sizeof(odd_codes) / sizeof(odd_codes[0]); i++) {
		lm__enc_error(got, 0, 0, "m");
		be(got + 12, 4, odd_codes[i]);
		ACCEPT(lm__dec_error(got + 12, 13, &m, &E));
		CHECK_EQ(m.code, LM_EPEER);
	}
	/* Control characters, DEL, backslash, NUL and bytes above 0x7e are
	 * kept only escaped: a peer cannot print a line or a terminal control. */
	lm__enc_error(got, LM_EFIELD, 0, "a\nb\x7f" "c\x01\\\x1b[2J\xc3"); /* 12 bytes */
	ACCEPT(lm__dec_error(got + 12, 12 + 12, &m, &E));
	CHECK(strcmp(m.msg, "a\\x0ab\\x7fc\\x01\\x5c\\x1b[2J\\xc3") == 0);
	CHECK_EQ(m.msg_len, 12);
	lm__enc_error(got, LM_EFIELD, 0, "abc");
	got[12 + 12 + 1] = 0;
	ACCEPT(lm__dec_error(got + 12, 15, &m, &E));
	CHECK(strcmp(m.msg, "a\\x00c") == 0);
	/* 1024 control bytes: escaped in full (4 x 1024 fits the buffer). */
	memset(big, '\n', 1024);
	big[1024] = 0;
	lm__enc_error(got, LM_EFIELD, 0, big);
	ACCEPT(lm__dec_error(got + 12, 1036, &m, &E));
	CHECK_EQ(strlen(m.msg), 4096);
	CHECK(strchr(m.msg, '\n') == NULL);

	/* Rejections. */
	lm__enc_error(got, LM_EFIELD, 0, "abc");
	REJECT(lm__dec_error(got + 12, 11, &m, &E), LM_EFIELD, "error.length");
	REJECT(lm__dec_error(got + 12, 0, &m, &E), LM_EFIELD, "error.length");
	REJECT(lm__dec_error(got + 12, 1037, &m, &E), LM_EFIELD, "error.length");
	REJECT(lm__dec_error(got + 12, 14, &m, &E), LM_EFIELD, "error.msg_len");
	REJECT(lm__dec_error(got + 12, 16, &m, &E), LM_EFIELD, "error.msg_len");
	be(got + 12 + 8, 2, 0xffff);
	REJECT(lm__dec_error(got + 12, 15, &m, &E), LM_EFIELD, "error.msg_len");

	/* Reserved fields of ERROR must be zero, like every other kind's. */
	lm__enc_error(got, LM_EFIELD, 0, "abc");
	be(got + 12 + 6, 2, 0xbeef);
	REJECT(lm__dec_error(got + 12, 15, &m, &E), LM_EFIELD, "error.reserved");
	lm__enc_error(got, LM_EFIELD, 0, "abc");
	be(got + 12 + 10, 2, 0xcafe);
	REJECT(lm__dec_error(got + 12, 15, &m, &E), LM_EFIELD, "error.reserved");
}

/* ---- checksum ------------------------------------------------------------------ */

/* Section 13, computed with xxhash directly. */
static uint64_t doc_checksum(const uint8_t *p, uint64_t len)
{
	const uint64_t block = 4096;
	uint64_t nb = (len + block - 1) / block;
	uint8_t *le = malloc(nb * 8 + 1);
	uint64_t out;

	if (!le)
		return 0;
	for (uint64_t b = 0; b < nb; b++) {
		uint64_t off = b * block, n = len - off < block ? len - off : block;
		uint64_t h = XXH3_64bits(p + off, (size_t)n);
		for (int k = 0; k < 8; k++)
			le[b * 8 + (uint64_t)k] = (uint8_t)(h >> (8 * k));
	}
	out = XXH3_64bits_withSeed(le, (size_t)(nb * 8), len);
	free(le);
	return out;
}

/* lm__escape: what a peer's string may become on our screen. */
static void test_escape(void)
{
	char out[64];
	size_t n;

	n = lm__escape(out, sizeof(out), "plain text", 10);
	CHECK(strcmp(out, "plain text") == 0);
	CHECK_EQ(n, 10);
	/* A fake completion line behind a newline, and a terminal control. */
	n = lm__escape(out, sizeof(out), "x\nmigration completed\x1b[2J\\", 26);
	CHECK(strcmp(out, "x\\x0amigration completed\\x1b[2J\\x5c") == 0);
	CHECK_EQ(n, strlen(out));
	/* An embedded NUL and high bytes are escaped, not cut. */
	lm__escape(out, sizeof(out), "a\0b\xff", 4);
	CHECK(strcmp(out, "a\\x00b\\xff") == 0);
	/* Truncation: marked, never in the middle of an escape. */
	n = lm__escape(out, 8, "abcdefghij", 10);
	CHECK(strcmp(out, "abcd...") == 0);
	CHECK_EQ(n, 7);
	lm__escape(out, 8, "ab\ncdefg", 8);
	CHECK(strcmp(out, "ab...") == 0);
	/* Exactly fitting text has no marker. */
	lm__escape(out, 8, "abcdefg", 7);
	CHECK(strcmp(out, "abcdefg") == 0);
	lm__escape(out, 8, "abc\n", 4);
	CHECK(strcmp(out, "abc\\x0a") == 0);
	/* Tiny buffers: still NUL-terminated. */
	memset(out, 'z', sizeof(out));
	lm__escape(out, 1, "abc", 3);
	CHECK_EQ(out[0], 0);
	lm__escape(out, 3, "abc", 3);
	CHECK(strcmp(out, "..") == 0);
	CHECK_EQ(lm__escape(out, 0, "abc", 3), 0);
	CHECK_EQ(out[0], '.'); /* cap 0: nothing written */
	lm__escape(out, sizeof(out), "", 0);
	CHECK_EQ(out[0], 0);
}

/* The JSON statistics stay valid JSON whatever their strings hold. */
static void test_json_strings(void)
{
	lm_stats st;
	char buf[4096];

	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	st.live = 1;
	snprintf(st.dirty_note, sizeof(st.dirty_note), "%s",
		 "q\"b\\n\nesc\x1b[2Jdel\x7f" "e\xc3\xa9" "bad\xff" "cut\xc3");
	lm_stats_format(&st, LM_STATS_JSON, buf, sizeof(buf));
	CHECK(strstr(buf, "\"dirty_note\":\"q\\\"b\\\\n\\u000aesc\\u001b[2Jdel\\u007f"
			  "e\xc3\xa9" "bad\\ufffdcut\\ufffd\"") != NULL);
	CHECK(strchr(buf, '\n') == NULL);
	CHECK(strchr(buf, '\x1b') == NULL);
}

static void test_checksum(void)
{
	const size_t cap = 3u << 20;
	uint8_t *m = malloc(cap);
	uint8_t le[24] = {0};

	CHECK(m != NULL);
	if (!m)
		return;
	for (size_t i = 0; i < cap; i++)
		m[i] = (uint8_t)(i % 251);

	/* Empty region. */
	CHECK(region_sum(m, 0) == 0x2d06800538d394c2ull);
	CHECK(region_sum(NULL, 0) == 0x2d06800538d394c2ull);
	CHECK(XXH3_64bits_withSeed(le, 0, 0) == 0x2d06800538d394c2ull);
	/* One page, a non-page multiple, block boundaries, several blocks. */
	static const uint64_t lens[] = {1, 4096, 5000, 65536, 524287, 524288, 524289,
					1048576, 1200000, 2097252, 3u << 20};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint64_t got = region_sum(m, lens[i]), want = doc_checksum(m, lens[i]);
		CHECK(got == want);
		if (got != want)
			fprintf(stderr, "  len %llu: lib 0x%016llx, doc 0x%016llx\n",
				(unsigned long long)lens[i], (unsigned long long)got,
				(unsigned long long)want);
	}
	/* Values quoted in the document. */
	CHECK(region_sum(m, 4096) == 0x22a0685951cfaad9ull);
	CHECK(region_sum(m, 5000) == 0x55666d137c42254full);
	CHECK(region_sum(m, 1) == 0x406bec4a2fccabcfull);
	/* The worked example, step by step. */
	CHECK(XXH3_64bits(m, 4096) == 0x7135ffa504f1bc71ull);
	CHECK(XXH3_64bits(m + 4096, 4096) == 0x040c7b32b8767f94ull);
	CHECK(XXH3_64bits(m + 8192, 1808) == 0x428cfcd9e4a2e98aull);
	{
		static const uint8_t doc_le[24] = {0x71, 0xbc, 0xf1, 0x04, 0xa5, 0xff, 0x35, 0x71,
						   0x94, 0x7f, 0x76, 0xb8, 0x32, 0x7b, 0x0c, 0x04,
						   0x8a, 0xe9, 0xa2, 0xe4, 0xd9, 0xfc, 0x8c, 0x42};
		CHECK(XXH3_64bits_withSeed(doc_le, 24, 10000) == 0x6c22d8d4a35888f4ull);
	}
	CHECK(region_sum(m, 10000) == 0x6c22d8d4a35888f4ull);
	/* The seed is the length: the same blocks with another length differ. */
	for (int k = 0; k < 8; k++)
		le[k] = (uint8_t)(XXH3_64bits(m, 4000) >> (8 * k));
	CHECK(region_sum(m, 4000) == XXH3_64bits_withSeed(le, 8, 4000));
	CHECK(region_sum(m, 4000) != XXH3_64bits_withSeed(le, 8, 0));
	/* Block order matters (little-endian hashes, in order). */
	{
		uint64_t h0 = XXH3_64bits(m, 4096), h1 = XXH3_64bits(m + 4096, 4096);
		uint8_t sw[16];
		for (int k = 0; k < 8; k++) {
			sw[k] = (uint8_t)(h1 >> (8 * k));
			sw[8 + k] = (uint8_t)(h0 >> (8 * k));
		}
		CHECK(region_sum(m, 8192) != XXH3_64bits_withSeed(sw, 16, 8192));
	}
	/* Zero memory, several blocks. */
	memset(m, 0, cap);
	CHECK(region_sum(m, 2097252) == doc_checksum(m, 2097252));
	CHECK(region_sum(m, 4096) == doc_checksum(m, 4096));
	free(m);
}

int main(void)
{
	test_constants();
	test_frame();
	test_max_body();
	test_hello();
	test_region();
	test_data_examples();
	test_data_body_len();
	test_data_roundtrip();
	test_data_rejects();
	test_data_tables();
	test_data_area();
	test_data_kinds();
	test_sync();
	test_complete();
	test_ack();
	test_feedback();
	test_hello_mixed();
	test_error();
	test_escape();
	test_json_strings();
	test_checksum();
	TEST_DONE("test_wire");
}
