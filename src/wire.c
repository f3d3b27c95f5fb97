/*
 * Wire protocol v2 (docs/protocol.md). Decoders check every field before the
 * caller may use it: bad input becomes an error naming the field, never an
 * assert, an out-of-bounds access or an overflow.
 */
#include "wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codec/codec.h"

void lm__err_set(lm__err *e, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

static int escape_keeps(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '\\';
}

size_t lm__escape(char *dst, size_t cap, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, full = 0, room;

	if (!cap)
		return 0;
	for (size_t i = 0; i < len; i++)
		full += escape_keeps((unsigned char)src[i]) ? 1 : 4;
	/* Text that does not fit keeps room for the "..." that marks it. */
	room = full < cap ? cap - 1 : (cap > 4 ? cap - 4 : 0);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		if (escape_keeps(c)) {
			if (o + 1 > room)
				break;
			dst[o++] = (char)c;
			continue;
		}
		if (o + 4 > room)
			break;
		dst[o++] = '\\';
		dst[o++] = 'x';
		dst[o++] = hex[c >> 4];
		dst[o++] = hex[c & 15];
	}
	for (int k = 0; full >= cap && k < 3 && o + 1 < cap; k++)
		dst[o++] = '.';
	dst[o] = 0;
	return o;
}

static int fail(lm__err *e, int code, const char *what)
{
	lm__err_set(e, "%s", what);
	return code;
}

static int is_zero_bytes(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static int pow2(uint32_t v) { return v && !(v & (v - 1)); }

const char *lm__kind_name(uint8_t kind)
{
	static const char *const names[] = {"?", "hello", "region", "data", "sync",
					    "complete", "error", "ack", "feedback", "devstate",
					    "devstate_end"};
	return kind <= LM_KIND_MAX ? names[kind] : "unknown";
}

/* ---- encoders ------------------------------------------------------------ */

size_t lm__enc_frame(uint8_t *p, uint8_t kind, uint8_t flags, uint32_t len)
{
	lm__put32(p, LM_MAGIC);
	p[4] = kind;
	p[5] = flags;
	lm__put16(p + 6, 0);
	lm__put32(p + 8, len);
	return LM_FRAME_HDR;
}

size_t lm__enc_hello(uint8_t *p, const lm__hello *h)
{
	uint8_t *b = p + lm__enc_frame(p, LM_KIND_HELLO, 0, LM_HELLO_LEN);

	memset(b, 0, LM_HELLO_LEN);
	lm__put16(b + 0, h->version);
	memcpy(b + 4, h->session, 16);
	lm__put16(b + 20, h->channel);
	lm__put16(b + 22, h->channels);
	lm__put32(b + 24, h->page_size);
	lm__put16(b + 28, h->codec);
	lm__put32(b + 32, h->packet_pages);
	lm__put32(b + 36, h->region_count);
	lm__put64(b + 40, h->features);
	lm__put64(b + 48, h->required);
	return LM_FRAME_HDR + LM_HELLO_LEN;
}

size_t lm__enc_region(uint8_t *p, const lm__region_msg *r)
{
	uint32_t len = LM_REGION_FIXED + r->name_len;
	uint8_t *b = p + lm__enc_frame(p, LM_KIND_REGION, 0, len);

	lm__put32(b, r->id);
	lm__put32(b + 4, 0);
	lm__put64(b + 8, r->len);
	lm__put16(b + 16, r->name_len);
	lm__put16(b + 18, 0);
	memcpy(b + 20, r->name, r->name_len);
	return LM_FRAME_HDR + len;
}

size_t lm__enc_data_hdr(uint8_t *p, const lm__data_hdr *d, uint32_t body_len)
{
	uint8_t *b = p + lm__enc_frame(p, LM_KIND_DATA, 0, body_len);

	lm__put64(b, d->packet_num);
	lm__put32(b + 8, d->region);
	lm__put32(b + 12, d->round);
	lm__put32(b + 16, d->pages);
	lm__put32(b + 20, d->normal);
	lm__put32(b + 24, d->zero);
	lm__put32(b + 28, d->ref);
	lm__put32(b + 32, d->payload);
	lm__put16(b + 36, d->codec_flags);
	lm__put16(b + 38, d->delta);
	return LM_FRAME_HDR + LM_DATA_HDR;
}

size_t lm__enc_sync(uint8_t *p, const lm__sync *s)
{
	uint8_t *b = p + lm__enc_frame(p, LM_KIND_SYNC, 0, LM_SYNC_LEN);

	lm__put32(b, s->round);
	lm__put32(b + 4, 0);
	lm__put64(b + 8, s->packets);
	return LM_FRAME_HDR + LM_SYNC_LEN;
}

size_t lm__complete_bound(uint32_t n)
{
	return LM_FRAME_HDR + LM_COMPLETE_FIXED + (size_t)n * LM_COMPLETE_ENTRY;
}

size_t lm__enc_complete(uint8_t *p, const lm__region_sum *sums, uint32_t n)
{
	uint32_t len = LM_COMPLETE_FIXED + n * LM_COMPLETE_ENTRY;
	uint8_t *b = p + lm__enc_frame(p, LM_KIND_COMPLETE, 0, len);

	lm__put32(b, n);
	lm__put32(b + 4, 0);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *q = b + LM_COMPLETE_FIXED + i * LM_COMPLETE_ENTRY;
		lm__put32(q, sums[i].id);
		lm__put32(q + 4, 0);
		lm__put64(q + 8, sums[i].len);
		lm__put64(q + 16, sums[i].checksum);
	}
	return LM_FRAME_HDR + len;
}

size_t lm__enc_ack(uint8_t *p, const lm__ack *a)
{
	uint8_t *b = p + lm__enc_frame(p, LM_KIND_ACK, 0, LM_ACK_LEN);

	memset(b, 0, LM_ACK_LEN);
	b[0] = a->kind;
	lm__put32(b + 4, (uint32_t)a->status);
	lm__put64(b + 8, a->features);
	memcpy(b + 16, a->session, 16);
	return LM_FRAME_HDR + LM_ACK_LEN;
}

size_t lm__enc_error(uint8_t *p, int32_t code, uint16_t channel, const char *msg)
{
	size_t n = strlen(msg);
	uint8_t *b;

	if (n > LM_ERROR_MAX_MSG)
		n = LM_ERROR_MAX_MSG;
	b = p + lm__enc_frame(p, LM_KIND_ERROR, 0, (uint32_t)(LM_ERROR_FIXED + n));
	lm__put32(b, (uint32_t)code);
	lm__put16(b + 4, channel);
	lm__put16(b + 6, 0);
	lm__put16(b + 8, (uint16_t)n);
	lm__put16(b + 10, 0);
	memcpy(b + 12, msg, n);
	return LM_FRAME_HDR + LM_ERROR_FIXED + n;
}

/* ---- limits -------------------------------------------------------------- */

uint64_t lm__data_tables_len(const lm__data_hdr *d)
{
	/* Every term is bounded by 32-bit counts: no 64-bit overflow possible. */
	return 8ull * ((uint64_t)d->normal + d->zero + d->ref + d->delta) +
	       (uint64_t)LM_REF_ENTRY * d->ref + (uint64_t)LM_DELTA_ENTRY * d->delta +
	       4ull * ((uint64_t)d->normal + d->area);
}

uint64_t lm__data_body_len(const lm__data_hdr *d)
{
	return (uint64_t)LM_DATA_HDR + lm__data_tables_len(d) + d->payload;
}

uint64_t lm__max_body(uint8_t kind, uint32_t page_size, uint32_t packet_pages)
{
	switch (kind) {
	case LM_KIND_HELLO: return LM_HELLO_LEN;
	case LM_KIND_REGION: return LM_REGION_FIXED + LM_MAX_REGION_NAME;
	case LM_KIND_DATA:
		/* An offset and the largest of a ref entry, a delta entry plus
		 * a delta area length, or a length per page. */
		return LM_DATA_HDR + (uint64_t)packet_pages * (8 + LM_REF_ENTRY) +
		       lm__codec_payload_bound(page_size, packet_pages);
	case LM_KIND_SYNC: return LM_SYNC_LEN;
	case LM_KIND_COMPLETE: return LM_COMPLETE_FIXED + (uint64_t)LM_MAX_REGIONS * LM_COMPLETE_ENTRY;
	case LM_KIND_ERROR: return LM_ERROR_FIXED + LM_ERROR_MAX_MSG;
	case LM_KIND_ACK: return LM_ACK_LEN;
	case LM_KIND_FEEDBACK: return LM_FEEDBACK_LEN;
	case LM_KIND_DEVSTATE: return LM_DEVSTATE_FIXED + LM_DEVSTATE_MAX_PIECE;
	case LM_KIND_DEVSTATE_END: return LM_DEVSTATE_END_LEN;
	default: return 0;
	}
}

/* ---- decoders ------------------------------------------------------------ */

int lm__dec_frame(const uint8_t *p, lm__frame *f, lm__err *e)
{
	uint32_t magic = lm__get32(p);

	if (magic != LM_MAGIC) {
		lm__err_set(e, "frame.magic 0x%08x, expected 0x%08x", magic, LM_MAGIC);
		return LM_EBADMAGIC;
	}
	f->kind = p[4];
	f->flags = p[5];
	f->len = lm__get32(p + 8);
	if (f->kind == 0 || f->kind > LM_KIND_MAX) {
		lm__err_set(e, "frame.kind %u unknown", f->kind);
		return LM_EKIND;
	}
	if (f->flags) {
		lm__err_set(e, "frame.flags 0x%02x unknown for %s", f->flags, lm__kind_name(f->kind));
		return LM_EFIELD;
	}
	if (lm__get16(p + 6))
		return fail(e, LM_EFIELD, "frame.reserved not zero");
	return 0;
}

static int want_len(uint32_t len, uint32_t want, const char *kind, lm__err *e)
{
	if (len == want)
		return 0;
	lm__err_set(e, "%s.length %u, expected %u", kind, len, want);
	return LM_EFIELD;
}

/* Codec auto (255) is a session whose packets mix codecs: it stands or
 * falls with the MIXED feature, so both sides agree on what DATA may carry
 * and that FEEDBACK flows; a pinned codec never comes with MIXED. */
static int hello_codec(const lm__hello *h, lm__err *e)
{
	int mixed = (h->required & LM_FEAT_MIXED) != 0;

	if (h->codec == LM_CODEC_AUTO && !mixed)
		return fail(e, LM_ECODEC, "hello.codec 255 (auto) needs the mixed feature in hello.required");
	if (h->codec == LM_CODEC_AUTO)
		return 0;
	if (!lm__codec_get(h->codec)) {
		lm__err_set(e, "hello.codec %u unknown", h->codec);
		return LM_ECODEC;
	}
	if (mixed) {
		lm__err_set(e, "hello.codec %u with the mixed feature required: a mixed session's codec is 255 (auto)",
			    h->codec);
		return LM_ECODEC;
	}
	return 0;
}

uint64_t lm__hello_features(const lm__hello *h)
{
	uint64_t f = (h->features | h->required) & LM_FEAT_KNOWN;

	return h->codec == LM_CODEC_AUTO ? f : f & ~LM_FEAT_MIXED;
}

int lm__dec_hello(const uint8_t *p, uint32_t len, lm__hello *h, lm__err *e)
{
	int rc;

	/* The version comes first, so a later version with a longer hello
	 * is told "version", not "length". */
	if (len >= 2 && lm__get16(p) != LM_PROTOCOL_VERSION) {
		lm__err_set(e, "hello.version %u, this receiver speaks %u", lm__get16(p),
			    LM_PROTOCOL_VERSION);
		return LM_EVERSION;
	}
	if ((rc = want_len(len, LM_HELLO_LEN, "hello", e)))
		return rc;
	h->version = lm__get16(p);
	memcpy(h->session, p + 4, 16);
	h->channel = lm__get16(p + 20);
	h->channels = lm__get16(p + 22);
	h->page_size = lm__get32(p + 24);
	h->codec = lm__get16(p + 28);
	h->packet_pages = lm__get32(p + 32);
	h->region_count = lm__get32(p + 36);
	h->features = lm__get64(p + 40);
	h->required = lm__get64(p + 48);
	if (lm__get16(p + 2) || lm__get16(p + 30) || !is_zero_bytes(p + 56, 8))
		return fail(e, LM_EFIELD, "hello.reserved not zero");
	if (is_zero_bytes(h->session, 16))
		return fail(e, LM_ESESSION, "hello.session is all zero");
	if (h->channels == 0 || h->channels > LM_MAX_CHANNELS) {
		lm__err_set(e, "hello.channels %u outside 1..%u", h->channels, LM_MAX_CHANNELS);
		return LM_EFIELD;
	}
	if (h->channel >= h->channels) {
		lm__err_set(e, "hello.channel %u not below channels %u", h->channel, h->channels);
		return LM_EFIELD;
	}
	if (!pow2(h->page_size) || h->page_size < LM_MIN_PAGE_SIZE || h->page_size > LM_MAX_PAGE_SIZE) {
		lm__err_set(e, "hello.page_size %u not a power of two in %u..%u", h->page_size,
			    LM_MIN_PAGE_SIZE, LM_MAX_PAGE_SIZE);
		return LM_EFIELD;
	}
	if ((rc = hello_codec(h, e)))
		return rc;
	if (h->packet_pages == 0 || h->packet_pages > LM_MAX_PACKET_PAGES) {
		lm__err_set(e, "hello.packet_pages %u outside 1..%u", h->packet_pages,
			    LM_MAX_PACKET_PAGES);
		return LM_EFIELD;
	}
	if (h->region_count > LM_MAX_REGIONS) {
		lm__err_set(e, "hello.region_count %u above %u", h->region_count, LM_MAX_REGIONS);
		return LM_EFIELD;
	}
	if (h->required & ~LM_FEAT_KNOWN) {
		lm__err_set(e, "hello.required has unknown feature bits 0x%llx",
			    (unsigned long long)(h->required & ~LM_FEAT_KNOWN));
		return LM_EFEATURE;
	}
	return 0;
}

int lm__dec_region(const uint8_t *p, uint32_t len, lm__region_msg *r, lm__err *e)
{
	if (len < LM_REGION_FIXED || len > LM_REGION_FIXED + LM_MAX_REGION_NAME) {
		lm__err_set(e, "region.length %u outside %u..%u", len, LM_REGION_FIXED,
			    LM_REGION_FIXED + LM_MAX_REGION_NAME);
		return LM_EFIELD;
	}
	r->id = lm__get32(p);
	r->len = lm__get64(p + 8);
	r->name_len = lm__get16(p + 16);
	if (lm__get32(p + 4) || lm__get16(p + 18))
		return fail(e, LM_EFIELD, "region.reserved not zero");
	if (r->name_len == 0 || r->name_len > LM_MAX_REGION_NAME)
		return fail(e, LM_EFIELD, "region.name_len outside 1..255");
	if (len != LM_REGION_FIXED + r->name_len) {
		lm__err_set(e, "region.length %u does not match name_len %u", len, r->name_len);
		return LM_EFIELD;
	}
	if (memchr(p + 20, 0, r->name_len))
		return fail(e, LM_EFIELD, "region.name contains a NUL byte");
	memcpy(r->name, p + 20, r->name_len);
	r->name[r->name_len] = 0;
	/* Offsets are u64 and must stay representable after rounding up. */
	if (r->len > (UINT64_MAX >> 1))
		return fail(e, LM_EFIELD, "region.len too large");
	return 0;
}

int lm__data_check_payload_bound(const lm__data_hdr *d, const lm__codec_ops *ops,
				 const lm__limits *lim, uint32_t pages, lm__err *e)
{
	if ((uint64_t)d->payload > ops->payload_bound(lim->page_size, pages)) {
		lm__err_set(e, "data.payload %u above the bound for %u pages", d->payload, pages);
		return LM_EFIELD;
	}
	return 0;
}

/* The frame length gives the delta area's pages: one length entry each, at
 * most one per delta page (each encoding is shorter than a page). The
 * delta table checks the area against the encodings' lengths later. */
static int data_length(lm__data_hdr *d, uint32_t body_len, const lm__codec_ops *ops,
		       const lm__limits *lim, lm__err *e)
{
	uint64_t base = lm__data_body_len(d), extra = body_len > base ? body_len - base : 0;
	int rc;

	if (d->delta && body_len > base && extra % 4 == 0 && extra / 4 <= d->delta)
		d->area = (uint32_t)(extra / 4);
	if (lm__data_body_len(d) != body_len) {
		lm__err_set(e, "data.length %u, counts and payload give %llu", body_len,
			    (unsigned long long)base);
		return LM_EFIELD;
	}
	if ((rc = lm__data_check_payload_bound(d, ops, lim, d->normal + d->area, e)))
		return rc;
	d->tables = (uint32_t)lm__data_tables_len(d);
	return 0;
}

/* Packed tables: what the frame leaves after the header and the payload,
 * a byte a page at least, LM_DATA_PAGE_TABLES a page at most (so no table
 * outgrows the buffers). The delta area is known once the delta table is
 * read: here the payload's bound takes the most it can have. */
static int packed_length(lm__data_hdr *d, uint32_t body_len, const lm__codec_ops *ops,
			 const lm__limits *lim, lm__err *e)
{
	uint64_t t = (uint64_t)body_len - LM_DATA_HDR;
	int rc;

	if (t < d->payload) {
		lm__err_set(e, "data.length %u below the header and the %u-byte payload", body_len,
			    d->payload);
		return LM_EFIELD;
	}
	t -= d->payload;
	if (t < d->pages || t > (uint64_t)LM_DATA_PAGE_TABLES * d->pages) {
		lm__err_set(e, "data.tables %llu bytes outside %u..%llu for %u pages",
			    (unsigned long long)t, d->pages,
			    (unsigned long long)LM_DATA_PAGE_TABLES * d->pages, d->pages);
		return LM_EFIELD;
	}
	if ((rc = lm__data_check_payload_bound(d, ops, lim, d->normal + d->delta, e)))
		return rc;
	d->tables = (uint32_t)t;
	return 0;
}

int lm__dec_data_hdr(const uint8_t *p, uint32_t body_len, const lm__limits *lim, lm__data_hdr *d,
		     lm__err *e)
{
	const lm__codec_ops *ops;
	uint16_t codec;

	if (body_len < LM_DATA_HDR) {
		lm__err_set(e, "data.length %u below the %u-byte header", body_len, LM_DATA_HDR);
		return LM_EFIELD;
	}
	d->packet_num = lm__get64(p);
	d->region = lm__get32(p + 8);
	d->round = lm__get32(p + 12);
	d->pages = lm__get32(p + 16);
	d->normal = lm__get32(p + 20);
	d->zero = lm__get32(p + 24);
	d->ref = lm__get32(p + 28);
	d->payload = lm__get32(p + 32);
	d->codec_flags = lm__get16(p + 36);
	d->delta = lm__get16(p + 38);
	d->area = 0;
	d->tables = 0;
	if (d->region >= lim->region_count) {
		lm__err_set(e, "data.region %u unknown (%u regions)", d->region, lim->region_count);
		return LM_EFIELD;
	}
	if (d->round != lim->round) {
		lm__err_set(e, "data.round %u, channel is in round %u", d->round, lim->round);
		return LM_EFIELD;
	}
	if (d->pages == 0 || d->pages > lim->packet_pages) {
		lm__err_set(e, "data.pages %u outside 1..%u", d->pages, lim->packet_pages);
		return LM_EFIELD;
	}
	if ((uint64_t)d->normal + d->zero + d->ref + d->delta != d->pages) {
		lm__err_set(e, "data.pages %u != normal %u + zero %u + ref %u + delta %u", d->pages,
			    d->normal, d->zero, d->ref, d->delta);
		return LM_EFIELD;
	}
	if (d->ref && !(lim->features & LM_FEAT_REF))
		return fail(e, LM_EFEATURE, "data.ref pages need the ref feature, not agreed in the hello");
	if (d->delta && !(lim->features & LM_FEAT_DELTA))
		return fail(e, LM_EFEATURE, "data.delta pages need the delta feature, not agreed in the hello");
	if (d->codec_flags & ~(LM_PKT_CODEC_MASK | LM_PKT_FLAGS_KNOWN)) {
		lm__err_set(e, "data.codec_flags 0x%04x has unknown flags", d->codec_flags);
		return LM_EFIELD;
	}
	codec = d->codec_flags & LM_PKT_CODEC_MASK;
	/* A mixed session (codec auto) takes any codec known here. */
	if (lim->codec != LM_CODEC_AUTO && codec != lim->codec && codec != LM_CODEC_NONE) {
		lm__err_set(e, "data.codec %u is neither the session's codec %u nor none", codec,
			    lim->codec);
		return LM_ECODEC;
	}
	ops = lm__codec_get(codec);
	if (!ops) {
		lm__err_set(e, "data.codec %u unknown", codec);
		return LM_ECODEC;
	}
	if (lim->features & LM_FEAT_PACKED)
		return packed_length(d, body_len, ops, lim, e);
	return data_length(d, body_len, ops, lim, e);
}

int lm__data_check_length(uint32_t i, uint32_t len, const lm__codec_ops *ops, const lm__limits *lim,
			lm__err *e)
{
	if (len == 0 || len > lim->page_size) {
		lm__err_set(e, "data.length[%u] %u outside 1..%u", i, len, lim->page_size);
		return LM_EFIELD;
	}
	/* Raw-only and per-packet codecs carry the decoded size here. */
	if ((ops->raw_only || !ops->per_page) && len != lim->page_size) {
		lm__err_set(e, "data.length[%u] %u, codec %s needs %u", i, len, ops->name,
			    lim->page_size);
		return LM_EFIELD;
	}
	return 0;
}

int lm__data_check_payload_sum(const lm__data_hdr *d, const lm__codec_ops *ops, uint64_t sum,
			     lm__err *e)
{
	if (ops->per_page && sum != d->payload) {
		lm__err_set(e, "data.payload %u != sum of page lengths %llu", d->payload,
			    (unsigned long long)sum);
		return LM_EFIELD;
	}
	return 0;
}

int lm__dec_data_tables(const uint8_t *p, const lm__data_hdr *d, const lm__limits *lim,
			uint64_t *off, uint32_t *plen, lm__err *e)
{
	uint64_t rlen = lim->region_len[d->region];
	uint64_t mask = lim->page_size - 1;
	uint32_t nofs = d->pages, nlen = d->normal + d->area;
	const uint8_t *lens = p + 8ull * nofs + (uint64_t)LM_REF_ENTRY * d->ref +
			      (uint64_t)LM_DELTA_ENTRY * d->delta;
	const lm__codec_ops *ops = lm__codec_get(d->codec_flags & LM_PKT_CODEC_MASK);
	uint64_t sum = 0;
	int rc;

	for (uint32_t i = 0; i < nofs; i++) {
		off[i] = lm__get64(p + 8ull * i);
		if (off[i] & mask) {
			lm__err_set(e, "data.offset[%u] 0x%llx not page-aligned", i,
				    (unsigned long long)off[i]);
			return LM_EFIELD;
		}
		/* A page starting before the end is inside: the region's memory
		 * is page-rounded, so the whole page is writable. */
		if (off[i] >= rlen) {
			lm__err_set(e, "data.offset[%u] 0x%llx outside region %u of %llu bytes", i,
				    (unsigned long long)off[i], d->region, (unsigned long long)rlen);
			return LM_EFIELD;
		}
	}
	for (uint32_t i = 0; i < nlen; i++) {
		plen[i] = lm__get32(lens + 4ull * i);
		if ((rc = lm__data_check_length(i, plen[i], ops, lim, e)))
			return rc;
		sum += plen[i];
	}
	return lm__data_check_payload_sum(d, ops, sum, e);
}

/* A region's partial last page is never a ref or delta page, nor a ref's
 * source: the sender pads it, the receiver keeps only the region's part. */
static int whole_page(const lm__limits *lim, uint32_t region, uint64_t off)
{
	return off + lim->page_size <= lim->region_len[region];
}

int lm__data_check_ref(uint32_t i, const lm__data_hdr *d, const lm__limits *lim, uint64_t own,
		     const lm__ref *r, lm__err *e)
{
	if (r->src_region >= lim->region_count) {
		lm__err_set(e, "data.ref[%u].src_region %u unknown (%u regions)", i, r->src_region,
			    lim->region_count);
		return LM_EFIELD;
	}
	if (r->src_round > d->round) {
		lm__err_set(e, "data.ref[%u].src_round %u after the packet's round %u", i,
			    r->src_round, d->round);
		return LM_EFIELD;
	}
	if ((r->src_offset & (lim->page_size - 1)) || r->src_offset >= lim->region_len[r->src_region]) {
		lm__err_set(e, "data.ref[%u].src_offset 0x%llx not a page of region %u", i,
			    (unsigned long long)r->src_offset, r->src_region);
		return LM_EFIELD;
	}
	if (r->src_region == d->region && r->src_offset == own) {
		lm__err_set(e, "data.ref[%u] is the page at offset 0x%llx itself", i,
			    (unsigned long long)own);
		return LM_EFIELD;
	}
	if (!whole_page(lim, r->src_region, r->src_offset) || !whole_page(lim, d->region, own)) {
		lm__err_set(e, "data.ref[%u]: a region's partial last page is neither a ref nor its source",
			    i);
		return LM_EFIELD;
	}
	return 0;
}

static int dec_ref(const uint8_t *q, uint32_t i, const lm__data_hdr *d, const lm__limits *lim,
		   uint64_t own, lm__ref *r, lm__err *e)
{
	r->src_region = lm__get32(q);
	r->src_round = lm__get32(q + 4);
	r->src_offset = lm__get64(q + 8);
	return lm__data_check_ref(i, d, lim, own, r, e);
}

int lm__data_check_delta(uint32_t i, const lm__data_hdr *d, const lm__limits *lim, uint64_t own,
		       const lm__delta *dl, lm__err *e)
{
	if (dl->base_round >= d->round) {
		lm__err_set(e, "data.delta[%u].base_round %u not before the packet's round %u", i,
			    dl->base_round, d->round);
		return LM_EFIELD;
	}
	if (dl->len >= lim->page_size) {
		lm__err_set(e, "data.delta[%u].len %u not below the page size %u", i, dl->len,
			    lim->page_size);
		return LM_EFIELD;
	}
	if (!whole_page(lim, d->region, own)) {
		lm__err_set(e, "data.delta[%u]: a region's partial last page is never a delta", i);
		return LM_EFIELD;
	}
	return 0;
}

int lm__dec_data_kinds(const uint8_t *p, const lm__data_hdr *d, const lm__limits *lim,
		       const uint64_t *off, lm__ref *refs, lm__delta *deltas, lm__err *e)
{
	const uint8_t *q = p + 8ull * d->pages;
	uint32_t first_ref = d->normal + d->zero, first_delta = first_ref + d->ref;
	uint64_t sum = 0, area;
	int rc;

	for (uint32_t i = 0; i < d->ref; i++, q += LM_REF_ENTRY)
		if ((rc = dec_ref(q, i, d, lim, off[first_ref + i], &refs[i], e)))
			return rc;
	for (uint32_t i = 0; i < d->delta; i++, q += LM_DELTA_ENTRY) {
		deltas[i].base_round = lm__get32(q);
		deltas[i].len = lm__get32(q + 4);
		if ((rc = lm__data_check_delta(i, d, lim, off[first_delta + i], &deltas[i], e)))
			return rc;
		sum += deltas[i].len;
	}
	area = (sum + lim->page_size - 1) / lim->page_size;
	if (area != d->area) {
		lm__err_set(e, "data.delta: encodings of %llu bytes need %llu area pages, the length table has %u",
			    (unsigned long long)sum, (unsigned long long)area, d->area);
		return LM_EFIELD;
	}
	return 0;
}

int lm__dec_sync(const uint8_t *p, uint32_t len, lm__sync *s, lm__err *e)
{
	int rc = want_len(len, LM_SYNC_LEN, "sync", e);

	if (rc)
		return rc;
	if (lm__get32(p + 4))
		return fail(e, LM_EFIELD, "sync.reserved not zero");
	s->round = lm__get32(p);
	s->packets = lm__get64(p + 8);
	return 0;
}

int lm__dec_complete(const uint8_t *p, uint32_t len, lm__region_sum *sums, uint32_t cap,
		     uint32_t *n, lm__err *e)
{
	uint32_t cnt;

	if (len < LM_COMPLETE_FIXED)
		return fail(e, LM_EFIELD, "complete.length below 8");
	cnt = lm__get32(p);
	if (lm__get32(p + 4))
		return fail(e, LM_EFIELD, "complete.reserved not zero");
	if (cnt > cap) {
		lm__err_set(e, "complete.regions %u, session has %u", cnt, cap);
		return LM_EFIELD;
	}
	if ((uint64_t)len != LM_COMPLETE_FIXED + (uint64_t)cnt * LM_COMPLETE_ENTRY) {
		lm__err_set(e, "complete.length %u does not match %u regions", len, cnt);
		return LM_EFIELD;
	}
	for (uint32_t i = 0; i < cnt; i++) {
		const uint8_t *q = p + LM_COMPLETE_FIXED + i * LM_COMPLETE_ENTRY;
		if (lm__get32(q + 4))
			return fail(e, LM_EFIELD, "complete.entry.reserved not zero");
		sums[i].id = lm__get32(q);
		sums[i].len = lm__get64(q + 8);
		sums[i].checksum = lm__get64(q + 16);
	}
	*n = cnt;
	return 0;
}

size_t lm__enc_feedback(uint8_t *p, const lm__feedback *f)
{
	uint8_t *b = p + lm__enc_frame(p, LM_KIND_FEEDBACK, 0, LM_FEEDBACK_LEN);

	lm__put32(b, f->round);
	lm__put32(b + 4, 0);
	lm__put64(b + 8, f->cpu_ns);
	lm__put64(b + 16, f->wall_ns);
	for (uint32_t i = 0; i < LM_FEEDBACK_CODECS; i++) {
		lm__put64(b + 24 + 16 * i, f->codec[i].pages);
		lm__put64(b + 32 + 16 * i, f->codec[i].ns);
	}
	return LM_FRAME_HDR + LM_FEEDBACK_LEN;
}

int lm__dec_feedback(const uint8_t *p, uint32_t len, lm__feedback *f, lm__err *e)
{
	int rc = want_len(len, LM_FEEDBACK_LEN, "feedback", e);

	if (rc)
		return rc;
	if (lm__get32(p + 4))
		return fail(e, LM_EFIELD, "feedback.reserved not zero");
	f->round = lm__get32(p);
	f->cpu_ns = lm__get64(p + 8);
	f->wall_ns = lm__get64(p + 16);
	for (uint32_t i = 0; i < LM_FEEDBACK_CODECS; i++) {
		f->codec[i].pages = lm__get64(p + 24 + 16 * i);
		f->codec[i].ns = lm__get64(p + 32 + 16 * i);
	}
	return 0;
}

int lm__dec_ack(const uint8_t *p, uint32_t len, lm__ack *a, lm__err *e)
{
	int rc = want_len(len, LM_ACK_LEN, "ack", e);

	if (rc)
		return rc;
	a->kind = p[0];
	a->status = (int32_t)lm__get32(p + 4);
	a->features = lm__get64(p + 8);
	memcpy(a->session, p + 16, 16);
	if (p[1] || p[2] || p[3])
		return fail(e, LM_EFIELD, "ack.reserved not zero");
	if (a->kind != LM_KIND_HELLO && a->kind != LM_KIND_SYNC && a->kind != LM_KIND_COMPLETE) {
		lm__err_set(e, "ack.kind %u is not hello, sync or complete", a->kind);
		return LM_EFIELD;
	}
	if (a->status != 0)
		return fail(e, LM_EFIELD, "ack.status not zero");
	return 0;
}

int lm__dec_error(const uint8_t *p, uint32_t len, lm__error_msg *m, lm__err *e)
{
	if (len < LM_ERROR_FIXED || len > LM_ERROR_FIXED + LM_ERROR_MAX_MSG) {
		lm__err_set(e, "error.length %u outside %u..%u", len, LM_ERROR_FIXED,
			    LM_ERROR_FIXED + LM_ERROR_MAX_MSG);
		return LM_EFIELD;
	}
	m->code = (int32_t)lm__get32(p);
	m->channel = lm__get16(p + 4);
	m->msg_len = lm__get16(p + 8);
	if (lm__get16(p + 6) || lm__get16(p + 10))
		return fail(e, LM_EFIELD, "error.reserved not zero");
	if (m->msg_len != len - LM_ERROR_FIXED)
		return fail(e, LM_EFIELD, "error.msg_len does not match the frame length");
	/* The text is shown to a user, who must not see a line or a terminal
	 * control the peer made up: only the escaped form is kept. */
	lm__escape(m->msg, sizeof(m->msg), (const char *)p + 12, m->msg_len);
	if (m->code >= 0 || m->code < -5000)
		m->code = LM_EPEER;
	return 0;
}

/* ---- device state ----------------------------------------------------- */

size_t lm__enc_devstate(uint8_t *p, const lm__devstate *d)
{
	uint8_t *b = p + lm__enc_frame(p, LM_KIND_DEVSTATE, 0, LM_DEVSTATE_FIXED + d->len);

	lm__put64(b, d->off);
	lm__put32(b + 8, d->len);
	lm__put32(b + 12, 0);
	return LM_FRAME_HDR + LM_DEVSTATE_FIXED;
}

size_t lm__enc_devstate_end(uint8_t *p, const lm__devstate_end *d)
{
	uint8_t *b = p + lm__enc_frame(p, LM_KIND_DEVSTATE_END, 0, LM_DEVSTATE_END_LEN);

	lm__put64(b, d->total);
	lm__put64(b + 8, d->checksum);
	return LM_FRAME_HDR + LM_DEVSTATE_END_LEN;
}

int lm__dec_devstate(const uint8_t *p, uint32_t len, lm__devstate *d, lm__err *e)
{
	if (len <= LM_DEVSTATE_FIXED || len - LM_DEVSTATE_FIXED > LM_DEVSTATE_MAX_PIECE) {
		lm__err_set(e, "devstate.length %u outside %u..%u", len, LM_DEVSTATE_FIXED + 1,
			    LM_DEVSTATE_FIXED + LM_DEVSTATE_MAX_PIECE);
		return LM_EFIELD;
	}
	d->off = lm__get64(p);
	d->len = lm__get32(p + 8);
	if (lm__get32(p + 12))
		return fail(e, LM_EFIELD, "devstate.reserved not zero");
	if (d->len != len - LM_DEVSTATE_FIXED) {
		lm__err_set(e, "devstate.len %u does not match the frame length %u", d->len, len);
		return LM_EFIELD;
	}
	/* Offsets stay far from wrapping: no cap is near 2^63. */
	if (d->off > (UINT64_MAX >> 1)) {
		lm__err_set(e, "devstate.offset 0x%llx too large", (unsigned long long)d->off);
		return LM_EFIELD;
	}
	return 0;
}

int lm__dec_devstate_end(const uint8_t *p, uint32_t len, lm__devstate_end *d, lm__err *e)
{
	int rc = want_len(len, LM_DEVSTATE_END_LEN, "devstate_end", e);

	if (rc)
		return rc;
	d->total = lm__get64(p);
	d->checksum = lm__get64(p + 8);
	if (d->total > (UINT64_MAX >> 1))
		return fail(e, LM_EFIELD, "devstate_end.total too large");
	return 0;
}
