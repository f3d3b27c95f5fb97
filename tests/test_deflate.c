/*
 * The per-page deflate codec and its engines:
 *  - engines isal and zlib: round trips on text, binary, same-byte and
 *    mixed pages at 4, 16 and 64 KiB, each engine's pages decoded by the
 *    other, incompressible pages refused (they go raw), output never past
 *    out_cap (guard pages), decode rejections (every truncation, trailing
 *    bytes, fewer or more than a page, concatenated streams, garbage);
 *  - interop with zlib as an independent implementation: the codec's pages
 *    inflate with zlib (windowBits -15), zlib's raw deflate at every
 *    level/strategy decodes through the codec;
 *  - the accelerator -> software -> raw chain with the scripted accelerator
 *    (tests/accel_script.h): busy retries counted and capped, software for
 *    exactly the refused pages, failed / lost jobs to software, late
 *    completions waited for, raw for incompressible pages, batches of
 *    max_jobs, the same on decode; every counter exact, every decoded page
 *    identical, which engine made each page checked byte for byte;
 *  - context creation: required accelerator missing -> LM_ECODEC, engines;
 *  - codec decode rejections with guard pages around every page;
 *  - send -> recv over loopback, 2 channels, codec deflate, the scripted
 *    accelerator on both sides: identical memory, engine statistics.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "accel_script.h"
#include "check.h"
#include "codec/codec.h"
#include "engine/engine.h"
#include "livemig.h"
#include "receiver/receiver.h"
#include "sender/sender.h"
#include "wire.h"
#include "test_util.h"

#ifdef LM_HAVE_QPL
/* Sanitizer builds with QPL: its first hardware probe (LM_ACCEL_AUTO/QPL
 * without an injected accelerator) leaves 88 bytes in QPL's process-wide
 * hardware dispatcher; QPL's, not livemig's (as in tests/test_qpl.c). */
const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);
const char *__asan_default_options(void) { return "fast_unwind_on_malloc=0"; }
const char *__lsan_default_suppressions(void)
{
	return "leak:qpl::ml::dispatcher::hw_dispatcher::initialize_hw\n";
}
#endif

/* ---- pages ----------------------------------------------------------------- */

enum { K_TEXT, K_BIN, K_RAND, K_SAME, K_HALF, K_ZERO, K_COUNT };

static uint64_t rng(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static const char *const words[] = {
	"the", "memory", "page", "kernel", "migration", "channel", "of", "and", "to", "a",
	"compress", "guest", "host", "buffer", "queue", "device", "in", "is", "for", "data",
	"struct", "return", "int", "static", "void", "if", "else", "while", "const", "size_t",
};

static void gen_page(uint8_t *p, uint32_t ps, int kind, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x1234567;
	uint32_t i = 0;

	switch (kind) {
	case K_TEXT:
		while (i < ps) {
			const char *w = words[rng(&x) % 30];
			size_t n = strlen(w);
			for (size_t k = 0; k < n && i < ps; k++)
				p[i++] = (uint8_t)w[k];
			if (i < ps)
				p[i++] = rng(&x) % 11 == 0 ? '\n' : ' ';
			if (rng(&x) % 17 == 0)
				for (int d = 0; d < 4 && i < ps; d++)
					p[i++] = (uint8_t)('0' + rng(&x) % 10);
		}
		break;
	case K_BIN: { /* records: counters, pointers, flags, padding */
		uint64_t base = 0x00007f0000000000ull + (rng(&x) & 0xffffff000ull);
		uint32_t ctr = (uint32_t)rng(&x);
		while (i + 32 <= ps) {
			uint64_t ptr = base + (rng(&x) % 4096) * 64;
			uint32_t fl = (uint32_t)(rng(&x) % 4);
			memcpy(p + i, &ptr, 8);
			memcpy(p + i + 8, &ctr, 4);
			memcpy(p + i + 12, &fl, 4);
			memset(p + i + 16, 0, 16);
			ctr += 1 + (uint32_t)(rng(&x) % 3);
			i += 32;
		}
		memset(p + i, 0, ps - i);
		break;
	}
	case K_RAND:
		for (; i + 8 <= ps; i += 8) {
			uint64_t v = rng(&x);
			memcpy(p + i, &v, 8);
		}
		break;
	case K_SAME:
		memset(p, (int)(0x41 + seed % 50), ps);
		break;
	case K_HALF:
		gen_page(p, ps / 2, K_TEXT, seed);
		gen_page(p + ps / 2, ps / 2, K_RAND, seed + 1);
		break;
	default:
		memset(p, 0, ps);
	}
}

/* ---- guarded memory: PROT_NONE pages on both sides ------------------------ */

typedef struct gmap {
	uint8_t *base;
	size_t len;
} gmap;

/* size bytes whose end touches a PROT_NONE page (and, for page multiples,
 * whose start does too). */
static uint8_t *guarded(gmap *g, size_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), body = (size + pg - 1) / pg * pg;

	if (!body)
		body = pg;
	g->len = body + 2 * pg;
	g->base = mmap(NULL, g->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->base == MAP_FAILED || mprotect(g->base + pg, body, PROT_READ | PROT_WRITE)) {
		fprintf(stderr, "guarded: mmap failed\n");
		exit(1);
	}
	return g->base + pg + body - size;
}

static void unguard(gmap *g)
{
	munmap(g->base, g->len);
}

/* ---- engines --------------------------------------------------------------- */

static const lm__engine_ops *const sw_engines[] = {&lm__engine_isal, &lm__engine_zlib};

static int eng_run(const lm__engine_ops *ops, void *ctx, int op, const uint8_t *in, uint32_t in_len,
		   uint8_t *out, uint32_t cap, uint32_t *out_len)
{
	lm__engine_job j = {.op = op, .in = in, .in_len = in_len, .out = out, .out_cap = cap};
	int rc = ops->execute(ctx, &j);

	*out_len = j.out_len;
	return rc;
}

/* Decodes in[0, len) with both engines into a guarded page; expect: the
 * page (success) or NULL (rejection). */
static void decode_both(void *const *ctx, uint32_t ps, const uint8_t *in, uint32_t len,
			const uint8_t *expect, const char *what)
{
	gmap gi, go;
	uint8_t *src = guarded(&gi, len), *dst = guarded(&go, ps);
	uint32_t ol;

	memcpy(src, in, len);
	for (int d = 0; d < 2; d++) {
		int rc = eng_run(sw_engines[d], ctx[d], LM_ENGINE_DECOMPRESS, src, len, dst, ps, &ol);
		if (expect) {
			CHECK_EQ(rc, 0);
			CHECK_EQ(ol, ps);
			CHECK(memcmp(dst, expect, ps) == 0);
		} else {
			CHECK(rc != 0);
			CHECK_EQ(ol, 0);
		}
		if ((rc == 0) != (expect != NULL))
			fprintf(stderr, "  %s, decoder %s: rc %d\n", what, sw_engines[d]->name, rc);
	}
	unguard(&gi);
	unguard(&go);
}

/* 1 when in[0, len) is raw DEFLATE of exactly the ps bytes at expect
 * (zlib's inflate, independent of the engines). */
static int zinflate_is(const uint8_t *in, uint32_t len, const uint8_t *expect, uint32_t ps)
{
	z_stream z;
	uint8_t *buf = malloc(ps + 1);
	int rc, ok;

	memset(&z, 0, sizeof(z));
	if (!buf || inflateInit2(&z, -15) != Z_OK) {
		free(buf);
		return 0;
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = len;
	z.next_out = buf;
	z.avail_out = ps + 1;
	rc = inflate(&z, Z_FINISH);
	ok = rc == Z_STREAM_END && z.total_out == ps && memcmp(buf, expect, ps) == 0;
	inflateEnd(&z);
	free(buf);
	return ok;
}

/* zlib raw deflate of in (independent of the engines): returns the length,
 * 0 if it does not fit in cap. */
static uint32_t zdeflate(const uint8_t *in, uint32_t len, uint8_t *out, uint32_t cap, int level,
			 int strategy)
{
	z_stream z;
	uint32_t n = 0;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, level, Z_DEFLATED, -15, 8, strategy) != Z_OK)
		return 0;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = len;
	z.next_out = out;
	z.avail_out = cap;
	if (deflate(&z, Z_FINISH) == Z_STREAM_END)
		n = (uint32_t)z.total_out;
	deflateEnd(&z);
	return n;
}

/* zlib raw inflate: 1 when in is one stream of exactly ps bytes. */
static int zinflate(const uint8_t *in, uint32_t len, uint8_t *out, uint32_t ps)
{
	z_stream z;
	int ok;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -15) != Z_OK)
		return 0;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = len;
	z.next_out = out;
	z.avail_out = ps;
	ok = inflate(&z, Z_FINISH) == Z_STREAM_END && z.avail_in == 0 && z.total_out == ps;
	inflateEnd(&z);
	return ok;
}

static void test_engine_roundtrips(uint32_t ps)
{
	void *ctx[2];
	uint8_t *page = malloc(ps), *buf = malloc(2 * ps);
	gmap go;
	uint8_t *out = guarded(&go, ps - 1); /* compress output ends at a guard */

	CHECK_EQ(lm__engine_isal.ctx_new(&ctx[0], 0, ps, 1), 0);
	CHECK_EQ(lm__engine_zlib.ctx_new(&ctx[1], 0, ps, 1), 0);
	CHECK_EQ(lm__engine_isal.hw, 0);
	CHECK_EQ(lm__engine_zlib.hw, 0);
	CHECK(lm__engine_isal.available());
	CHECK(lm__engine_zlib.available());
	for (int kind = 0; kind < K_COUNT; kind++) {
		for (uint64_t seed = 1; seed <= 3; seed++) {
			gen_page(page, ps, kind, seed);
			for (int e = 0; e < 2; e++) {
				uint32_t ol = 77;
				int rc = eng_run(sw_engines[e], ctx[e], LM_ENGINE_COMPRESS, page, ps, out,
						 ps - 1, &ol);
				if (kind == K_RAND) { /* incompressible: does not fit, raw */
					CHECK_EQ(rc, LM_ECODEC);
					CHECK_EQ(ol, 0);
					continue;
				}
				CHECK_EQ(rc, 0);
				CHECK(ol > 0 && ol < ps);
				if (kind == K_TEXT || kind == K_BIN)
					CHECK(ol < ps / 2);
				if (kind == K_SAME || kind == K_ZERO)
					CHECK(ol < 64 + ps / 256);
				if (kind == K_HALF)
					CHECK(ol > ps / 2 && ol < ps - ps / 8);
				/* Each engine's page decodes with both (cross). */
				memcpy(buf, out, ol);
				decode_both(ctx, ps, buf, ol, page, "roundtrip");
				/* And with zlib itself. */
				CHECK(zinflate(buf, ol, buf + ps, ps));
				CHECK(memcmp(buf + ps, page, ps) == 0);
			}
		}
	}
	lm__engine_isal.ctx_free(ctx[0]);
	lm__engine_zlib.ctx_free(ctx[1]);

	/* Other levels of both engines: still raw deflate both decode. */
	gen_page(page, ps, K_TEXT, 9);
	for (int lvl = -1; lvl <= 12; lvl++) {
		void *dc[2];
		for (int e = 0; e < 2; e++) {
			void *c;
			uint32_t ol;
			CHECK_EQ(sw_engines[e]->ctx_new(&c, lvl, ps, 1), 0);
			CHECK_EQ(eng_run(sw_engines[e], c, LM_ENGINE_COMPRESS, page, ps, out, ps - 1, &ol),
				 0);
			CHECK_EQ(lm__engine_isal.ctx_new(&dc[0], 0, ps, 1), 0);
			CHECK_EQ(lm__engine_zlib.ctx_new(&dc[1], 0, ps, 1), 0);
			memcpy(buf, out, ol);
			decode_both(dc, ps, buf, ol, page, "level");
			lm__engine_isal.ctx_free(dc[0]);
			lm__engine_zlib.ctx_free(dc[1]);
			sw_engines[e]->ctx_free(c);
		}
	}
	/* Contexts are reused: many pages through one context stay right. */
	CHECK_EQ(lm__engine_isal.ctx_new(&ctx[0], 1, ps, 1), 0);
	CHECK_EQ(lm__engine_zlib.ctx_new(&ctx[1], 1, ps, 1), 0);
	for (int r = 0; r < 40; r++) {
		uint32_t ol;
		int e = r % 2, kind = r % 5;
		gen_page(page, ps, kind, (uint64_t)r + 100);
		int rc = eng_run(sw_engines[e], ctx[e], LM_ENGINE_COMPRESS, page, ps, out, ps - 1, &ol);
		CHECK_EQ(rc, kind == K_RAND ? LM_ECODEC : 0);
		if (rc == 0) {
			uint32_t dl;
			CHECK_EQ(eng_run(sw_engines[1 - e], ctx[1 - e], LM_ENGINE_DECOMPRESS, out, ol,
					 buf, ps, &dl),
				 0);
			CHECK(dl == ps && memcmp(buf, page, ps) == 0);
		}
	}
	/* Contract: bad arguments are errors, not crashes. */
	{
		lm__engine_job j = {.op = 7, .in = page, .in_len = ps, .out = out, .out_cap = ps - 1};
		CHECK_EQ(lm__engine_isal.execute(NULL, &j), LM_EINVAL);
		CHECK_EQ(lm__engine_zlib.execute(ctx[1], NULL), LM_EINVAL);
		CHECK_EQ(lm__engine_isal.execute(ctx[0], &j), LM_EINVAL); /* unknown op */
		CHECK_EQ(lm__engine_zlib.execute(ctx[1], &j), LM_EINVAL);
		CHECK_EQ(j.out_len, 0);
		j.op = LM_ENGINE_DECOMPRESS;
		j.out_cap = ps - 1; /* less than a page: refused */
		CHECK_EQ(lm__engine_zlib.execute(ctx[1], &j), LM_EDECODE);
		CHECK_EQ(lm__engine_isal.execute(ctx[0], &j), LM_EDECODE);
		CHECK_EQ(j.out_len, 0);
		void *x = (void *)1;
		CHECK_EQ(lm__engine_isal.ctx_new(&x, 1, 0, 1), LM_EINVAL);
		CHECK(x == NULL);
	}
	lm__engine_isal.ctx_free(ctx[0]);
	lm__engine_zlib.ctx_free(ctx[1]);
	lm__engine_isal.ctx_free(NULL);
	lm__engine_zlib.ctx_free(NULL);
	unguard(&go);
	free(page);
	free(buf);
}

static void test_engine_rejections(uint32_t ps)
{
	void *ctx[2];
	uint8_t *page = malloc(2 * ps), *buf = malloc(4 * ps);
	uint64_t x = 77;
	uint32_t n;

	CHECK_EQ(lm__engine_isal.ctx_new(&ctx[0], 0, ps, 1), 0);
	CHECK_EQ(lm__engine_zlib.ctx_new(&ctx[1], 0, ps, 1), 0);
	gen_page(page, ps, K_BIN, 5);
	n = zdeflate(page, ps, buf, 2 * ps, 1, Z_DEFAULT_STRATEGY);
	CHECK(n > 10 && n < ps);
	decode_both(ctx, ps, buf, n, page, "valid");
	/* Every truncation. */
	for (uint32_t t = 0; t < n; t++)
		decode_both(ctx, ps, buf, t, NULL, "truncated");
	/* Trailing bytes: zeros, random, a second stream. */
	for (uint32_t extra = 1; extra <= 9; extra++) {
		memset(buf + n, extra & 1 ? 0 : 0xA5, extra);
		decode_both(ctx, ps, buf, n + extra, NULL, "trailing");
	}
	/* Decodes to fewer than a page. */
	n = zdeflate(page, ps / 2, buf, 2 * ps, 1, Z_DEFAULT_STRATEGY);
	decode_both(ctx, ps, buf, n, NULL, "half a page");
	n = zdeflate(page, ps - 1, buf, 2 * ps, 6, Z_DEFAULT_STRATEGY);
	decode_both(ctx, ps, buf, n, NULL, "one byte short");
	/* More than a page: the output stops at the guard. */
	gen_page(page + ps, ps, K_TEXT, 6);
	n = zdeflate(page, 2 * ps, buf, 4 * ps, 1, Z_DEFAULT_STRATEGY);
	CHECK(n > 0 && n < ps);
	decode_both(ctx, ps, buf, n, NULL, "two pages");
	n = zdeflate(page, ps + 1, buf, 4 * ps, 9, Z_DEFAULT_STRATEGY);
	decode_both(ctx, ps, buf, n, NULL, "one byte over");
	/* Two streams of half a page each: the first ends the input. */
	{
		uint32_t a = zdeflate(page, ps / 2, buf, 2 * ps, 1, Z_DEFAULT_STRATEGY);
		uint32_t b = zdeflate(page + ps / 2, ps / 2, buf + a, 2 * ps, 1, Z_DEFAULT_STRATEGY);
		decode_both(ctx, ps, buf, a + b, NULL, "two streams");
	}
	/* A stored block (zlib level 0) is valid DEFLATE: it decodes (the
	 * codec never sends it: it is longer than a page). */
	n = zdeflate(page, ps, buf, 4 * ps, 0, Z_DEFAULT_STRATEGY);
	CHECK(n > ps);
	decode_both(ctx, ps, buf, n, page, "stored");
	/* Garbage: random bytes and corrupted streams. */
	for (int r = 0; r < 300; r++) {
		uint32_t len = 1 + (uint32_t)(rng(&x) % (ps / 2));
		for (uint32_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rng(&x);
		if (r % 3 == 0)
			buf[0] = (uint8_t)((buf[0] & ~7u) | 5u); /* final + dynamic block */
		decode_both(ctx, ps, buf, len, NULL, "garbage");
	}
	gen_page(page, ps, K_TEXT, 8);
	n = zdeflate(page, ps, buf, 2 * ps, 1, Z_DEFAULT_STRATEGY);
	for (int r = 0; r < 60; r++) {
		uint8_t *cp = buf + 2 * ps;
		memcpy(cp, buf, n);
		cp[rng(&x) % n] ^= (uint8_t)(1u << (rng(&x) % 8));
		cp[rng(&x) % n] ^= (uint8_t)(1u << (rng(&x) % 8));
		/* A flipped bit may still give a valid page of other bytes; it
		 * must never give anything but exactly one page or an error. */
		gmap gi, gd;
		uint8_t *src = guarded(&gi, n), *dst = guarded(&gd, ps);
		memcpy(src, cp, n);
		for (int d = 0; d < 2; d++) {
			uint32_t ol = 0;
			int rc = eng_run(sw_engines[d], ctx[d], LM_ENGINE_DECOMPRESS, src, n, dst, ps, &ol);
			CHECK(rc == 0 ? ol == ps : ol == 0);
		}
		unguard(&gi);
		unguard(&gd);
	}
	decode_both(ctx, ps, buf, 0, NULL, "empty");
	lm__engine_isal.ctx_free(ctx[0]);
	lm__engine_zlib.ctx_free(ctx[1]);
	free(page);
	free(buf);
}

/* ---- codec helpers ----------------------------------------------------------- */

static const lm_engine_stats zero_stats;

static const lm_engine_stats *stat_of(const lm_engine_stats *st, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(st[i].name, name) == 0)
			return &st[i];
	return &zero_stats;
}

static int codec_new(void **ctx, lm_engine_stats *st, const lm__engine_ops *accel, lm_accel a,
		     lm_engine_id eng, uint32_t retries, uint32_t ps, uint32_t packet_pages)
{
	lm__codec_params p = {
		.level = 0,
		.page_size = ps,
		.packet_pages = packet_pages,
		.accel = a,
		.engine = eng,
		.busy_retries = retries,
		.stats = st,
		.accel_ops = accel,
	};
	if (st)
		memset(st, 0, sizeof(lm_engine_stats) * LM_MAX_ENGINES);
	return lm__codec_deflate.ctx_new(ctx, &p);
}

/* The payload as the sender puts it on the wire: raw pages from the region,
 * encoded ones from the codec's buffer, in page order. */
static size_t wire_payload(uint8_t *dst, const uint8_t *enc, const uint32_t *lens,
			   uint8_t *const *pages, uint32_t n, uint32_t ps)
{
	size_t pos = 0;

	for (uint32_t i = 0; i < n; i++) {
		if (lens[i] == ps) {
			memcpy(dst + pos, pages[i], ps);
		} else {
			memcpy(dst + pos, enc, lens[i]);
			enc += lens[i];
		}
		pos += lens[i];
	}
	return pos;
}

/* n destination pages, each between PROT_NONE pages. */
typedef struct gpages {
	gmap g[64];
	void *p[64];
	uint32_t n;
} gpages;

static void gpages_new(gpages *d, uint32_t n, uint32_t ps)
{
	d->n = n;
	for (uint32_t i = 0; i < n; i++) {
		d->p[i] = guarded(&d->g[i], ps);
		memset(d->p[i], 0xCD, ps);
	}
}

static void gpages_free(gpages *d)
{
	for (uint32_t i = 0; i < d->n; i++)
		unguard(&d->g[i]);
}

typedef struct packet {
	uint32_t n, ps;
	int kind[64];
	uint8_t *pages[64];
	/* Reference outputs: isal (the software engine) and zlib level 1 (the
	 * scripted accelerator); len == ps: does not fit. */
	uint8_t *ref_isal[64], *ref_zlib[64];
	uint32_t len_isal[64], len_zlib[64];
} packet;

static void packet_new(packet *k, uint32_t n, uint32_t ps, const int *kinds, uint64_t seed)
{
	void *ci, *cz;

	k->n = n;
	k->ps = ps;
	lm__engine_isal.ctx_new(&ci, 0, ps, 1);
	lm__engine_zlib.ctx_new(&cz, 1, ps, 1);
	for (uint32_t i = 0; i < n; i++) {
		k->kind[i] = kinds[i];
		k->pages[i] = malloc(ps);
		k->ref_isal[i] = malloc(ps);
		k->ref_zlib[i] = malloc(ps);
		gen_page(k->pages[i], ps, kinds[i], seed + i);
		if (eng_run(&lm__engine_isal, ci, LM_ENGINE_COMPRESS, k->pages[i], ps, k->ref_isal[i],
			    ps - 1, &k->len_isal[i]))
			k->len_isal[i] = ps;
		if (eng_run(&lm__engine_zlib, cz, LM_ENGINE_COMPRESS, k->pages[i], ps, k->ref_zlib[i],
			    ps - 1, &k->len_zlib[i]))
			k->len_zlib[i] = ps;
	}
	lm__engine_isal.ctx_free(ci);
	lm__engine_zlib.ctx_free(cz);
}

static void packet_free(packet *k)
{
	for (uint32_t i = 0; i < k->n; i++) {
		free(k->pages[i]);
		free(k->ref_isal[i]);
		free(k->ref_zlib[i]);
	}
}

/* Decodes (in, lens) with a fresh software-only context of engine eng into
 * guarded pages and compares with the packet. */
static void check_decodes(const packet *k, const uint8_t *in, size_t in_len, const uint32_t *lens,
			  lm_engine_id eng)
{
	void *ctx;
	gpages d;
	lm__err e = {0};

	CHECK_EQ(codec_new(&ctx, NULL, NULL, LM_ACCEL_OFF, eng, 3, k->ps, k->n), 0);
	gpages_new(&d, k->n, k->ps);
	CHECK_EQ(lm__codec_deflate.decode(ctx, in, in_len, lens, d.p, k->n, k->ps, &e), 0);
	for (uint32_t i = 0; i < k->n; i++)
		CHECK(memcmp(d.p[i], k->pages[i], k->ps) == 0);
	gpages_free(&d);
	lm__codec_deflate.ctx_free(ctx);
}

/* ---- codec without an accelerator ---------------------------------------------- */

static void test_codec_software(uint32_t ps, lm_engine_id eng)
{
	static const int kinds[16] = {K_TEXT, K_BIN, K_RAND, K_SAME, K_HALF, K_TEXT, K_RAND, K_BIN,
				      K_ZERO, K_TEXT, K_SAME, K_BIN, K_HALF, K_RAND, K_TEXT, K_BIN};
	const char *name = eng == LM_ENGINE_ZLIB ? "zlib" : "isal";
	lm_engine_stats st[LM_MAX_ENGINES], dst[LM_MAX_ENGINES];
	packet k;
	void *ctx, *dctx;
	uint32_t n = 16, lens[16], nraw = 0;
	size_t cap = (size_t)ps * n, out_len = 0, sum = 0, pos = 0;
	gmap gout; /* out ends at a guard page: the encoder stays within cap */
	uint8_t *out = guarded(&gout, cap), *pl = malloc(cap), *tmp = malloc(ps);
	uint64_t in_c = 0;

	packet_new(&k, n, ps, kinds, 1000 + ps);
	CHECK_EQ(codec_new(&ctx, st, NULL, LM_ACCEL_OFF, eng, 3, ps, n), 0);
	memset(out, 0x5A, cap);
	CHECK_EQ(lm__codec_deflate.encode(ctx, (const void *const *)k.pages, n, ps, out, cap, lens,
					  &out_len),
		 0);
	for (uint32_t i = 0; i < n; i++) {
		CHECK(lens[i] >= 1 && lens[i] <= ps);
		if (k.kind[i] == K_RAND) {
			CHECK_EQ(lens[i], ps); /* raw */
			nraw++;
			continue;
		}
		CHECK(lens[i] < ps);
		sum += lens[i];
		in_c += ps;
		/* Packed in page order; each page a zlib-inflatable stream. */
		CHECK(zinflate(out + pos, lens[i], tmp, ps));
		CHECK(memcmp(tmp, k.pages[i], ps) == 0);
		if (eng != LM_ENGINE_ZLIB) { /* exactly the isal engine's bytes */
			CHECK_EQ(lens[i], k.len_isal[i]);
			CHECK(memcmp(out + pos, k.ref_isal[i], lens[i]) == 0);
		} else {
			CHECK_EQ(lens[i], k.len_zlib[i]);
			CHECK(memcmp(out + pos, k.ref_zlib[i], lens[i]) == 0);
		}
		pos += lens[i];
	}
	CHECK_EQ(out_len, sum);
	CHECK_EQ(nraw, 3);
	CHECK_EQ(stat_of(st, LM_MAX_ENGINES, name)->jobs, n);
	CHECK_EQ(stat_of(st, LM_MAX_ENGINES, name)->raw, nraw);
	CHECK_EQ(stat_of(st, LM_MAX_ENGINES, name)->bytes_in, in_c);
	CHECK_EQ(stat_of(st, LM_MAX_ENGINES, name)->bytes_out, out_len);
	CHECK_EQ(stat_of(st, LM_MAX_ENGINES, name)->fallbacks, 0);
	CHECK_EQ(strcmp(st[0].name, name), 0);
	CHECK_EQ(st[1].name[0], 0); /* no accelerator entry */

	/* Decode what the sender would send, with both software engines. */
	size_t pl_len = wire_payload(pl, out, lens, k.pages, n, ps);
	CHECK_EQ(pl_len, sum + (size_t)nraw * ps);
	check_decodes(&k, pl, pl_len, lens, LM_ENGINE_ISAL);
	check_decodes(&k, pl, pl_len, lens, LM_ENGINE_ZLIB);
	/* Decode statistics. */
	{
		gpages d;
		lm__err e = {0};
		CHECK_EQ(codec_new(&dctx, dst, NULL, LM_ACCEL_AUTO, eng, 3, ps, n), 0);
		gpages_new(&d, n, ps);
		CHECK_EQ(lm__codec_deflate.decode(dctx, pl, pl_len, lens, d.p, n, ps, &e), 0);
		gpages_free(&d);
		CHECK_EQ(stat_of(dst, LM_MAX_ENGINES, name)->jobs, n - nraw);
		CHECK_EQ(stat_of(dst, LM_MAX_ENGINES, name)->raw, nraw);
		CHECK_EQ(stat_of(dst, LM_MAX_ENGINES, name)->bytes_in, sum);
		CHECK_EQ(stat_of(dst, LM_MAX_ENGINES, name)->bytes_out, in_c);
		lm__codec_deflate.ctx_free(dctx);
	}
	/* n = 0: nothing to do. */
	CHECK_EQ(lm__codec_deflate.encode(ctx, (const void *const *)k.pages, 0, ps, out, cap, lens,
					  &out_len),
		 0);
	CHECK_EQ(out_len, 0);
	/* A buffer below the bound is refused, not overrun. */
	CHECK_EQ(lm__codec_deflate.encode(ctx, (const void *const *)k.pages, n, ps, out, cap - 1, lens,
					  &out_len),
		 LM_EINVAL);
	lm__codec_deflate.ctx_free(ctx);
	packet_free(&k);
	unguard(&gout);
	free(pl);
	free(tmp);
}

/* zlib's raw deflate, at every level and strategy, decodes through the
 * codec (both engines). */
static void test_interop_zlib_to_codec(uint32_t ps)
{
	static const int kinds[8] = {K_TEXT, K_BIN, K_SAME, K_HALF, K_TEXT, K_BIN, K_ZERO, K_TEXT};
	static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE,
					 Z_FIXED};
	packet k;
	uint32_t n = 8, lens[8];
	uint8_t *pl = malloc((size_t)ps * n);

	packet_new(&k, n, ps, kinds, 4242);
	for (int lvl = 1; lvl <= 9; lvl++) {
		for (int s = 0; s < 5; s++) {
			size_t pos = 0;
			for (uint32_t i = 0; i < n; i++) {
				uint32_t l = zdeflate(k.pages[i], ps, pl + pos, ps - 1, lvl, strategies[s]);
				if (!l) { /* did not fit (Huffman-only on binary): raw */
					memcpy(pl + pos, k.pages[i], ps);
					l = ps;
				}
				lens[i] = l;
				pos += l;
			}
			check_decodes(&k, pl, pos, lens, LM_ENGINE_ISAL);
			check_decodes(&k, pl, pos, lens, LM_ENGINE_ZLIB);
		}
	}
	packet_free(&k);
	free(pl);
}

/* ---- the chain with the scripted accelerator ------------------------------------ */

/* What the script does to page i: refused `busy` times first (more than
 * the retries: software), then `act` (AS_ACCEPT, AS_FAIL, AS_LATE with
 * `arg` polls, AS_WAIT_ERR, AS_SUBMIT_ERR). */
typedef struct plan {
	uint32_t busy[64];
	int act[64];
	uint32_t arg[64];
} plan;

enum { BY_HW = 1, BY_SW = 2 };

/* Programs the script for the pages in `which` (decode: the non-raw ones)
 * in submission order, as the codec submits them: page after page, each
 * retried at most `retries` times. Returns who handles each page. */
static void plan_program(const plan *pl, const int *which, uint32_t n, uint32_t retries, int *by)
{
	uint32_t idx = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t b;
		by[i] = 0;
		if (!which[i])
			continue;
		for (b = 0; b < pl->busy[i] && b <= retries; b++)
			accel_script_set(idx++, AS_BUSY, 0);
		if (pl->busy[i] > retries) {
			by[i] = BY_SW;
			continue;
		}
		accel_script_set(idx++, pl->act[i], pl->arg[i]);
		by[i] = pl->act[i] == AS_ACCEPT || pl->act[i] == AS_LATE ? BY_HW : BY_SW;
	}
}

static void expect_script_idle(void)
{
	accel_script_counters c;

	accel_script_get(&c);
	CHECK_EQ(c.inflight, 0);
	CHECK_EQ(c.overcommit, 0);
	CHECK_EQ(c.bad_calls, 0);
}

/* Encodes the packet with the scripted accelerator under plan pl, checks
 * every counter, the bytes of every page (the accelerator's = zlib level 1,
 * software's = isal) and decodes the result. */
static void chain_encode(const char *what, const packet *k, const plan *pl, uint32_t retries,
			 uint32_t max_jobs)
{
	lm_engine_stats st[LM_MAX_ENGINES];
	void *ctx;
	uint32_t n = k->n, ps = k->ps, lens[64];
	int which[64], by[64];
	size_t cap = (size_t)ps * n, out_len = 0, pos = 0;
	gmap gout;
	uint8_t *out = guarded(&gout, cap), *pay = malloc(cap);
	uint64_t e_jobs = 0, e_busy = 0, e_fb = 0, e_hraw = 0, e_sraw = 0, e_late = 0;
	uint64_t e_hin = 0, e_hout = 0, e_sin = 0, e_sout = 0, e_submits = 0;
	const void *inputs[64];
	size_t n_in;
	accel_script_counters c;
	int fails = lm_test_failures;

	accel_script_reset();
	for (uint32_t i = 0; i < n; i++)
		which[i] = 1;
	plan_program(pl, which, n, retries, by);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t b = pl->busy[i] < retries ? pl->busy[i] : retries;
		int rand = k->len_isal[i] == ps;
		e_busy += b;
		e_submits += pl->busy[i] > retries ? retries + 1 : b + 1;
		if (pl->busy[i] <= retries && pl->act[i] != AS_SUBMIT_ERR)
			e_jobs++;
		if (by[i] == BY_SW) {
			e_fb++;
			if (rand)
				e_sraw++;
			else
				e_sin += ps, e_sout += k->len_isal[i];
		} else {
			if (pl->act[i] == AS_LATE)
				e_late += pl->arg[i];
			if (k->len_zlib[i] == ps)
				e_hraw++;
			else
				e_hin += ps, e_hout += k->len_zlib[i];
		}
	}
	CHECK_EQ(codec_new(&ctx, st, &accel_script_ops, LM_ACCEL_AUTO, LM_ENGINE_ISAL, retries, ps,
			   max_jobs),
		 0);
	CHECK_EQ(strcmp(st[0].name, "test-accel"), 0);
	CHECK_EQ(strcmp(st[1].name, "isal"), 0);
	memset(out, 0x5A, cap);
	CHECK_EQ(lm__codec_deflate.encode(ctx, (const void *const *)k->pages, n, ps, out, cap, lens,
					  &out_len),
		 0);
	expect_script_idle();
	accel_script_get(&c);
	CHECK_EQ(c.submits[0], e_submits);
	CHECK_EQ(c.late_polls, e_late);
	CHECK_EQ(st[0].jobs, e_jobs);
	CHECK_EQ(st[0].busy_retries, e_busy);
	CHECK_EQ(st[0].fallbacks, e_fb);
	CHECK_EQ(st[0].raw, e_hraw);
	CHECK_EQ(st[0].bytes_in, e_hin);
	CHECK_EQ(st[0].bytes_out, e_hout);
	CHECK_EQ(st[1].jobs, e_fb); /* software ran exactly the fallbacks */
	CHECK_EQ(st[1].raw, e_sraw);
	CHECK_EQ(st[1].bytes_in, e_sin);
	/* Within a byte a page of the reference (ISA-L, below). */
	CHECK(st[1].bytes_out + e_fb >= e_sout && st[1].bytes_out <= e_sout + e_fb);
	CHECK_EQ(st[1].busy_retries, 0);
	CHECK_EQ(st[1].fallbacks, 0);
	CHECK_EQ(c.inflight_max <= max_jobs, 1);
	/* The accelerator was given exactly the pages not refused, in order. */
	n_in = accel_script_accepted_inputs(inputs, 64);
	{
		size_t j = 0;
		for (uint32_t i = 0; i < n; i++)
			if (pl->busy[i] <= retries && pl->act[i] != AS_SUBMIT_ERR)
				CHECK(j < n_in && inputs[j++] == k->pages[i]);
		CHECK_EQ(j, n_in);
	}
	/* Each page: the bytes of the engine that was meant to make it. ISA-L's
	 * level 1 makes a page's bytes differ now and then under ASan (a byte
	 * shorter or longer, or other bytes), from run to run of the same
	 * pages: neither a level buffer zeroed before each page nor zeroed
	 * slack after the input removed it (its assembly is not
	 * instrumented). So a software page within a byte of the reference's
	 * length must decode to the page; every accelerator (zlib) page, and
	 * which pages went raw, are byte-exact. */
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *ref = by[i] == BY_SW ? k->ref_isal[i] : k->ref_zlib[i];
		uint32_t rl = by[i] == BY_SW ? k->len_isal[i] : k->len_zlib[i];
		if (by[i] == BY_SW && lens[i] < ps && rl < ps && lens[i] + 1 >= rl &&
		    lens[i] <= rl + 1) {
			CHECK(zinflate_is(out + pos, lens[i], k->pages[i], ps));
			pos += lens[i];
			continue;
		}
		CHECK_EQ(lens[i], rl);
		if (lens[i] < ps) {
			CHECK(memcmp(out + pos, ref, lens[i]) == 0);
			pos += lens[i];
		}
	}
	CHECK_EQ(out_len, pos);
	/* Decoded output identical, with both engines. */
	size_t pl_len = wire_payload(pay, out, lens, k->pages, n, ps);
	check_decodes(k, pay, pl_len, lens, LM_ENGINE_ISAL);
	check_decodes(k, pay, pl_len, lens, LM_ENGINE_ZLIB);
	lm__codec_deflate.ctx_free(ctx);
	accel_script_get(&c);
	CHECK_EQ(c.ctx_new, c.ctx_free);
	if (lm_test_failures != fails)
		fprintf(stderr, "  in chain_encode(%s)\n", what);
	unguard(&gout);
	free(pay);
}

/* Decodes an isal-encoded packet with the scripted accelerator under plan
 * pl (indexed by page; raw pages are never submitted). */
static void chain_decode(const char *what, const packet *k, const plan *pl, uint32_t retries,
			 uint32_t max_jobs)
{
	lm_engine_stats st[LM_MAX_ENGINES];
	void *ctx;
	uint32_t n = k->n, ps = k->ps, lens[64];
	int which[64], by[64];
	uint8_t *pay = malloc((size_t)ps * n);
	size_t pos = 0;
	uint64_t e_jobs = 0, e_busy = 0, e_fb = 0, e_raw = 0, e_late = 0, e_hin = 0, e_sin = 0;
	accel_script_counters c;
	gpages d;
	lm__err e = {0};
	int fails = lm_test_failures;

	for (uint32_t i = 0; i < n; i++) {
		lens[i] = k->len_isal[i];
		memcpy(pay + pos, lens[i] == ps ? k->pages[i] : k->ref_isal[i], lens[i]);
		pos += lens[i];
		which[i] = lens[i] != ps;
	}
	accel_script_reset();
	plan_program(pl, which, n, retries, by);
	for (uint32_t i = 0; i < n; i++) {
		if (!which[i]) {
			e_raw++;
			continue;
		}
		e_busy += pl->busy[i] < retries ? pl->busy[i] : retries;
		if (pl->busy[i] <= retries && pl->act[i] != AS_SUBMIT_ERR)
			e_jobs++;
		if (by[i] == BY_SW) {
			e_fb++;
			e_sin += lens[i];
		} else {
			e_hin += lens[i];
			if (pl->act[i] == AS_LATE)
				e_late += pl->arg[i];
		}
	}
	CHECK_EQ(codec_new(&ctx, st, &accel_script_ops, LM_ACCEL_AUTO, LM_ENGINE_ISAL, retries, ps,
			   max_jobs),
		 0);
	gpages_new(&d, n, ps);
	CHECK_EQ(lm__codec_deflate.decode(ctx, pay, pos, lens, d.p, n, ps, &e), 0);
	for (uint32_t i = 0; i < n; i++)
		CHECK(memcmp(d.p[i], k->pages[i], ps) == 0);
	gpages_free(&d);
	expect_script_idle();
	accel_script_get(&c);
	CHECK_EQ(c.late_polls, e_late);
	CHECK_EQ(st[0].jobs, e_jobs);
	CHECK_EQ(st[0].busy_retries, e_busy);
	CHECK_EQ(st[0].fallbacks, e_fb);
	CHECK_EQ(st[0].raw, e_raw);
	CHECK_EQ(st[0].bytes_in, e_hin);
	CHECK_EQ(st[0].bytes_out, (uint64_t)ps * (n - e_raw - e_fb));
	CHECK_EQ(st[1].jobs, e_fb);
	CHECK_EQ(st[1].bytes_in, e_sin);
	CHECK_EQ(st[1].bytes_out, (uint64_t)ps * e_fb);
	CHECK_EQ(c.inflight_max <= max_jobs, 1);
	lm__codec_deflate.ctx_free(ctx);
	if (lm_test_failures != fails)
		fprintf(stderr, "  in chain_decode(%s)\n", what);
	free(pay);
}

static void test_chain(uint32_t ps)
{
	static const int kinds[16] = {K_TEXT, K_BIN, K_RAND, K_TEXT, K_SAME, K_BIN, K_HALF, K_TEXT,
				      K_BIN, K_RAND, K_TEXT, K_BIN, K_SAME, K_TEXT, K_HALF, K_BIN};
	packet k;
	plan pl;
	uint64_t x = 99;

	packet_new(&k, 16, ps, kinds, 7 + ps);
	/* The accelerator and isal must make different bytes for these pages,
	 * or "which engine made it" would prove nothing. */
	CHECK(k.len_zlib[0] != k.len_isal[0] || memcmp(k.ref_zlib[0], k.ref_isal[0], k.len_isal[0]));

	memset(&pl, 0, sizeof(pl));
	chain_encode("all accepted", &k, &pl, 3, 16);
	chain_decode("all accepted", &k, &pl, 3, 16);

	/* Busy: page 3 refused once, page 5 refused past the retries (to
	 * software), page 7 refused exactly `retries` times (then queued),
	 * page 9 (incompressible) past the retries: software, raw. */
	memset(&pl, 0, sizeof(pl));
	pl.busy[3] = 1;
	pl.busy[5] = 4;
	pl.busy[7] = 3;
	pl.busy[9] = 10;
	chain_encode("busy, 3 retries", &k, &pl, 3, 16);
	chain_decode("busy, 3 retries", &k, &pl, 3, 16);
	chain_encode("busy, 1 retry", &k, &pl, 1, 16);
	chain_decode("busy, 1 retry", &k, &pl, 1, 16);
	chain_encode("busy, no retry", &k, &pl, 0, 16);
	chain_decode("busy, no retry", &k, &pl, 0, 16);
	/* Everything refused: all software, retries capped. */
	for (int i = 0; i < 16; i++)
		pl.busy[i] = 1000;
	chain_encode("all busy", &k, &pl, 3, 16);
	chain_decode("all busy", &k, &pl, 3, 16);
	chain_encode("all busy, 7 retries", &k, &pl, 7, 16);

	/* Failed jobs (garbage written to the output), lost jobs (wait
	 * errors), submissions refused with another error. */
	memset(&pl, 0, sizeof(pl));
	pl.act[1] = AS_FAIL;
	pl.act[2] = AS_FAIL; /* incompressible: software, then raw */
	pl.act[4] = AS_WAIT_ERR;
	pl.act[6] = AS_SUBMIT_ERR;
	pl.act[8] = AS_FAIL;
	pl.busy[8] = 2;
	pl.act[15] = AS_FAIL;
	chain_encode("failed jobs", &k, &pl, 3, 16);
	chain_decode("failed jobs", &k, &pl, 3, 16);

	/* Late completions: waited for, not taken early. */
	memset(&pl, 0, sizeof(pl));
	pl.act[0] = AS_LATE;
	pl.arg[0] = 5;
	pl.act[3] = AS_LATE;
	pl.arg[3] = 1;
	pl.act[9] = AS_LATE; /* incompressible, late: raw */
	pl.arg[9] = 3;
	pl.act[15] = AS_LATE;
	pl.arg[15] = 40;
	chain_encode("late", &k, &pl, 3, 16);
	chain_decode("late", &k, &pl, 3, 16);

	/* Batches: at most max_jobs in flight. */
	memset(&pl, 0, sizeof(pl));
	pl.busy[2] = 9;
	pl.act[5] = AS_FAIL;
	pl.act[6] = AS_LATE;
	pl.arg[6] = 2;
	chain_encode("batches of 4", &k, &pl, 3, 4);
	chain_decode("batches of 4", &k, &pl, 3, 4);
	chain_encode("batches of 1", &k, &pl, 3, 1);
	chain_decode("batches of 1", &k, &pl, 3, 1);
	chain_encode("batches of 5", &k, &pl, 2, 5);

	/* Random mixtures. */
	for (int r = 0; r < 40; r++) {
		uint32_t retries = (uint32_t)(rng(&x) % 5);
		memset(&pl, 0, sizeof(pl));
		for (int i = 0; i < 16; i++) {
			uint64_t v = rng(&x) % 16;
			pl.busy[i] = v < 8 ? 0 : (uint32_t)(rng(&x) % 7);
			pl.act[i] = v % 4 == 0 ? AS_FAIL : v % 4 == 1 ? AS_LATE : AS_ACCEPT;
			if (v == 13)
				pl.act[i] = AS_WAIT_ERR;
			if (v == 14)
				pl.act[i] = AS_SUBMIT_ERR;
			pl.arg[i] = (uint32_t)(rng(&x) % 4);
		}
		chain_encode("random", &k, &pl, retries, 1 + (uint32_t)(rng(&x) % 16));
		chain_decode("random", &k, &pl, retries, 1 + (uint32_t)(rng(&x) % 16));
	}
	packet_free(&k);
}

/* Bad pages through the accelerator: it refuses them, software refuses them,
 * LM_EDECODE for the lowest bad page, and no job is left in flight. */
static void test_chain_decode_rejects(uint32_t ps)
{
	static const int kinds[8] = {K_TEXT, K_BIN, K_RAND, K_TEXT, K_SAME, K_BIN, K_HALF, K_TEXT};
	packet k;
	uint32_t n = 8, lens[8];
	uint8_t *pay = malloc((size_t)ps * n);
	size_t pos = 0, off5 = 0, off3 = 0;
	lm_engine_stats st[LM_MAX_ENGINES];
	void *ctx;
	char want[160];

	packet_new(&k, n, ps, kinds, 31337);
	for (uint32_t i = 0; i < n; i++) {
		lens[i] = k.len_isal[i];
		if (i == 5)
			off5 = pos;
		if (i == 3)
			off3 = pos;
		memcpy(pay + pos, lens[i] == ps ? k.pages[i] : k.ref_isal[i], lens[i]);
		pos += lens[i];
	}
	/* Page 5: its first byte says "reserved block type" (11): invalid. */
	pay[off5] = (uint8_t)(pay[off5] | 6);
	for (int mode = 0; mode < 4; mode++) {
		gpages d;
		lm__err e = {0};
		accel_script_counters c;

		accel_script_reset();
		if (mode == 1) /* page 5 refused: software in the submit loop fails */
			for (uint32_t s = 4; s < 8; s++)
				accel_script_set(s, AS_BUSY, 0);
		if (mode == 2) /* later pages late: drained before returning */
			accel_script_every(1, 0, AS_LATE, 3);
		if (mode == 3) /* everything failing */
			accel_script_every(1, 0, AS_FAIL, 0);
		CHECK_EQ(codec_new(&ctx, st, &accel_script_ops, LM_ACCEL_AUTO, LM_ENGINE_ISAL, 3, ps, n),
			 0);
		gpages_new(&d, n, ps);
		CHECK_EQ(lm__codec_deflate.decode(ctx, pay, pos, lens, d.p, n, ps, &e), LM_EDECODE);
		snprintf(want, sizeof(want), "data.payload: page 5 (length %u) did not decode to %u bytes",
			 lens[5], ps);
		CHECK(strcmp(e.msg, want) == 0);
		if (strcmp(e.msg, want))
			fprintf(stderr, "  got \"%s\"\n", e.msg);
		for (uint32_t i = 0; i < 5; i++) /* pages before it are done */
			CHECK(memcmp(d.p[i], k.pages[i], ps) == 0);
		gpages_free(&d);
		expect_script_idle();
		accel_script_get(&c);
		CHECK_EQ(c.accepted[1], c.ok[1] + c.no_fit[1] + c.failed[1] + c.lost[1]);
		if (mode == 1) /* nothing submitted after the failed page */
			CHECK_EQ(c.submits[1], 8);
		lm__codec_deflate.ctx_free(ctx);
	}
	/* Two bad pages: the lowest is reported. */
	pay[off3] = (uint8_t)(pay[off3] | 6);
	{
		gpages d;
		lm__err e = {0};
		accel_script_reset();
		accel_script_set(6, AS_LATE, 5);
		CHECK_EQ(codec_new(&ctx, st, &accel_script_ops, LM_ACCEL_AUTO, LM_ENGINE_ZLIB, 3, ps, n),
			 0);
		gpages_new(&d, n, ps);
		CHECK_EQ(lm__codec_deflate.decode(ctx, pay, pos, lens, d.p, n, ps, &e), LM_EDECODE);
		snprintf(want, sizeof(want), "data.payload: page 3 (length %u) did not decode to %u bytes",
			 lens[3], ps);
		CHECK(strcmp(e.msg, want) == 0);
		gpages_free(&d);
		expect_script_idle();
		lm__codec_deflate.ctx_free(ctx);
	}
	packet_free(&k);
	free(pay);
}

/* ---- codec decode rejections (software), guard pages around every page ---------- */

static int decode_guarded(lm_engine_id eng, const uint8_t *in, size_t in_len, const uint32_t *lens,
			  uint32_t n, uint32_t ps, char *msg, size_t msg_cap)
{
	void *ctx;
	gpages d;
	gmap gi;
	uint8_t *src = guarded(&gi, in_len);
	lm__err e = {0};
	int rc;

	memcpy(src, in, in_len);
	CHECK_EQ(codec_new(&ctx, NULL, NULL, LM_ACCEL_OFF, eng, 3, ps, n), 0);
	gpages_new(&d, n, ps);
	rc = lm__codec_deflate.decode(ctx, src, in_len, lens, d.p, n, ps, &e);
	snprintf(msg, msg_cap, "%s", e.msg);
	gpages_free(&d);
	unguard(&gi);
	lm__codec_deflate.ctx_free(ctx);
	return rc;
}

static void test_codec_rejections(uint32_t ps)
{
	uint8_t *page = malloc(2 * ps), *a = malloc(ps), *pay = malloc(4 * ps);
	uint32_t la, lens[3];
	char msg[256];
	uint64_t x = 5;

	gen_page(page, ps, K_TEXT, 1);
	gen_page(page + ps, ps, K_BIN, 2);
	la = zdeflate(page, ps, a, ps - 1, 1, Z_DEFAULT_STRATEGY);
	for (int ei = 0; ei < 2; ei++) {
		lm_engine_id eng = ei ? LM_ENGINE_ZLIB : LM_ENGINE_ISAL;
		size_t pos;
		uint32_t l;

		/* page 0 raw, page 1 under test, page 2 valid */
#define BUILD(body1, len1)                                                                   \
	do {                                                                                 \
		pos = 0;                                                                     \
		memcpy(pay, page + ps, ps);                                                  \
		lens[0] = ps;                                                                \
		pos = ps;                                                                    \
		memcpy(pay + pos, body1, len1);                                              \
		lens[1] = len1;                                                              \
		pos += len1;                                                                 \
		memcpy(pay + pos, a, la);                                                    \
		lens[2] = la;                                                                \
		pos += la;                                                                   \
	} while (0)
		BUILD(a, la);
		CHECK_EQ(decode_guarded(eng, pay, pos, lens, 3, ps, msg, sizeof(msg)), 0);
		/* Truncated. */
		BUILD(a, la - 1);
		CHECK_EQ(decode_guarded(eng, pay, pos, lens, 3, ps, msg, sizeof(msg)), LM_EDECODE);
		CHECK(strstr(msg, "data.payload: page 1 (length") != NULL);
		/* Trailing byte (taken from the next page's stream). */
		{
			uint8_t *t = malloc(la + 1);
			memcpy(t, a, la);
			t[la] = 0;
			BUILD(t, la + 1);
			CHECK_EQ(decode_guarded(eng, pay, pos, lens, 3, ps, msg, sizeof(msg)),
				 LM_EDECODE);
			CHECK(strstr(msg, "page 1 (length") != NULL);
			free(t);
		}
		/* Fewer than a page, more than a page. */
		{
			uint8_t *t = malloc(2 * ps);
			l = zdeflate(page, ps / 2, t, 2 * ps, 1, Z_DEFAULT_STRATEGY);
			BUILD(t, l);
			CHECK_EQ(decode_guarded(eng, pay, pos, lens, 3, ps, msg, sizeof(msg)),
				 LM_EDECODE);
			l = zdeflate(page, 2 * ps, t, 2 * ps, 1, Z_DEFAULT_STRATEGY);
			CHECK(l < ps);
			BUILD(t, l);
			CHECK_EQ(decode_guarded(eng, pay, pos, lens, 3, ps, msg, sizeof(msg)),
				 LM_EDECODE);
			snprintf((char *)t, ps, "data.payload: page 1 (length %u) did not decode to %u bytes",
				 l, ps);
			CHECK(strcmp(msg, (char *)t) == 0);
			/* Garbage. */
			for (int r = 0; r < 50; r++) {
				l = 1 + (uint32_t)(rng(&x) % (ps - 1));
				for (uint32_t i = 0; i < l; i++)
					t[i] = (uint8_t)rng(&x);
				BUILD(t, l);
				CHECK_EQ(decode_guarded(eng, pay, pos, lens, 3, ps, msg, sizeof(msg)),
					 LM_EDECODE);
			}
			free(t);
		}
		/* Length table against the payload. */
		BUILD(a, la);
		lens[1] = 0;
		CHECK_EQ(decode_guarded(eng, pay, pos, lens, 3, ps, msg, sizeof(msg)), LM_EDECODE);
		CHECK(strstr(msg, "data.length[1] 0") != NULL);
		BUILD(a, la);
		lens[1] = ps + 1;
		CHECK_EQ(decode_guarded(eng, pay, pos, lens, 3, ps, msg, sizeof(msg)), LM_EDECODE);
		BUILD(a, la);
		CHECK_EQ(decode_guarded(eng, pay, pos - 1, lens, 3, ps, msg, sizeof(msg)), LM_EDECODE);
		CHECK(strstr(msg, "!= sum of page lengths") != NULL);
		CHECK_EQ(decode_guarded(eng, pay, pos + 1, lens, 3, ps, msg, sizeof(msg)), LM_EDECODE);
		/* A raw page short of bytes: the sum catches it. */
		CHECK_EQ(decode_guarded(eng, pay, ps - 1, lens, 1, ps, msg, sizeof(msg)), LM_EDECODE);
		CHECK_EQ(decode_guarded(eng, pay, ps, lens, 1, ps, msg, sizeof(msg)), 0);
		/* No pages, no payload: fine; no pages with payload: not. */
		CHECK_EQ(decode_guarded(eng, pay, 0, lens, 0, ps, msg, sizeof(msg)), 0);
		CHECK_EQ(decode_guarded(eng, pay, 1, lens, 0, ps, msg, sizeof(msg)), LM_EDECODE);
#undef BUILD
	}
	free(page);
	free(a);
	free(pay);
}

/* ---- context creation ----------------------------------------------------------- */

static void test_ctx_new(void)
{
	lm_engine_stats st[LM_MAX_ENGINES];
	void *ctx;
	accel_script_counters c;
	lm_codec_id id;

	CHECK(lm__codec_get(LM_CODEC_DEFLATE) == &lm__codec_deflate);
	CHECK_EQ(lm_codec_from_name("deflate", &id), 0);
	CHECK_EQ(id, LM_CODEC_DEFLATE);
	CHECK_EQ(strcmp(lm_codec_name(LM_CODEC_DEFLATE), "deflate"), 0);
	CHECK_EQ(lm__codec_deflate.per_page, 1);
	CHECK_EQ(lm__codec_deflate.raw_only, 0);
	CHECK_EQ(lm__codec_deflate.payload_bound(4096, 128), 4096ull * 128);
	CHECK(lm__codec_payload_bound(4096, 128) >= 4096ull * 128);

	accel_script_reset();
	/* Required accelerator that is not usable: LM_ECODEC. */
	accel_script_set_available(0);
	ctx = (void *)1;
	CHECK_EQ(codec_new(&ctx, st, &accel_script_ops, LM_ACCEL_QPL, LM_ENGINE_ISAL, 3, 4096, 128),
		 LM_ECODEC);
	CHECK(ctx == NULL);
	/* auto: software only. */
	CHECK_EQ(codec_new(&ctx, st, &accel_script_ops, LM_ACCEL_AUTO, LM_ENGINE_ISAL, 3, 4096, 128), 0);
	CHECK_EQ(strcmp(st[0].name, "isal"), 0);
	CHECK_EQ(st[1].name[0], 0);
	lm__codec_deflate.ctx_free(ctx);
	accel_script_set_available(1);
	CHECK_EQ(codec_new(&ctx, st, &accel_script_ops, LM_ACCEL_QPL, LM_ENGINE_ZLIB, 3, 4096, 128), 0);
	CHECK_EQ(strcmp(st[0].name, "test-accel"), 0);
	CHECK_EQ(strcmp(st[1].name, "zlib"), 0);
	lm__codec_deflate.ctx_free(ctx);
	accel_script_get(&c);
	CHECK_EQ(c.ctx_new, 1);
	CHECK_EQ(c.ctx_free, 1);
	/* Without an injected accelerator: QPL's, if built and usable. */
#ifdef LM_HAVE_QPL
	int have = lm__engine_qpl.available();
#else
	int have = 0;
#endif
	int rc = codec_new(&ctx, st, NULL, LM_ACCEL_QPL, LM_ENGINE_ISAL, 3, 4096, 128);
	CHECK_EQ(rc, have ? 0 : LM_ECODEC);
	if (!rc)
		lm__codec_deflate.ctx_free(ctx);
	CHECK_EQ(codec_new(&ctx, st, NULL, LM_ACCEL_OFF, LM_ENGINE_DEFAULT, 3, 4096, 128), 0);
	CHECK_EQ(strcmp(st[0].name, "isal"), 0);
	lm__codec_deflate.ctx_free(ctx);
	CHECK_EQ(codec_new(&ctx, st, NULL, LM_ACCEL_AUTO, LM_ENGINE_ZLIB, 3, 4096, 128), 0);
	CHECK_EQ(strcmp(st[have ? 1 : 0].name, "zlib"), 0);
	lm__codec_deflate.ctx_free(ctx);
	/* Engines. */
	rc = codec_new(&ctx, st, NULL, LM_ACCEL_OFF, LM_ENGINE_QPL_SW, 3, 4096, 128);
#ifdef LM_HAVE_QPL
	CHECK(rc == 0 || rc == LM_ECODEC);
	if (!rc)
		lm__codec_deflate.ctx_free(ctx);
#else
	CHECK_EQ(rc, LM_ECODEC);
#endif
	CHECK_EQ(codec_new(&ctx, st, NULL, LM_ACCEL_OFF, (lm_engine_id)77, 3, 4096, 128), LM_ECODEC);
	CHECK_EQ(codec_new(&ctx, st, NULL, LM_ACCEL_OFF, LM_ENGINE_ISAL, 3, 0, 128), LM_EINVAL);
	CHECK_EQ(codec_new(&ctx, st, &lm__engine_zlib, LM_ACCEL_AUTO, LM_ENGINE_ISAL, 3, 4096, 128),
		 LM_EINVAL); /* a software engine is no accelerator */
	/* No stats array: fine. */
	CHECK_EQ(codec_new(&ctx, NULL, &accel_script_ops, LM_ACCEL_AUTO, LM_ENGINE_ISAL, 3, 4096, 0), 0);
	lm__codec_deflate.ctx_free(ctx);
	lm__codec_deflate.ctx_free(NULL);
}

/* ---- end to end ------------------------------------------------------------------- */

static void test_end_to_end(int rx_accel, lm_engine_id rx_engine)
{
	const uint32_t ps = 4096;
	const uint64_t len = (128 * 6 + 5) * 4096ull + 123; /* partial last page */
	lm_receiver_config rc = LM_RECEIVER_CONFIG_INIT;
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	lm_receiver *r = NULL;
	lm_sender *s = NULL;
	rx_ctx ctx;
	pthread_t t;
	char addr[64];
	lm_stats ss = LM_STATS_INIT, rs = LM_STATS_INIT;
	accel_script_counters c;
	uint8_t *src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t n_rand = 0, n_zero = 0, npages = (len + ps - 1) / ps;
	uint8_t *tmp = malloc(ps);

	CHECK(src != MAP_FAILED && dst != MAP_FAILED);
	for (uint64_t i = 0; i < npages; i++) {
		static const int mix[8] = {K_ZERO, K_TEXT, K_BIN, K_RAND, K_TEXT, K_SAME, K_ZERO, K_HALF};
		int kind = mix[(i * 5 + i / 7) % 8];
		uint32_t n = i == npages - 1 ? (uint32_t)(len - i * ps) : ps;
		gen_page(tmp, ps, kind, i);
		memcpy(src + i * ps, tmp, n);
		n_rand += kind == K_RAND && n == ps;
		n_zero += kind == K_ZERO;
	}
	accel_script_reset();
	accel_script_every(7, 3, AS_BUSY, 0);
	accel_script_every(11, 5, AS_FAIL, 0);
	accel_script_every(13, 1, AS_LATE, 3);
	accel_script_every(17, 2, AS_WAIT_ERR, 0);

	rc.timeout_ms = 10000;
	rc.accept_timeout_ms = 10000;
	rc.engine = rx_engine;
	rc.accel = rx_accel ? LM_ACCEL_AUTO : LM_ACCEL_OFF;
	CHECK_EQ(lm_receiver_new(&r, &rc), 0);
	if (rx_accel)
		r->accel_ops = &accel_script_ops;
	CHECK_EQ(lm_receiver_add_region(r, "ram", dst, len, 1), 0);
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lm_receiver_port(r));
	ctx.r = r;
	pthread_create(&t, NULL, rx_thread, &ctx);
	sc.channels = 2;
	/* Exact page counts: every copy of a page travels (dedup has its own test). */
	sc.no_dedup = 1;
	sc.codec = LM_CODEC_DEFLATE;
	sc.timeout_ms = 10000;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	s->accel_ops = &accel_script_ops;
	CHECK_EQ(lm_sender_add_region(s, "ram", src, len), 0);
	int src_rc = lm_sender_connect(s, addr);
	if (!src_rc)
		src_rc = lm_sender_run(s);
	CHECK_EQ(src_rc, 0);
	if (src_rc)
		fprintf(stderr, "sender: %s\n", lm_sender_errmsg(s));
	pthread_join(t, NULL);
	CHECK_EQ(ctx.rc, 0);
	if (ctx.rc)
		fprintf(stderr, "receiver: %s\n", lm_receiver_errmsg(r));
	CHECK(memcmp(src, dst, len) == 0);
	lm_sender_stats(s, &ss);
	lm_receiver_stats(r, &rs);
	accel_script_get(&c);
	CHECK_EQ(ss.codec, LM_CODEC_DEFLATE);
	CHECK_EQ(ss.duplicate_pages, n_zero);
	CHECK_EQ(ss.normal_pages, npages - n_zero);
	CHECK_EQ(rs.normal_pages, ss.normal_pages);
	CHECK_EQ(ss.payload_bytes, rs.payload_bytes);
	CHECK(ss.compression_ratio > 1.5);
	{
		const lm_engine_stats *ha = stat_of(ss.engines, (int)ss.n_engines, "test-accel");
		const lm_engine_stats *hs = stat_of(ss.engines, (int)ss.n_engines, "isal");
		CHECK_EQ(ss.n_engines, 2);
		CHECK_EQ(strcmp(ss.engines[0].name, "test-accel"), 0);
		CHECK_EQ(ha->jobs, c.accepted[0]);
		CHECK_EQ(ha->busy_retries + ha->fallbacks, c.busy[0] + c.failed[0] + c.lost[0]);
		CHECK_EQ(hs->jobs, ha->fallbacks);
		CHECK_EQ(ha->jobs - c.failed[0] - c.lost[0] + ha->fallbacks, ss.normal_pages);
		CHECK_EQ(ha->raw, c.no_fit[0]);
		CHECK_EQ(ha->raw + hs->raw, n_rand);
		CHECK_EQ(ha->bytes_out + hs->bytes_out + (ha->raw + hs->raw) * ps, ss.payload_bytes);
		CHECK(ha->busy_retries > 0 && ha->fallbacks > 0 && hs->jobs > 0);
		CHECK(c.busy[0] > 0 && c.failed[0] > 0 && c.lost[0] > 0);
	}
	if (rx_accel) {
		const lm_engine_stats *ha = stat_of(rs.engines, (int)rs.n_engines, "test-accel");
		const lm_engine_stats *hs = stat_of(rs.engines, (int)rs.n_engines, "isal");
		CHECK_EQ(rs.n_engines, 2);
		CHECK_EQ(ha->jobs, c.accepted[1]);
		CHECK_EQ(ha->busy_retries + ha->fallbacks,
			 c.busy[1] + c.failed[1] + c.lost[1] + c.no_fit[1]);
		CHECK_EQ(c.no_fit[1], 0);
		CHECK_EQ(hs->jobs, ha->fallbacks);
		CHECK_EQ(ha->raw, n_rand);
		CHECK_EQ(ha->jobs - c.failed[1] - c.lost[1] + ha->fallbacks, rs.normal_pages - n_rand);
		CHECK(c.accepted[1] > 0 && c.failed[1] > 0);
		CHECK(c.late_polls > 0);
	} else {
		const char *nm = rx_engine == LM_ENGINE_ZLIB ? "zlib" : "isal";
		const lm_engine_stats *hs = stat_of(rs.engines, (int)rs.n_engines, nm);
		CHECK_EQ(rs.n_engines, 1);
		CHECK_EQ(hs->jobs, rs.normal_pages - n_rand);
		CHECK_EQ(hs->raw, n_rand);
		CHECK_EQ(c.submits[1], 0);
	}
	CHECK_EQ(c.inflight, 0);
	CHECK_EQ(c.overcommit, 0);
	CHECK_EQ(c.bad_calls, 0);
	{
		char buf[4096];
		lm_stats_format(&ss, LM_STATS_HUMAN, buf, sizeof(buf));
		printf("end to end (receiver %s):\n%s", rx_accel ? "test-accel + isal" : "software", buf);
	}
	lm_sender_free(s);
	lm_receiver_free(r);
	accel_script_get(&c);
	CHECK_EQ(c.ctx_new, c.ctx_free);
	CHECK_EQ(c.ctx_new, rx_accel ? 4 : 2);
	munmap(src, len);
	munmap(dst, len);
	free(tmp);
}

int main(void)
{
	static const uint32_t sizes[] = {4096, 16384, 65536};

	for (int i = 0; i < 3; i++) {
		test_engine_roundtrips(sizes[i]);
		test_engine_rejections(sizes[i]);
	}
	printf("engines: %d checks\n", lm_test_checks);
	test_ctx_new();
	for (int i = 0; i < 3; i++) {
		test_codec_software(sizes[i], LM_ENGINE_ISAL);
		test_codec_software(sizes[i], LM_ENGINE_ZLIB);
	}
	test_interop_zlib_to_codec(4096);
	test_interop_zlib_to_codec(65536);
	printf("codec, software: %d checks\n", lm_test_checks);
	test_chain(4096);
	test_chain(65536);
	test_chain_decode_rejects(4096);
	printf("chain: %d checks\n", lm_test_checks);
	test_codec_rejections(4096);
	test_codec_rejections(16384);
	printf("rejections: %d checks\n", lm_test_checks);
	test_end_to_end(1, LM_ENGINE_ISAL);
	test_end_to_end(0, LM_ENGINE_ZLIB);
	TEST_DONE("test_deflate");
}
