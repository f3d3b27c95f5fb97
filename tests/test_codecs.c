/*
 * Codecs: every registered codec (ids 0..15, none included) through its ops
 * table, then zstd, lz4, zlib (and deflate when built) end to end.
 *
 *  - round trips of packets of 1, 3, 128 and 1024 pages of 4 KiB and
 *    64 KiB pages, of text, binary records, zero-heavy, random and mixed
 *    pages, with the pages at scattered (or contiguous) addresses on each
 *    side; levels from below the minimum to above the maximum;
 *  - a packet that does not shrink is LM_ECODEC for per-packet codecs (the
 *    sender sends it raw), and the output never exceeds payload_bound: it
 *    is written into a buffer that ends at a PROT_NONE page;
 *  - decode rejects a truncated payload, a byte too many, a second frame,
 *    a payload for more or fewer pages, an empty payload, wrong lengths,
 *    random bytes, and bytes flipped at many positions (an error, or a
 *    success for flips the format cannot see, never a crash); frames from
 *    the libraries' own one-shot encoders decode, frames the codec must
 *    refuse (dictionary, oversized window or blocks, skippable, raw or gzip
 *    wrapper) are refused; a context decodes correctly after failures;
 *  - every destination page sits between PROT_NONE guard pages and every
 *    payload ends at one, so a write or read out of bounds crashes the test
 *    (and ASan sees the rest);
 *  - a 32 MiB region over 2 channels for each codec: identical memory, the
 *    codec's engine stats, compression ratio, raw fallback packets.
 */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <lz4frame.h>
#include <zlib.h>
#include <zstd.h>

#include "check.h"
#include "codec/codec.h"
#include "livemig.h"
#include "wire.h"
#include "test_util.h"

static size_t sys_page;

/* ---- content --------------------------------------------------------------- */

enum { C_TEXT, C_BINARY, C_ZERO, C_RANDOM, C_MIXED, C_COUNT };
static const char *const kind_names[C_COUNT] = {"text", "binary", "zero-heavy", "random",
						"mixed"};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s * 0x2545F4914F6CDD1Dull;
}

static void fill_text(uint8_t *p, size_t len, uint64_t *s)
{
	static const char *const words[] = {
		"the", "memory", "page", "of", "and", "guest", "to", "migration", "a",
		"kernel", "in", "channel", "is", "static", "int", "return", "struct",
		"for", "if", "error", "0x7f3a", "void", "const", "data", "with", "host",
		"packet", "while", "size_t", "buffer", "region", "->", "NULL", "{", "}",
		"(", ");", "uint64_t", "compress", "level", "zero", "dirty", "round",
	};
	size_t i = 0, col = 0;

	while (i < len) {
		const char *w = words[rnd(s) % (sizeof(words) / sizeof(words[0]))];
		char num[24];
		if (rnd(s) % 16 == 0) {
			snprintf(num, sizeof(num), "%u", (unsigned)(rnd(s) % 100000));
			w = num;
		}
		for (size_t k = 0; w[k] && i < len; k++, col++)
			p[i++] = (uint8_t)w[k];
		if (i < len)
			p[i++] = col > 60 + rnd(s) % 20 ? '\n' : ' ';
		col = i && p[i - 1] == '\n' ? 0 : col + 1;
	}
}

/* A heap of 48-byte records: pointers, counters, flags, doubles, a hash. */
static void fill_binary(uint8_t *p, size_t len, uint64_t *s)
{
	static const uint32_t flags[] = {0x1, 0x11, 0x80000001u, 0x4};
	uint8_t rec[48];

	for (size_t i = 0; i < len; i += sizeof(rec)) {
		uint64_t ptr = 0x0000555555550000ull + (rnd(s) % 0x100000) * 16;
		uint32_t cnt = (uint32_t)(rnd(s) % 1000), fl = flags[rnd(s) % 4];
		double d = (double)(i / sizeof(rec)) * 0.5;
		uint64_t hash = rnd(s), refs = 1 + rnd(s) % 3;
		memset(rec, 0, sizeof(rec));
		memcpy(rec, &ptr, 8);
		memcpy(rec + 8, &cnt, 4);
		memcpy(rec + 12, &fl, 4);
		memcpy(rec + 16, &d, 8);
		memcpy(rec + 24, &refs, 8);
		if (rnd(s) % 4 == 0)
			memcpy(rec + 32, &hash, 8);
		memcpy(p + i, rec, len - i < sizeof(rec) ? len - i : sizeof(rec));
	}
}

/* Mostly zero, a few words set (never an all-zero page). */
static void fill_zero_heavy(uint8_t *p, size_t len, uint64_t *s)
{
	memset(p, 0, len);
	for (size_t i = 0; i + 8 <= len; i += 8)
		if (i == 0 || rnd(s) % 48 == 0) {
			uint64_t v = rnd(s) % 4096;
			memcpy(p + i, &v, 8);
		}
	p[0] |= 1;
}

static void fill_random(uint8_t *p, size_t len, uint64_t *s)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = rnd(s);
		memcpy(p + i, &v, len - i < 8 ? len - i : 8);
	}
}

/* Text, records and sparse pages come from 256 KiB of each, generated once
 * (fast, also under ASan), at random 8-byte aligned offsets: neighbouring
 * pages share content, as copies in real memory do. */
#define CORPUS (256u << 10)
static uint8_t *corpus[3];

static int corpus_init(void)
{
	uint64_t s = 0xc0ffee;

	for (int k = 0; k < 3; k++) {
		corpus[k] = malloc(CORPUS);
		if (!corpus[k])
			return -1;
	}
	fill_text(corpus[C_TEXT], CORPUS, &s);
	fill_binary(corpus[C_BINARY], CORPUS, &s);
	for (size_t i = 0; i < CORPUS; i += 4096)
		fill_zero_heavy(corpus[C_ZERO] + i, 4096, &s);
	return 0;
}

static void corpus_free(void)
{
	for (int k = 0; k < 3; k++)
		free(corpus[k]);
}

static void fill_page(uint8_t *p, size_t len, int kind, uint32_t idx, uint64_t *s)
{
	if (kind == C_MIXED)
		kind = (int)(idx % 4); /* text, binary, zero-heavy, random */
	if (kind == C_RANDOM) {
		fill_random(p, len, s);
		return;
	}
	memcpy(p, corpus[kind] + (rnd(s) % (CORPUS - len + 1)) / 8 * 8, len);
	p[0] |= 1; /* never an all-zero page */
}

/* ---- guarded memory -------------------------------------------------------- */

/* n pages between PROT_NONE guards: scattered (each page its own slot, in
 * shuffled order) or contiguous (one run, in order). */
typedef struct pool {
	uint8_t *map;
	size_t map_len;
	void **pages;
	uint32_t n, ps;
} pool;

static int pool_new(pool *p, uint32_t n, uint32_t ps, int scatter, uint64_t *s)
{
	size_t slot = scatter ? ps + sys_page : ps;
	uint32_t *perm = malloc(sizeof(*perm) * n);

	memset(p, 0, sizeof(*p));
	p->n = n;
	p->ps = ps;
	p->map_len = 2 * sys_page + (size_t)n * slot;
	p->map = mmap(NULL, p->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		      -1, 0);
	p->pages = malloc(sizeof(void *) * n);
	if (p->map == MAP_FAILED || !p->pages || !perm) {
		free(perm);
		p->map = NULL;
		return -1;
	}
	for (uint32_t i = 0; i < n; i++)
		perm[i] = i;
	for (uint32_t i = n; scatter && i > 1; i--) {
		uint32_t j = (uint32_t)(rnd(s) % i), t = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = t;
	}
	for (uint32_t i = 0; i < n; i++) {
		p->pages[i] = p->map + sys_page + (size_t)perm[i] * slot;
		if (scatter || i == 0)
			mprotect(p->pages[i], scatter ? ps : (size_t)n * ps, PROT_READ | PROT_WRITE);
	}
	free(perm);
	return 0;
}

static void pool_free(pool *p)
{
	if (p->map)
		munmap(p->map, p->map_len);
	free(p->pages);
	p->map = NULL;
	p->pages = NULL;
}

static void pool_fill(pool *p, int kind, uint64_t *s)
{
	for (uint32_t i = 0; i < p->n; i++)
		fill_page(p->pages[i], p->ps, kind, i, s);
}

static int pool_equal(const pool *a, const pool *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (memcmp(a->pages[i], b->pages[i], a->ps))
			return 0;
	return 1;
}

/* len bytes ending exactly at a PROT_NONE page (and one before them). */
typedef struct gbuf {
	uint8_t *map, *p;
	size_t map_len, len;
} gbuf;

static uint8_t *gbuf_new(gbuf *g, size_t len)
{
	size_t body = (len + sys_page - 1) / sys_page * sys_page;

	g->len = len;
	g->map_len = body + 2 * sys_page;
	g->map = mmap(NULL, g->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
		      0);
	if (g->map == MAP_FAILED) {
		g->map = g->p = NULL;
		return NULL;
	}
	if (body)
		mprotect(g->map + sys_page, body, PROT_READ | PROT_WRITE);
	g->p = g->map + sys_page + body - len;
	return g->p;
}

static void gbuf_free(gbuf *g)
{
	if (g->map)
		munmap(g->map, g->map_len);
	g->map = g->p = NULL;
}

/* ---- helpers ---------------------------------------------------------------- */

typedef struct codec {
	const lm__codec_ops *ops;
	void *ctx;
	lm_engine_stats st[LM_MAX_ENGINES];
} codec;

static int codec_open(codec *c, const lm__codec_ops *ops, int level, uint32_t ps, uint32_t pp)
{
	/* No accelerator probe for deflate: test_deflate covers that path,
	 * and QPL's probe leaves an allocation behind for LeakSanitizer. */
	lm__codec_params p = {.level = level, .page_size = ps, .packet_pages = pp,
			      .accel = LM_ACCEL_OFF};

	memset(c, 0, sizeof(*c));
	c->ops = ops;
	p.stats = c->st;
	return ops->ctx_new(&c->ctx, &p);
}

static void codec_close(codec *c)
{
	if (c->ops)
		c->ops->ctx_free(c->ctx);
	c->ctx = NULL;
}

static const lm_engine_stats *stat_of(const codec *c)
{
	for (int i = 0; i < LM_MAX_ENGINES; i++)
		if (!strcmp(c->st[i].name, c->ops->name))
			return &c->st[i];
	return NULL;
}

/* The packet's payload as the sender puts it on the wire (the raw pages for
 * a packet the codec returned LM_ECODEC for, then sent with codec none). */
static size_t wire_payload(const lm__codec_ops *ops, int enc_rc, void *const *src, uint32_t n,
			   uint32_t ps, const uint8_t *enc, size_t enc_len, const uint32_t *lens,
			   uint8_t *out)
{
	size_t pos = 0, at = 0;

	if (enc_rc == 0 && !ops->raw_only && !ops->per_page) {
		memcpy(out, enc, enc_len);
		return enc_len;
	}
	for (uint32_t i = 0; i < n; i++) {
		int raw = enc_rc != 0 || ops->raw_only || lens[i] == ps;
		memcpy(out + pos, raw ? src[i] : enc + at, raw ? ps : lens[i]);
		pos += raw ? ps : lens[i];
		at += raw ? 0 : lens[i];
	}
	return pos;
}

/* Decodes a copy of in (ending at a guard page) into dst, prefilled. */
static int decode_copy(codec *c, const uint8_t *in, size_t len, const uint32_t *lens, pool *dst,
		       uint32_t n, lm__err *e)
{
	gbuf g;
	int rc;

	if (!gbuf_new(&g, len))
		return -1;
	memcpy(g.p, in, len);
	for (uint32_t i = 0; i < n; i++)
		memset(dst->pages[i], 0xa5, dst->ps);
	e->msg[0] = 0;
	rc = c->ops->decode(c->ctx, g.p, len, lens, dst->pages, n, dst->ps, e);
	gbuf_free(&g);
	return rc;
}

/* An error names the field: "data.payload: ..." or "data.length[i] ...". */
static int names_field(const lm__err *e)
{
	return strncmp(e->msg, "data.payload", 12) == 0 || strncmp(e->msg, "data.length", 11) == 0;
}

/* ---- round trips ------------------------------------------------------------ */

typedef struct trip {
	uint32_t ps, n;
	int kind, level;
	int src_scatter, dst_scatter;
	int must_shrink; /* 1: rc 0 required; 0: LM_ECODEC allowed */
} trip;

static void check_enc_stats(const codec *c, const trip *t, int rc, size_t len)
{
	const lm_engine_stats *st = stat_of(c);
	uint64_t raw = (uint64_t)t->n * t->ps;

	if (c->ops->per_page)
		return; /* the per-page codec's engines name their own entries */
	CHECK(st != NULL);
	if (!st)
		return;
	CHECK_EQ(st->jobs, 1);
	CHECK_EQ(st->raw, rc ? t->n : 0);
	CHECK_EQ(st->bytes_in, raw);
	CHECK_EQ(st->bytes_out, rc ? raw : len);
}

static void round_trip(const lm__codec_ops *ops, const trip *t, uint64_t seed)
{
	codec enc, dec, none;
	pool src = {0}, dst = {0};
	gbuf out = {0};
	uint64_t s = seed;
	uint64_t bound = ops->payload_bound(t->ps, t->n), raw = (uint64_t)t->n * t->ps;
	uint32_t *lens = calloc(t->n, sizeof(*lens)), *plens = calloc(t->n, sizeof(*plens));
	uint8_t *wire = malloc(bound > raw ? bound : raw);
	size_t len = (size_t)-1, plen;
	lm__err e;
	int rc;

	CHECK(bound >= raw || ops->per_page);
	if (!lens || !plens || !wire || pool_new(&src, t->n, t->ps, t->src_scatter, &s) ||
	    pool_new(&dst, t->n, t->ps, t->dst_scatter, &s) || !gbuf_new(&out, bound)) {
		CHECK(!"out of memory");
		goto out;
	}
	pool_fill(&src, t->kind, &s);
	CHECK_EQ(codec_open(&enc, ops, t->level, t->ps, t->n), 0);
	CHECK_EQ(codec_open(&dec, ops, 0, t->ps, t->n), 0);
	CHECK_EQ(codec_open(&none, &lm__codec_none, 0, t->ps, t->n), 0);
	rc = ops->encode(enc.ctx, (const void *const *)src.pages, t->n, t->ps, out.p, out.len,
			 lens, &len);
	CHECK(rc == 0 || (rc == LM_ECODEC && !ops->per_page));
	CHECK(len <= bound);
	if (t->must_shrink && rc)
		fprintf(stderr, "  %s: %u pages of %u, %s, level %d did not shrink\n", ops->name,
			t->n, t->ps, kind_names[t->kind], t->level);
	if (t->kind == C_RANDOM && !ops->per_page && !ops->raw_only)
		CHECK_EQ(rc, LM_ECODEC);
	if (t->must_shrink && !ops->raw_only && !ops->per_page)
		CHECK_EQ(rc, 0);
	if (rc == 0 && !ops->per_page)
		CHECK(len < raw);
	for (uint32_t i = 0; i < t->n; i++) {
		CHECK(lens[i] >= 1 && lens[i] <= t->ps);
		if (!ops->per_page || rc)
			CHECK_EQ(lens[i], t->ps);
	}
	check_enc_stats(&enc, t, rc, len);
	/* What the receiver gets: the codec's payload, or raw pages. */
	plen = wire_payload(ops, rc, src.pages, t->n, t->ps, out.p, len, lens, wire);
	for (uint32_t i = 0; i < t->n; i++)
		plens[i] = rc ? t->ps : lens[i];
	rc = decode_copy(rc ? &none : &dec, wire, plen, plens, &dst, t->n, &e);
	CHECK_EQ(rc, 0);
	CHECK(pool_equal(&src, &dst, t->n));
	if (rc || !pool_equal(&src, &dst, t->n))
		fprintf(stderr, "  %s: %u pages of %u, %s, level %d: \"%s\"\n", ops->name, t->n,
			t->ps, kind_names[t->kind], t->level, e.msg);
	codec_close(&enc);
	codec_close(&dec);
	codec_close(&none);
out:
	pool_free(&src);
	pool_free(&dst);
	gbuf_free(&out);
	free(lens);
	free(plens);
	free(wire);
}

/* 1, 3 and 128 pages (16 of 64 KiB but for the mixed packet, to keep the
 * test short), each kind; then layouts; then 1024 pages. */
static void test_round_trips(const lm__codec_ops *ops)
{
	static const uint32_t sizes[] = {4096, 65536};
	uint64_t seed = 1;

	for (int z = 0; z < 2; z++)
		for (int k = 0; k < C_COUNT; k++) {
			uint32_t counts[3] = {1, 3, z && k != C_MIXED ? 16 : 128};
			for (int j = 0; j < 3; j++) {
				trip t = {sizes[z], counts[j], k, 0, 1, 1, k != C_RANDOM && k != C_MIXED};
				round_trip(ops, &t, seed++);
			}
		}
	/* Contiguous on one side or both: the format must not depend on it. */
	for (int z = 0; z < 2; z++)
		for (int m = 0; m < 3; m++) {
			trip t = {sizes[z], z ? 16 : 128, C_MIXED, 0, m != 1, m != 2, 0};
			round_trip(ops, &t, seed++);
		}
	/* The receiver's hard cap: 1024 pages. */
	for (int k = 0; k < C_COUNT; k++) {
		trip t = {4096, LM_MAX_PACKET_PAGES, k, 0, 1, 1, k != C_RANDOM};
		round_trip(ops, &t, seed++);
	}
	trip big = {65536, LM_MAX_PACKET_PAGES, C_MIXED, 0, 1, 0, 1};
	round_trip(ops, &big, seed++);
}

/* Below the minimum, the default, typical ones and above the maximum: all
 * are clamped. Text must shrink at the default level and at 1..9; extreme
 * levels (zlib's stored 0, lz4's top acceleration) may not. */
static void test_levels(const lm__codec_ops *ops)
{
	static const int levels[] = {INT_MIN, -131072, -100, -5, -1, 0, 1, 3, 9, 22, 100, INT_MAX};
	uint64_t seed = 1000;

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		int typical = levels[i] >= 0 && levels[i] <= 9;
		trip small = {4096, 3, C_TEXT, levels[i], 1, 1, typical};
		trip pkt = {4096, 128, C_MIXED, levels[i], 1, 1, 0};
		round_trip(ops, &small, seed++);
		round_trip(ops, &pkt, seed++);
	}
}

/* ---- rejects ------------------------------------------------------------------ */

typedef struct frame {
	uint8_t *p;
	size_t len;
	pool src;
} frame;

/* A valid payload of n pages of kind (the content stays in f->src). */
static int make_frame(codec *c, frame *f, uint32_t ps, uint32_t n, int kind, uint64_t seed)
{
	uint64_t s = seed;
	uint32_t *lens = malloc(sizeof(*lens) * n);
	int rc;

	f->p = malloc(c->ops->payload_bound(ps, n));
	if (!lens || !f->p || pool_new(&f->src, n, ps, 1, &s)) {
		free(lens);
		return -1;
	}
	pool_fill(&f->src, kind, &s);
	rc = c->ops->encode(c->ctx, (const void *const *)f->src.pages, n, ps, f->p,
			    c->ops->payload_bound(ps, n), lens, &f->len);
	free(lens);
	return rc;
}

static void frame_free(frame *f)
{
	free(f->p);
	pool_free(&f->src);
}

static uint32_t *page_lens(uint32_t n, uint32_t ps)
{
	static uint32_t lens[LM_MAX_PACKET_PAGES + 1];

	for (uint32_t i = 0; i < n && i <= LM_MAX_PACKET_PAGES; i++)
		lens[i] = ps;
	return lens;
}

/* Decoding must fail with LM_EDECODE and name the field. */
static void expect_reject(codec *c, const uint8_t *in, size_t len, pool *dst, uint32_t n,
			  const char *what)
{
	lm__err e;
	int rc = decode_copy(c, in, len, page_lens(n, dst->ps), dst, n, &e);

	CHECK_EQ(rc, LM_EDECODE);
	CHECK(names_field(&e));
	if (rc != LM_EDECODE || !names_field(&e))
		fprintf(stderr, "  %s, %s: rc %d \"%s\"\n", c->ops->name, what, rc, e.msg);
}

static void expect_ok(codec *c, const uint8_t *in, size_t len, pool *dst, pool *src, uint32_t n,
		      const char *what)
{
	lm__err e;
	int rc = decode_copy(c, in, len, page_lens(n, dst->ps), dst, n, &e);

	CHECK_EQ(rc, 0);
	CHECK(rc == 0 && pool_equal(src, dst, n));
	if (rc)
		fprintf(stderr, "  %s, %s: rc %d \"%s\"\n", c->ops->name, what, rc, e.msg);
}

/* Flips bytes at every position of small payloads, at many of big ones. */
static void flips(codec *c, frame *f, pool *dst, uint32_t n, uint64_t seed)
{
	uint8_t *p = malloc(f->len);
	uint64_t s = seed;
	size_t tried = 0, ok = 0;

	if (!p)
		return;
	for (size_t k = 0; k < f->len; k++) {
		size_t at = k;
		int bad = 0;
		if (f->len > 1024 && k >= 128 && k < f->len - 64) {
			if (rnd(&s) % (f->len / 128) != 0)
				continue;
		}
		for (int v = 0; v < 2; v++) {
			lm__err e;
			int rc;
			memcpy(p, f->p, f->len);
			p[at] ^= v ? 0xff : (uint8_t)(1u << (rnd(&s) % 8));
			rc = decode_copy(c, p, f->len, page_lens(n, dst->ps), dst, n, &e);
			bad |= rc != 0 && (rc != LM_EDECODE || !names_field(&e));
			ok += rc == 0;
			tried++;
		}
		CHECK(!bad);
		/* The context works again after failures. */
		if (k % 64 == 0)
			expect_ok(c, f->p, f->len, dst, &f->src, n, "after flips");
	}
	printf("  %s flips: %zu payloads of %zu bytes, %zu still decoded\n", c->ops->name, tried,
	       f->len, ok);
	free(p);
}

/* Random bytes of assorted lengths: never a crash, almost always an error. */
static void garbage(codec *c, pool *dst, uint32_t n, uint64_t seed)
{
	uint64_t s = seed;
	uint8_t buf[4096];

	for (int i = 0; i < 300; i++) {
		size_t len = 1 + rnd(&s) % sizeof(buf);
		lm__err e;
		int rc;
		fill_random(buf, len, &s);
		if (i % 3 == 0) /* keep a plausible magic, so the header parsers run */
			memcpy(buf, c->ops->id == LM_CODEC_ZSTD ? "\x28\xb5\x2f\xfd"
				    : c->ops->id == LM_CODEC_LZ4 ? "\x04\x22\x4d\x18" : "\x78\x01",
			       c->ops->id == LM_CODEC_ZLIB ? 2 : 4);
		rc = decode_copy(c, buf, len, page_lens(n, dst->ps), dst, n, &e);
		CHECK(rc == 0 || (rc == LM_EDECODE && names_field(&e)));
	}
}

static void test_rejects_sized(const lm__codec_ops *ops, uint32_t ps, uint32_t n, int kind)
{
	codec c = {0};
	frame f = {0}, more = {0}, fewer = {0};
	pool dst = {0};
	uint64_t s = 77 + n;
	uint8_t *big = NULL;
	uint32_t lens[4];

	if (codec_open(&c, ops, 0, ps, n + 1) || pool_new(&dst, n + 1, ps, 1, &s)) {
		CHECK(!"setup");
		goto out;
	}
	CHECK_EQ(make_frame(&c, &f, ps, n, kind, 11), 0);
	CHECK_EQ(make_frame(&c, &more, ps, n + 1, kind, 12), 0);
	if (n > 1)
		CHECK_EQ(make_frame(&c, &fewer, ps, n - 1, kind, 13), 0);
	big = malloc(2 * f.len + 16);
	if (!big)
		goto out;
	expect_ok(&c, f.p, f.len, &dst, &f.src, n, "valid");
	expect_reject(&c, f.p, 0, &dst, n, "empty");
	expect_reject(&c, f.p, 1, &dst, n, "1 byte");
	expect_reject(&c, f.p, f.len / 2, &dst, n, "half");
	expect_reject(&c, f.p, f.len - 1, &dst, n, "one byte short");
	memcpy(big, f.p, f.len);
	big[f.len] = 0;
	expect_reject(&c, big, f.len + 1, &dst, n, "one byte extra");
	memset(big + f.len, 0, 16);
	expect_reject(&c, big, f.len + 16, &dst, n, "16 zero bytes extra");
	memcpy(big + f.len, f.p, f.len);
	expect_reject(&c, big, 2 * f.len, &dst, n, "a second frame");
	expect_reject(&c, more.p, more.len, &dst, n, "a frame of n + 1 pages");
	if (n > 1)
		expect_reject(&c, fewer.p, fewer.len, &dst, n, "a frame of n - 1 pages");
	if (n > 1)
		expect_reject(&c, f.p, f.len, &dst, n - 1, "decoded as n - 1 pages");
	expect_reject(&c, f.p, f.len, &dst, n + 1, "decoded as n + 1 pages");
	/* Lengths other than page_size (the wire decoder refuses them too). */
	if (n <= 4) {
		lm__err e;
		for (uint32_t i = 0; i < n; i++)
			lens[i] = i == n - 1 ? ps - 1 : ps;
		CHECK_EQ(decode_copy(&c, f.p, f.len, lens, &dst, n, &e), LM_EDECODE);
	}
	/* No pages: only an empty payload. */
	{
		lm__err e;
		CHECK_EQ(ops->decode(c.ctx, f.p, f.len, lens, dst.pages, 0, ps, &e), LM_EDECODE);
		CHECK_EQ(ops->decode(c.ctx, f.p, 0, lens, dst.pages, 0, ps, &e), 0);
	}
	flips(&c, &f, &dst, n, 99 + n);
	garbage(&c, &dst, n, 5 + n);
	expect_ok(&c, f.p, f.len, &dst, &f.src, n, "after rejects");
out:
	free(big);
	frame_free(&f);
	frame_free(&more);
	frame_free(&fewer);
	pool_free(&dst);
	codec_close(&c);
}

/* The wire leaves offsets unchecked: a packet may name one page several
 * times. Decoding then writes it each time (the last copy wins) and must
 * not take history from a page it has rewritten since. */
static void test_aliased(const lm__codec_ops *ops, uint32_t ps)
{
	codec c = {0};
	frame f = {0};
	pool dst = {0};
	uint64_t s = 8;
	lm__err e;

	if (codec_open(&c, ops, 0, ps, 3) || pool_new(&dst, 3, ps, 1, &s) ||
	    make_frame(&c, &f, ps, 3, C_TEXT, 31)) {
		CHECK(!"setup");
		goto out;
	}
	dst.pages[1] = dst.pages[2] = dst.pages[0];
	CHECK_EQ(ops->decode(c.ctx, f.p, f.len, page_lens(3, ps), dst.pages, 3, ps, &e), 0);
	CHECK(memcmp(dst.pages[0], f.src.pages[2], ps) == 0);
out:
	frame_free(&f);
	pool_free(&dst);
	codec_close(&c);
}

/* ---- foreign frames: the libraries' own encoders ------------------------------ */

/* Contiguous copy of the source pages, as a one-shot encoder wants them. */
static uint8_t *flat(const pool *src)
{
	uint8_t *p = malloc((size_t)src->n * src->ps);

	for (uint32_t i = 0; p && i < src->n; i++)
		memcpy(p + (size_t)i * src->ps, src->pages[i], src->ps);
	return p;
}

enum { Z_ONESHOT, Z_NO_SIZE, Z_STREAMED };

/* Z_ONESHOT: ZSTD_compress2 (content size, window = the input); Z_NO_SIZE:
 * one ZSTD_e_end call without the content size (window = the input rounded
 * up to a power of two); Z_STREAMED: size unknown, the level's window. */
static size_t zstd_frame(const uint8_t *in, size_t len, uint8_t *out, size_t cap, int mode,
			 int checksum)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_inBuffer ib = {in, len, 0};
	ZSTD_outBuffer ob = {out, cap, 0};
	size_t r;

	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, mode == Z_ONESHOT);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, checksum);
	if (mode == Z_ONESHOT) {
		r = ZSTD_compress2(cc, out, cap, in, len);
	} else {
		r = ZSTD_compressStream2(cc, &ob, &ib, mode == Z_NO_SIZE ? ZSTD_e_end
								  : ZSTD_e_continue);
		if (!ZSTD_isError(r) && mode == Z_STREAMED)
			r = ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end);
		r = ZSTD_isError(r) || r ? 0 : ob.pos;
	}
	ZSTD_freeCCtx(cc);
	return ZSTD_isError(r) ? 0 : r;
}

static void foreign_zstd(codec *c, frame *f, pool *dst, const uint8_t *in, uint8_t *out,
			 size_t cap, uint32_t n)
{
	size_t len = f->src.ps * (size_t)n, k;

	k = zstd_frame(in, len, out, cap, Z_ONESHOT, 0);
	expect_ok(c, out, k, dst, &f->src, n, "ZSTD_compress2 frame");
	k = zstd_frame(in, len, out, cap, Z_ONESHOT, 1);
	expect_ok(c, out, k, dst, &f->src, n, "frame with a checksum");
	out[k - 1] ^= 1;
	expect_reject(c, out, k, dst, n, "frame with a wrong checksum");
	k = zstd_frame(in, len, out, cap, Z_NO_SIZE, 0);
	if (len & (len - 1))
		expect_reject(c, out, k, dst, n, "window above the packet");
	else
		expect_ok(c, out, k, dst, &f->src, n, "no content size, window = the packet");
	k = zstd_frame(in, len, out, cap, Z_STREAMED, 0);
	expect_reject(c, out, k, dst, n, "streamed, 2 MiB window");
	/* A skippable frame (magic 0x184D2A50, size 4) then nothing. */
	memcpy(out, "\x50\x2a\x4d\x18\x04\x00\x00\x00" "abcd", 12);
	expect_reject(c, out, 12, dst, n, "skippable frame");
}

static size_t lz4_streamed(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
			   const LZ4F_preferences_t *p)
{
	LZ4F_cctx *cc;
	size_t k = 0, r;

	if (LZ4F_isError(LZ4F_createCompressionContext(&cc, LZ4F_VERSION)))
		return 0;
	r = LZ4F_compressBegin(cc, out, cap, p);
	if (!LZ4F_isError(r) && !LZ4F_isError(k = LZ4F_compressUpdate(cc, out + r, cap - r, in, len,
								       NULL))) {
		k += r;
		r = LZ4F_compressEnd(cc, out + k, cap - k, NULL);
		k = LZ4F_isError(r) ? 0 : k + r;
	} else {
		k = 0;
	}
	LZ4F_freeCompressionContext(cc);
	return k;
}

static void foreign_lz4(codec *c, frame *f, pool *dst, const uint8_t *in, uint8_t *out,
			size_t cap, uint32_t n)
{
	LZ4F_preferences_t p;
	size_t len = f->src.ps * (size_t)n, k;

	memset(&p, 0, sizeof(p));
	k = LZ4F_compressFrame(out, cap, in, len, NULL);
	expect_ok(c, out, k, dst, &f->src, n, "LZ4F_compressFrame, defaults");
	p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	p.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
	p.frameInfo.blockMode = LZ4F_blockIndependent;
	p.frameInfo.contentSize = len;
	k = LZ4F_compressFrame(out, cap, in, len, &p);
	expect_ok(c, out, k, dst, &f->src, n, "checksums, independent blocks");
	out[k - 1] ^= 1;
	expect_reject(c, out, k, dst, n, "wrong content checksum");
	/* 4 MiB blocks (LZ4F_compressFrame would shrink them to the input). */
	memset(&p, 0, sizeof(p));
	p.frameInfo.blockSizeID = LZ4F_max4MB;
	k = lz4_streamed(in, len, out, cap, &p);
	if (len < (4u << 20))
		expect_reject(c, out, k, dst, n, "blocks above the packet");
	memcpy(out, "\x50\x2a\x4d\x18\x04\x00\x00\x00" "abcd", 12);
	expect_reject(c, out, 12, dst, n, "skippable frame");
}

static size_t zlib_stream(const uint8_t *in, size_t len, uint8_t *out, size_t cap, int wbits,
			  int dict)
{
	z_stream z;
	size_t r = 0;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return 0;
	if (dict)
		deflateSetDictionary(&z, (const Bytef *)"the memory page", 15);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) == Z_STREAM_END)
		r = z.total_out;
	deflateEnd(&z);
	return r;
}

static void foreign_zlib(codec *c, frame *f, pool *dst, const uint8_t *in, uint8_t *out,
			 size_t cap, uint32_t n)
{
	size_t len = f->src.ps * (size_t)n, k;
	uLongf got = cap;

	CHECK_EQ(compress2(out, &got, in, len, 9), Z_OK);
	expect_ok(c, out, got, dst, &f->src, n, "compress2 level 9");
	out[got - 1] ^= 1;
	expect_reject(c, out, got, dst, n, "wrong adler32");
	k = zlib_stream(in, len, out, cap, 9, 0);
	expect_ok(c, out, k, dst, &f->src, n, "512-byte window");
	k = zlib_stream(in, len, out, cap, -15, 0);
	expect_reject(c, out, k, dst, n, "raw deflate");
	k = zlib_stream(in, len, out, cap, 31, 0);
	expect_reject(c, out, k, dst, n, "gzip");
	k = zlib_stream(in, len, out, cap, 15, 1);
	expect_reject(c, out, k, dst, n, "preset dictionary");
}

static void test_foreign(const lm__codec_ops *ops, uint32_t ps, uint32_t n)
{
	codec c = {0};
	frame f = {0};
	pool dst = {0};
	uint64_t s = 3;
	size_t cap = 2 * (size_t)ps * n + 65536;
	uint8_t *in = NULL, *out = malloc(cap);
	int mr;

	if (!out || codec_open(&c, ops, 0, ps, n) || pool_new(&dst, n, ps, 1, &s) ||
	    ((mr = make_frame(&c, &f, ps, n, C_MIXED, 21)) && mr != LM_ECODEC) ||
	    !(in = flat(&f.src))) {
		CHECK(!"setup");
		goto out;
	}
	if (ops->id == LM_CODEC_ZSTD)
		foreign_zstd(&c, &f, &dst, in, out, cap, n);
	else if (ops->id == LM_CODEC_LZ4)
		foreign_lz4(&c, &f, &dst, in, out, cap, n);
	else if (ops->id == LM_CODEC_ZLIB)
		foreign_zlib(&c, &f, &dst, in, out, cap, n);
out:
	free(in);
	free(out);
	frame_free(&f);
	pool_free(&dst);
	codec_close(&c);
}

/* none decodes exactly n raw pages. */
static void test_none(void)
{
	codec c = {0};
	pool dst = {0}, src = {0};
	uint64_t s = 4;
	uint8_t *raw = NULL;

	if (codec_open(&c, &lm__codec_none, 0, 4096, 3) || pool_new(&src, 3, 4096, 1, &s) ||
	    pool_new(&dst, 4, 4096, 1, &s) || !(raw = malloc(4 * 4096))) {
		CHECK(!"setup");
		goto out;
	}
	pool_fill(&src, C_MIXED, &s);
	for (uint32_t i = 0; i < 3; i++)
		memcpy(raw + i * 4096, src.pages[i], 4096);
	expect_ok(&c, raw, 3 * 4096, &dst, &src, 3, "raw pages");
	expect_reject(&c, raw, 3 * 4096 - 1, &dst, 3, "short");
	expect_reject(&c, raw, 0, &dst, 3, "empty");
	expect_reject(&c, raw, 3 * 4096, &dst, 4, "one page short");
	expect_reject(&c, raw, 4 * 4096, &dst, 3, "one page more");
out:
	free(raw);
	pool_free(&src);
	pool_free(&dst);
	codec_close(&c);
}

/* ---- end to end --------------------------------------------------------------- */

#define E2E_LEN (32u << 20)
#define E2E_PACKET 128u /* LM_DEFAULT_PACKET_PAGES */

/* 32 MiB: every 8th packet random (it cannot shrink: raw), the others a
 * mix of text, records and sparse pages with a few zero pages. Returns the
 * number of random (raw) packets; *normal gets the non-zero pages. */
static uint32_t e2e_fill(uint8_t *p, uint64_t *normal)
{
	uint64_t s = 0xfeed;
	uint32_t pages = E2E_LEN / 4096, rand_packets = 0;

	*normal = 0;
	for (uint32_t i = 0; i < pages; i++) {
		uint32_t pkt = i / E2E_PACKET;
		int kind = pkt % 8 == 3 ? C_RANDOM : (int)(rnd(&s) % 3);
		if (kind != C_RANDOM && rnd(&s) % 10 == 0)
			continue; /* a zero page */
		fill_page(p + (size_t)i * 4096, 4096, kind, i, &s);
		(*normal)++;
		rand_packets += kind == C_RANDOM && i % E2E_PACKET == 0;
	}
	return rand_packets;
}

static const lm_engine_stats *find_engine(const lm_stats *st, const char *name)
{
	for (uint32_t i = 0; i < st->n_engines; i++)
		if (!strcmp(st->engines[i].name, name))
			return &st->engines[i];
	return NULL;
}

static void e2e_check_stats(const lm__codec_ops *ops, const lm_stats *ss, const lm_stats *rs,
			    uint32_t rand_packets, uint64_t normal)
{
	const lm_engine_stats *se = find_engine(ss, ops->name), *re = find_engine(rs, ops->name);
	uint32_t packets = E2E_LEN / 4096 / E2E_PACKET;

	CHECK_EQ(ss->codec, ops->id);
	CHECK_EQ(ss->normal_pages, normal);
	CHECK_EQ(rs->normal_pages, normal);
	CHECK_EQ(ss->payload_bytes, rs->payload_bytes);
	CHECK(ss->compression_ratio > 1.5);
	CHECK(rs->compression_ratio > 1.5);
	if (ops->per_page) { /* engines have their own names */
		CHECK(ss->n_engines > 0 && ss->engines[0].jobs > 0);
		return;
	}
	CHECK(se != NULL && re != NULL);
	if (!se || !re)
		return;
	/* Every packet had normal pages; the random ones went raw. */
	CHECK_EQ(se->jobs, packets);
	CHECK_EQ(se->raw, (uint64_t)rand_packets * E2E_PACKET);
	CHECK_EQ(se->bytes_in, normal * 4096);
	CHECK_EQ(re->jobs, packets - rand_packets); /* raw packets skip the codec */
	CHECK_EQ(re->raw, 0);
	CHECK_EQ(re->bytes_out, (normal - (uint64_t)rand_packets * E2E_PACKET) * 4096);
	CHECK_EQ(re->bytes_in + (uint64_t)rand_packets * E2E_PACKET * 4096, rs->payload_bytes);
	printf("  %s end to end: ratio %.2f, %llu packets, %llu raw pages, %llu -> %llu bytes\n",
	       ops->name, ss->compression_ratio, (unsigned long long)se->jobs,
	       (unsigned long long)se->raw, (unsigned long long)se->bytes_in,
	       (unsigned long long)se->bytes_out);
}

static void test_e2e(const lm__codec_ops *ops, const uint8_t *src, uint32_t rand_packets,
		     uint64_t normal)
{
	lm_receiver_config rc = LM_RECEIVER_CONFIG_INIT;
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	lm_receiver *r = NULL;
	lm_sender *s = NULL;
	uint8_t *dst = mmap(NULL, E2E_LEN, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	rx_ctx ctx = {0};
	pthread_t t;
	char addr[64];
	lm_stats ss = LM_STATS_INIT, rs = LM_STATS_INIT;
	int src_rc;

	CHECK(dst != MAP_FAILED);
	if (dst == MAP_FAILED)
		return;
	rc.timeout_ms = rc.accept_timeout_ms = 10000;
	rc.accel = LM_ACCEL_OFF; /* see codec_open() */
	CHECK_EQ(lm_receiver_new(&r, &rc), 0);
	CHECK_EQ(lm_receiver_add_region(r, "ram", dst, E2E_LEN, 1), 0);
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lm_receiver_port(r));
	ctx.r = r;
	pthread_create(&t, NULL, rx_thread, &ctx);
	sc.channels = 2;
	/* Exact page counts: every copy of a page travels (dedup has its own test). */
	sc.no_dedup = 1;
	sc.codec = (lm_codec_id)ops->id;
	sc.timeout_ms = 10000;
	sc.accel = LM_ACCEL_OFF;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", src, E2E_LEN), 0);
	src_rc = lm_sender_connect(s, addr);
	if (!src_rc)
		src_rc = lm_sender_run(s);
	CHECK_EQ(src_rc, 0);
	if (src_rc)
		fprintf(stderr, "  %s sender: %s\n", ops->name, lm_sender_errmsg(s));
	pthread_join(t, NULL);
	CHECK_EQ(ctx.rc, 0);
	if (ctx.rc)
		fprintf(stderr, "  %s receiver: %s\n", ops->name, lm_receiver_errmsg(r));
	CHECK(memcmp(src, dst, E2E_LEN) == 0);
	lm_sender_stats(s, &ss);
	lm_receiver_stats(r, &rs);
	CHECK_EQ(ss.status, LM_STATUS_COMPLETED);
	CHECK_EQ(rs.status, LM_STATUS_COMPLETED);
	e2e_check_stats(ops, &ss, &rs, rand_packets, normal);
	lm_sender_free(s);
	lm_receiver_free(r);
	munmap(dst, E2E_LEN);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- main ----------------------------------------------------------------------- */

int main(void)
{
	uint8_t *src;
	uint64_t normal;
	uint32_t rand_packets;

	sys_page = (size_t)sysconf(_SC_PAGESIZE);
	if (corpus_init()) {
		CHECK(!"out of memory");
		TEST_DONE("test_codecs");
	}
	test_none();
	for (uint16_t id = 0; id < 16; id++) {
		const lm__codec_ops *ops = lm__codec_get(id);
		if (!ops)
			continue;
		double t0 = now(), t1, t2;
		printf("codec %u %s\n", id, ops->name);
		CHECK_EQ(ops->id, id);
		CHECK(lm__codec_payload_bound(4096, 128) >= ops->payload_bound(4096, 128));
		test_round_trips(ops);
		t1 = now();
		test_levels(ops);
		t2 = now();
		if (!ops->raw_only && !ops->per_page) {
			test_rejects_sized(ops, 4096, 1, C_TEXT);
			test_rejects_sized(ops, 4096, 3, C_MIXED);
			test_rejects_sized(ops, 4096, 128, C_TEXT);
			test_rejects_sized(ops, 65536, 3, C_BINARY);
			test_aliased(ops, 4096);
			test_aliased(ops, 65536);
			test_foreign(ops, 4096, 3);
			test_foreign(ops, 4096, 128);
			test_foreign(ops, 65536, 16);
		}
		printf("  %s: round trips %.2f s, levels %.2f s, rejects %.2f s\n", ops->name,
		       t1 - t0, t2 - t1, now() - t2);
	}
	src = mmap(NULL, E2E_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(src != MAP_FAILED);
	if (src == MAP_FAILED)
		TEST_DONE("test_codecs");
	rand_packets = e2e_fill(src, &normal);
	for (uint16_t id = 1; id < 16; id++) {
		const lm__codec_ops *ops = lm__codec_get(id);
		double t0 = now();
		if (!ops)
			continue;
		test_e2e(ops, src, rand_packets, normal);
		printf("  %s end to end: %.2f s\n", ops->name, now() - t0);
	}
	munmap(src, E2E_LEN);
	corpus_free();
	TEST_DONE("test_codecs");
}
