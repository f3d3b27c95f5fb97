/*
 * test_qpl.c - the QPL engines (src/engine/qpl.c): "qpl" (Intel IAA through
 * QPL's hardware path) and "qpl-sw" (QPL's software path).
 *
 *  - the hardware engine: without an IAA device it reports unavailable and
 *    its ctx_new/submit/wait fail cleanly; with one, pages round-trip
 *    through submit/wait;
 *  - qpl-sw round-trips realistic pages (text, binary, mostly zeros) at 4 KiB
 *    and 64 KiB, and an incompressible page does not fit (an error);
 *  - cross-decoding: qpl-sw's output inflates with zlib (raw, windowBits
 *    -15) and ISA-L; zlib's and ISA-L's raw deflate inflate with qpl-sw;
 *  - garbage, truncated, bit-flipped, too long and too short streams fail
 *    (or, where QPL accepts them, still decode to exactly one page) and never
 *    read or write outside their buffers: every buffer ends at a PROT_NONE
 *    guard page;
 *  - when the deflate codec is built: accel qpl needs the hardware engine,
 *    accel auto with engine qpl-sw works and interoperates with the default.
 *
 * Built without QPL, it says so and passes (skipped).
 */
#include <stdio.h>

#ifndef LM_HAVE_QPL

int main(void)
{
	printf("test_qpl: skipped: livemig was built without QPL (build QPL under /opt/qpl, see README)\n");
	return 0;
}

#else

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <isa-l/igzip_lib.h>
#include <qpl/qpl.h>
#include <zlib.h>

#include "check.h"
#include "codec/codec.h"
#include "engine/engine.h"
#include "wire.h"

#define PS_MAX 65536u

/* Sanitizer builds: QPL's first hardware probe leaves 88 bytes behind in
 * its process-wide hardware dispatcher (allocated inside the dlopen'ed
 * libaccel-config when no work queue is enabled). That is QPL's, not
 * livemig's; seeing QPL's frame past that library needs the slow unwinder.
 * These hooks are plain unused functions in other builds. */
const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);
const char *__asan_default_options(void) { return "fast_unwind_on_malloc=0"; }
const char *__lsan_default_suppressions(void)
{
	return "leak:qpl::ml::dispatcher::hw_dispatcher::initialize_hw\n";
}

/* ---- helpers ---------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1Dull;
}

/* len bytes whose last byte is followed by a PROT_NONE page (and whose
 * first page is preceded by one), so any access past either end faults. */
typedef struct gbuf {
	uint8_t *map, *p;
	size_t map_len;
} gbuf;

static gbuf gbuf_new(size_t len)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), data = (len + ps - 1) / ps * ps;
	gbuf g = {0};
	void *m = mmap(NULL, data + 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	CHECK(m != MAP_FAILED);
	if (m == MAP_FAILED) {
		fprintf(stderr, "test_qpl: mmap failed\n");
		exit(1);
	}
	g.map = m;
	g.map_len = data + 2 * ps;
	CHECK_EQ(mprotect(g.map, ps, PROT_NONE), 0);
	CHECK_EQ(mprotect(g.map + ps + data, ps, PROT_NONE), 0);
	g.p = g.map + ps + data - len;
	return g;
}

static void gbuf_free(gbuf *g)
{
	if (g->map)
		munmap(g->map, g->map_len);
	g->map = g->p = NULL;
}

enum { P_TEXT, P_BINARY, P_ZEROS, P_RANDOM, P_KINDS };
static const char *const kind_name[P_KINDS] = {"text", "binary", "zeros-heavy", "incompressible"};

/* Page contents like a guest's: log/source text, binary structures (pointers,
 * counters, small integers, code-like bytes), a mostly-zero page with a few
 * values, and compressed-file bytes. */
static void fill_page(uint8_t *p, uint32_t ps, int kind)
{
	static const char *const words[] = {
		"the", "migration", "page", "channel", "kernel:", "error", "value", "=", "0x7f",
		"static", "int", "return", "if", "(", ")", "{", "}", ";", "memory", "region",
		"INFO", "[", "]", "request", "from", "host", "10.0.0.1", "GET", "/index.html",
		"HTTP/1.1", "200", "user", "session", "struct", "for", "while", "NULL", "ptr"};
	uint32_t i = 0;

	switch (kind) {
	case P_TEXT:
		while (i < ps) {
			const char *w = words[rnd() % (sizeof(words) / sizeof(words[0]))];
			size_t n = strlen(w);
			for (size_t k = 0; k < n && i < ps; k++)
				p[i++] = (uint8_t)w[k];
			if (i < ps)
				p[i++] = rnd() % 9 ? ' ' : '\n';
		}
		break;
	case P_BINARY: {
		uint64_t base = 0x00007f3a12340000ull + (rnd() & 0xfff000);
		for (i = 0; i + 32 <= ps; i += 32) {
			uint64_t ptr = base + (rnd() % 512) * 64, cnt = i / 32, flags = rnd() % 4;
			uint32_t small = (uint32_t)(rnd() % 100), code = (uint32_t)(0x48894c24u + rnd() % 8);
			memcpy(p + i, &ptr, 8);
			memcpy(p + i + 8, &cnt, 8);
			memcpy(p + i + 16, &flags, 8);
			memcpy(p + i + 24, &small, 4);
			memcpy(p + i + 28, &code, 4);
		}
		for (; i < ps; i++)
			p[i] = 0;
		break;
	}
	case P_ZEROS:
		memset(p, 0, ps);
		for (int k = 0; k < 24; k++) {
			uint64_t v = rnd();
			memcpy(p + (rnd() % (ps / 8)) * 8, &v, 8);
		}
		break;
	default:
		for (i = 0; i < ps; i += 8) {
			uint64_t v = rnd();
			memcpy(p + i, &v, 8);
		}
	}
}

/* zlib raw inflate: the output length, or -1 unless one complete stream
 * used all of the input. */
static long zlib_inflate_raw(const uint8_t *in, uint32_t len, uint8_t *out, uint32_t cap)
{
	z_stream z;
	long r = -1;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -15) != Z_OK)
		return -1;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = len;
	z.next_out = out;
	z.avail_out = cap;
	if (inflate(&z, Z_FINISH) == Z_STREAM_END && z.avail_in == 0)
		r = (long)z.total_out;
	inflateEnd(&z);
	return r;
}

static long zlib_deflate_raw(int level, int strategy, int wbits, const uint8_t *in, uint32_t len,
			     uint8_t *out, uint32_t cap)
{
	z_stream z;
	long r = -1;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, level, Z_DEFLATED, -wbits, 8, strategy) != Z_OK)
		return -1;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = len;
	z.next_out = out;
	z.avail_out = cap;
	if (deflate(&z, Z_FINISH) == Z_STREAM_END)
		r = (long)z.total_out;
	deflateEnd(&z);
	return r;
}

static struct inflate_state isal_is;
static struct isal_zstream isal_zs;
static uint8_t isal_lvl_buf[ISAL_DEF_LVL1_DEFAULT];

static long isal_inflate_raw(const uint8_t *in, uint32_t len, uint8_t *out, uint32_t cap)
{
	isal_inflate_init(&isal_is);
	isal_is.next_in = (uint8_t *)(uintptr_t)in;
	isal_is.avail_in = len;
	isal_is.next_out = out;
	isal_is.avail_out = cap;
	isal_is.crc_flag = ISAL_DEFLATE;
	if (isal_inflate_stateless(&isal_is) != ISAL_DECOMP_OK)
		return -1;
	return (long)isal_is.total_out;
}

static long isal_deflate_raw(uint32_t hist_bits, const uint8_t *in, uint32_t len, uint8_t *out,
			     uint32_t cap)
{
	isal_deflate_stateless_init(&isal_zs);
	isal_zs.next_in = (uint8_t *)(uintptr_t)in;
	isal_zs.avail_in = len;
	isal_zs.next_out = out;
	isal_zs.avail_out = cap;
	isal_zs.level = 1;
	isal_zs.level_buf = isal_lvl_buf;
	isal_zs.level_buf_size = sizeof(isal_lvl_buf);
	isal_zs.gzip_flag = IGZIP_DEFLATE;
	isal_zs.hist_bits = (uint16_t)hist_bits;
	isal_zs.end_of_stream = 1;
	isal_zs.flush = NO_FLUSH;
	if (isal_deflate_stateless(&isal_zs) != COMP_OK)
		return -1;
	return (long)isal_zs.total_out;
}

static int sw_run(void *ctx, int op, const uint8_t *in, uint32_t in_len, uint8_t *out,
		  uint32_t out_cap, lm__engine_job *job)
{
	memset(job, 0, sizeof(*job));
	job->op = op;
	job->in = in;
	job->in_len = in_len;
	job->out = out;
	job->out_cap = out_cap;
	return lm__engine_qpl_sw.execute(ctx, job);
}

/* ---- the hardware engine ------------------------------------------------ */

static void test_hw_unavailable(void)
{
	const lm__engine_ops *hw = &lm__engine_qpl;
	lm__engine_job job;
	uint8_t in[64] = {0}, out[64];
	void *ctx = (void *)&job; /* must be reset to NULL */
	uint32_t size = 0;
	qpl_status st;
	qpl_job *q;

	/* What QPL itself answers here: 503 (no enabled work queues) with
	 * libaccel-config installed, 501 without it. */
	CHECK_EQ(qpl_get_job_size(qpl_path_hardware, &size), QPL_STS_OK);
	q = calloc(1, size ? size : 1);
	CHECK(q != NULL);
	st = q ? qpl_init_job(qpl_path_hardware, q) : QPL_STS_NO_MEM_ERR;
	CHECK(st != QPL_STS_OK);
	printf("test_qpl: no IAA here: qpl_init_job(qpl_path_hardware) = %d; checking the clean failure path\n",
	       (int)st);
	if (st == QPL_STS_OK)
		qpl_fini_job(q);
	free(q);

	CHECK_EQ(hw->available(), 0);
	CHECK_EQ(hw->available(), 0); /* cached */
	CHECK_EQ(hw->ctx_new(&ctx, 0, 4096, 128), LM_ECODEC);
	CHECK(ctx == NULL);
	ctx = (void *)&job;
	CHECK_EQ(hw->ctx_new(&ctx, 1, 65536, 1), LM_ECODEC);
	CHECK(ctx == NULL);
	CHECK_EQ(hw->ctx_new(&ctx, 0, 4096, 0), LM_EINVAL);
	hw->ctx_free(NULL);

	/* Without a context nothing is submitted or waited for. */
	memset(&job, 0, sizeof(job));
	job.op = LM_ENGINE_COMPRESS;
	job.in = in;
	job.in_len = sizeof(in);
	job.out = out;
	job.out_cap = sizeof(out) - 1;
	CHECK(hw->submit(NULL, &job) < 0);
	CHECK(hw->submit(NULL, &job) != LM_EBUSY);
	CHECK(hw->wait(NULL, &job) < 0);
	CHECK(job.slot == NULL);
	CHECK_EQ(job.out_len, 0);
}

/* A machine with IAA: pages round-trip through the device. */
static void test_hw_available(void)
{
	const lm__engine_ops *hw = &lm__engine_qpl;
	enum { N = 8, PS = 4096 };
	static uint8_t pages[N][PS], comp[N][PS], back[N][PS];
	lm__engine_job jobs[N];
	void *ctx = NULL;
	int rc;

	printf("test_qpl: IAA is usable here: testing the hardware engine\n");
	rc = hw->ctx_new(&ctx, 0, PS, N);
	CHECK_EQ(rc, 0);
	if (rc)
		return;
	for (int i = 0; i < N; i++)
		fill_page(pages[i], PS, i % P_KINDS);
	for (int i = 0; i < N; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].op = LM_ENGINE_COMPRESS;
		jobs[i].in = pages[i];
		jobs[i].in_len = PS;
		jobs[i].out = comp[i];
		jobs[i].out_cap = PS - 1;
		do
			rc = hw->submit(ctx, &jobs[i]);
		while (rc == LM_EBUSY);
		CHECK_EQ(rc, 0);
	}
	/* Every slot is taken: one more is busy. */
	{
		lm__engine_job extra = jobs[0];
		CHECK_EQ(hw->submit(ctx, &extra), LM_EBUSY);
	}
	for (int i = 0; i < N; i++) {
		rc = hw->wait(ctx, &jobs[i]);
		if (i % P_KINDS == P_RANDOM) {
			CHECK(rc != 0); /* did not fit */
			continue;
		}
		CHECK_EQ(rc, 0);
		CHECK(jobs[i].out_len > 0 && jobs[i].out_len < PS);
		CHECK_EQ(zlib_inflate_raw(comp[i], jobs[i].out_len, back[i], PS), PS);
		CHECK(memcmp(back[i], pages[i], PS) == 0);
		memset(back[i], 0, PS);
		jobs[i].op = LM_ENGINE_DECOMPRESS;
		jobs[i].in = comp[i];
		jobs[i].in_len = jobs[i].out_len;
		jobs[i].out = back[i];
		jobs[i].out_cap = PS;
		do
			rc = hw->submit(ctx, &jobs[i]);
		while (rc == LM_EBUSY);
		CHECK_EQ(rc, 0);
		CHECK_EQ(hw->wait(ctx, &jobs[i]), 0);
		CHECK_EQ(jobs[i].out_len, PS);
		CHECK(memcmp(back[i], pages[i], PS) == 0);
	}
	hw->ctx_free(ctx);
}

/* ---- qpl-sw ------------------------------------------------------------- */

/* Every realistic page at 4 KiB and 64 KiB, at the default level and at
 * QPL's high level: compresses into page_size - 1 bytes ending at a guard
 * page, decodes with qpl-sw, zlib and ISA-L to the same page. */
static void test_sw_roundtrip(void)
{
	const lm__engine_ops *sw = &lm__engine_qpl_sw;
	static const uint32_t sizes[] = {4096, PS_MAX};
	static const int levels[] = {0, 3};
	lm__engine_job job;
	uint8_t *page = malloc(PS_MAX), *plain = malloc(PS_MAX);

	CHECK(page && plain);
	if (!page || !plain)
		exit(1);
	CHECK_EQ(sw->hw, 0);
	CHECK(strcmp(sw->name, "qpl-sw") == 0);
	CHECK_EQ(sw->available(), 1);
	for (size_t si = 0; si < 2; si++) {
		uint32_t ps = sizes[si];
		gbuf comp = gbuf_new(ps - 1), out = gbuf_new(ps);

		for (size_t li = 0; li < 2; li++) {
			void *ctx = NULL;
			int rc = sw->ctx_new(&ctx, levels[li], ps, 1);

			CHECK_EQ(rc, 0);
			if (rc)
				continue;
			/* Several pages of each kind, one context for all of
			 * them (compress and decompress interleaved). */
			for (int rep = 0; rep < 4; rep++) {
				for (int k = 0; k < P_KINDS; k++) {
					fill_page(page, ps, k);
					rc = sw_run(ctx, LM_ENGINE_COMPRESS, page, ps, comp.p, ps - 1, &job);
					if (k == P_RANDOM) {
						/* Does not fit: the page goes raw. */
						CHECK(rc != 0);
						CHECK_EQ(job.out_len, 0);
						continue;
					}
					if (rc != 0 || job.out_len == 0 || job.out_len >= ps) {
						fprintf(stderr, "test_qpl: %s page %u level %d: status %d len %u\n",
							kind_name[k], ps, levels[li], rc, job.out_len);
						CHECK(0);
						continue;
					}
					uint32_t clen = job.out_len;
					/* qpl-sw, from input that ends at a guard page */
					memmove(comp.p + (ps - 1 - clen), comp.p, clen);
					const uint8_t *c = comp.p + (ps - 1 - clen);
					memset(out.p, 0xa5, ps);
					CHECK_EQ(sw_run(ctx, LM_ENGINE_DECOMPRESS, c, clen, out.p, ps, &job), 0);
					CHECK_EQ(job.out_len, ps);
					CHECK(memcmp(out.p, page, ps) == 0);
					/* zlib, raw inflate */
					memset(plain, 0, ps);
					CHECK_EQ(zlib_inflate_raw(c, clen, plain, ps), ps);
					CHECK(memcmp(plain, page, ps) == 0);
					/* ISA-L */
					memset(plain, 0, ps);
					CHECK_EQ(isal_inflate_raw(c, clen, plain, ps), ps);
					CHECK(memcmp(plain, page, ps) == 0);
					if (rep == 0 && levels[li] == 0)
						printf("test_qpl: qpl-sw %s %u-byte page -> %u bytes\n",
						       kind_name[k], ps, clen);
				}
			}
			sw->ctx_free(ctx);
		}
		gbuf_free(&comp);
		gbuf_free(&out);
	}
	/* An all-zero page (the sender skips those, the engine need not). */
	{
		void *ctx = NULL;
		gbuf out = gbuf_new(4096);
		static uint8_t comp[4096];

		CHECK_EQ(sw->ctx_new(&ctx, 0, 4096, 1), 0);
		memset(page, 0, 4096);
		CHECK_EQ(sw_run(ctx, LM_ENGINE_COMPRESS, page, 4096, comp, 4095, &job), 0);
		CHECK(job.out_len > 0 && job.out_len < 64);
		uint32_t clen = job.out_len;
		CHECK_EQ(sw_run(ctx, LM_ENGINE_DECOMPRESS, comp, clen, out.p, 4096, &job), 0);
		CHECK(memcmp(out.p, page, 4096) == 0);
		/* A tiny out_cap: does not fit, nothing written past it. */
		fill_page(page, 4096, P_TEXT);
		gbuf small = gbuf_new(16);
		CHECK(sw_run(ctx, LM_ENGINE_COMPRESS, page, 4096, small.p, 16, &job) != 0);
		/* Bad arguments are refused, and the context still works. */
		CHECK_EQ(sw_run(ctx, LM_ENGINE_COMPRESS, page, 0, comp, 4095, &job), LM_EINVAL);
		CHECK_EQ(sw_run(ctx, LM_ENGINE_DECOMPRESS, comp, clen, out.p, 4095, &job), LM_EINVAL);
		CHECK_EQ(sw_run(ctx, 7, comp, clen, out.p, 4096, &job), LM_EINVAL);
		CHECK_EQ(sw_run(ctx, LM_ENGINE_COMPRESS, page, 4096, comp, 4095, &job), 0);
		gbuf_free(&small);
		gbuf_free(&out);
		sw->ctx_free(ctx);
	}
	CHECK_EQ(sw->ctx_new(&(void *){NULL}, 0, 0, 1), LM_EINVAL);
	sw->ctx_free(NULL);
	free(page);
	free(plain);
}

/* Raw deflate from zlib (stored, fixed, default and best) and ISA-L level 1
 * inflates with qpl-sw. IAA, and so QPL, keeps 4 KiB of history: for pages
 * over 4 KiB the other libraries must use a 4 KiB window (zlib windowBits 12,
 * ISA-L hist_bits 12); a 32 KiB-window stream with a farther match is
 * refused cleanly (LM_EDECODE), never misdecoded. */
static void test_sw_from_others(void)
{
	const lm__engine_ops *sw = &lm__engine_qpl_sw;
	static const struct {
		int level, strategy;
		const char *name;
	} zs[] = {{0, Z_DEFAULT_STRATEGY, "zlib-0 (stored)"}, {1, Z_DEFAULT_STRATEGY, "zlib-1"},
		  {6, Z_FIXED, "zlib-6 fixed"}, {6, Z_DEFAULT_STRATEGY, "zlib-6"},
		  {9, Z_DEFAULT_STRATEGY, "zlib-9"}, {6, Z_HUFFMAN_ONLY, "zlib huffman-only"}};
	static const uint32_t sizes[] = {4096, PS_MAX};
	lm__engine_job job;
	uint8_t *page = malloc(PS_MAX), *comp = malloc(2 * PS_MAX);
	uint32_t far_refused = 0, far_tried = 0;
	int rc;

	CHECK(page && comp);
	if (!page || !comp)
		exit(1);
	for (size_t si = 0; si < 2; si++) {
		uint32_t ps = sizes[si];
		/* 4 KiB pages: zlib's and ISA-L's defaults (32 KiB windows). */
		int wbits = ps > 4096 ? 12 : 15;
		gbuf out = gbuf_new(ps);
		void *ctx = NULL;

		CHECK_EQ(sw->ctx_new(&ctx, 0, ps, 1), 0);
		for (int k = 0; k < P_KINDS; k++) {
			fill_page(page, ps, k);
			for (size_t z = 0; z < sizeof(zs) / sizeof(zs[0]); z++) {
				long clen = zlib_deflate_raw(zs[z].level, zs[z].strategy, wbits, page, ps,
							     comp, 2 * PS_MAX);
				CHECK(clen > 0);
				if (clen <= 0)
					continue;
				memset(out.p, 0, ps);
				rc = sw_run(ctx, LM_ENGINE_DECOMPRESS, comp, (uint32_t)clen, out.p, ps,
					    &job);
				if (rc != 0 || memcmp(out.p, page, ps) != 0) {
					fprintf(stderr, "test_qpl: %s of a %s %u-byte page: status %d\n",
						zs[z].name, kind_name[k], ps, rc);
					CHECK(0);
				}
				if (ps > 4096 && zs[z].level > 0 && zs[z].strategy != Z_HUFFMAN_ONLY) {
					/* The same page with zlib's 32 KiB window. */
					clen = zlib_deflate_raw(zs[z].level, zs[z].strategy, 15, page, ps,
								comp, 2 * PS_MAX);
					CHECK(clen > 0);
					rc = sw_run(ctx, LM_ENGINE_DECOMPRESS, comp, (uint32_t)clen,
						    out.p, ps, &job);
					far_tried++;
					if (rc == 0)
						CHECK(memcmp(out.p, page, ps) == 0);
					else
						far_refused += rc == LM_EDECODE;
				}
			}
			long clen = isal_deflate_raw(ps > 4096 ? 12 : 0, page, ps, comp, 2 * PS_MAX);
			CHECK(clen > 0);
			if (clen > 0) {
				memset(out.p, 0, ps);
				CHECK_EQ(sw_run(ctx, LM_ENGINE_DECOMPRESS, comp, (uint32_t)clen, out.p, ps,
						&job), 0);
				CHECK(memcmp(out.p, page, ps) == 0);
			}
		}
		sw->ctx_free(ctx);
		gbuf_free(&out);
	}
	/* The text and binary pages have matches farther than 4 KiB. */
	CHECK(far_refused > 0);
	printf("test_qpl: 64 KiB pages from zlib with a 32 KiB window: %u of %u refused (QPL's 4 KiB history)\n",
	       far_refused, far_tried);
	free(page);
	free(comp);
}

/* Bad input: every outcome is an error or exactly one page, no access
 * outside the input or the page (guard pages fault), and the context keeps
 * working afterwards. */
static void test_sw_bad_input(void)
{
	const lm__engine_ops *sw = &lm__engine_qpl_sw;
	enum { PS = 4096 };
	lm__engine_job job;
	static uint8_t page[PS], comp[2 * PS], big[2 * PS];
	gbuf out = gbuf_new(PS), in = gbuf_new(2 * PS);
	void *ctx = NULL;
	uint32_t clen, accepted = 0, accepted_same = 0, rejected = 0;
	int rc;

	CHECK_EQ(sw->ctx_new(&ctx, 0, PS, 1), 0);
	if (!ctx)
		return;
	fill_page(page, PS, P_TEXT);
	CHECK_EQ(sw_run(ctx, LM_ENGINE_COMPRESS, page, PS, comp, PS - 1, &job), 0);
	clen = job.out_len;

	/* Random garbage of many lengths, ending at the input's guard page. */
	for (uint32_t n = 1; n <= 2 * PS; n = n * 3 / 2 + 1) {
		for (int rep = 0; rep < 8; rep++) {
			uint8_t *p = in.p + 2 * PS - n;
			for (uint32_t i = 0; i < n; i++)
				p[i] = (uint8_t)rnd();
			if (rep == 0)
				p[0] = 0x05; /* a final dynamic block header, for depth */
			rc = sw_run(ctx, LM_ENGINE_DECOMPRESS, p, n, out.p, PS, &job);
			CHECK(rc == 0 ? job.out_len == PS : job.out_len == 0);
		}
	}
	/* Every truncation of a valid stream. */
	for (uint32_t n = 1; n < clen; n++) {
		uint8_t *p = in.p + 2 * PS - n;
		memcpy(p, comp, n);
		memset(out.p, 0, PS);
		rc = sw_run(ctx, LM_ENGINE_DECOMPRESS, p, n, out.p, PS, &job);
		if (rc == 0) {
			CHECK_EQ(job.out_len, PS);
			accepted++;
			accepted_same += memcmp(out.p, page, PS) == 0;
		} else {
			CHECK_EQ(rc, LM_EDECODE);
			rejected++;
		}
	}
	/* QPL's software inflate takes the end of input as the end of the
	 * stream: at most the cut of the final end-of-block code goes unseen. */
	CHECK(accepted <= 2);
	printf("test_qpl: truncations of a %u-byte stream: %u rejected, %u accepted (%u decoded to the original page)\n",
	       clen, rejected, accepted, accepted_same);
	/* Trailing bytes after the stream. */
	memcpy(big, comp, clen);
	memset(big + clen, 0x5a, 16);
	CHECK_EQ(sw_run(ctx, LM_ENGINE_DECOMPRESS, big, clen + 16, out.p, PS, &job), LM_EDECODE);
	/* Every single bit flipped: an error or exactly one page. */
	for (uint32_t bit = 0; bit < clen * 8; bit++) {
		uint8_t *p = in.p + 2 * PS - clen;
		memcpy(p, comp, clen);
		p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = sw_run(ctx, LM_ENGINE_DECOMPRESS, p, clen, out.p, PS, &job);
		CHECK(rc == 0 ? job.out_len == PS : rc == LM_EDECODE);
	}
	/* A stream of more than a page stops at the page's end with an error;
	 * one of less than a page is an error too. */
	{
		static uint8_t two[2 * PS];
		long n;

		fill_page(two, PS, P_TEXT);
		fill_page(two + PS, PS, P_BINARY);
		n = zlib_deflate_raw(1, Z_DEFAULT_STRATEGY, 15, two, 2 * PS, big, sizeof(big));
		CHECK(n > 0);
		memset(out.p, 0, PS);
		CHECK_EQ(sw_run(ctx, LM_ENGINE_DECOMPRESS, big, (uint32_t)n, out.p, PS, &job), LM_EDECODE);
		CHECK_EQ(job.out_len, 0);
		n = zlib_deflate_raw(1, Z_DEFAULT_STRATEGY, 15, two, PS / 2, big, sizeof(big));
		CHECK(n > 0);
		CHECK_EQ(sw_run(ctx, LM_ENGINE_DECOMPRESS, big, (uint32_t)n, out.p, PS, &job), LM_EDECODE);
		n = zlib_deflate_raw(1, Z_DEFAULT_STRATEGY, 15, two, PS - 1, big, sizeof(big));
		CHECK(n > 0);
		CHECK_EQ(sw_run(ctx, LM_ENGINE_DECOMPRESS, big, (uint32_t)n, out.p, PS, &job), LM_EDECODE);
		/* A zlib-wrapped stream is not raw deflate. */
		uLongf zl = sizeof(big);
		CHECK_EQ(compress2(big, &zl, page, PS, 6), Z_OK);
		rc = sw_run(ctx, LM_ENGINE_DECOMPRESS, big, (uint32_t)zl, out.p, PS, &job);
		CHECK(rc == 0 ? memcmp(out.p, page, PS) != 0 : rc == LM_EDECODE);
	}
	/* After all that, the same context still round-trips. */
	CHECK_EQ(sw_run(ctx, LM_ENGINE_DECOMPRESS, comp, clen, out.p, PS, &job), 0);
	CHECK(memcmp(out.p, page, PS) == 0);
	sw->ctx_free(ctx);
	gbuf_free(&out);
	gbuf_free(&in);
}

/* ---- through the deflate codec (when it is built) ------------------------ */

static int find_engine_jobs(const lm_engine_stats *st, const char *name, uint64_t *jobs)
{
	for (int i = 0; i < LM_MAX_ENGINES; i++) {
		if (strcmp(st[i].name, name) == 0) {
			*jobs = st[i].jobs;
			return 1;
		}
	}
	return 0;
}

static void test_codec(void)
{
	const lm__codec_ops *d = lm__codec_get(LM_CODEC_DEFLATE);
	enum { PS = 4096, N = 16 };
	lm_engine_stats st_enc[LM_MAX_ENGINES], st_dec[LM_MAX_ENGINES];
	lm__codec_params p;
	static uint8_t pages[N][PS], back[N][PS];
	const void *in[N];
	void *outp[N];
	uint32_t lens[N];
	uint8_t *enc, *wire;
	size_t cap, enc_len = 0, wire_len = 0, off = 0;
	void *ec = NULL, *dc = NULL;
	uint64_t jobs = 0;
	lm__err e = {0};
	int rc;

	if (!d) {
		printf("test_qpl: the deflate codec is not built: codec checks skipped\n");
		return;
	}
	memset(&p, 0, sizeof(p));
	memset(st_enc, 0, sizeof(st_enc));
	memset(st_dec, 0, sizeof(st_dec));
	p.page_size = PS;
	p.packet_pages = N;
	p.busy_retries = 3;
	p.stats = st_enc;

	/* accel qpl requires the device. */
	p.accel = LM_ACCEL_QPL;
	rc = d->ctx_new(&ec, &p);
	if (lm__engine_qpl.available()) {
		CHECK_EQ(rc, 0);
	} else {
		CHECK_EQ(rc, LM_ECODEC);
	}
	if (rc == 0)
		d->ctx_free(ec);
	ec = NULL;

	/* accel auto with the qpl-sw engine: the software chain. */
	memset(st_enc, 0, sizeof(st_enc));
	p.accel = LM_ACCEL_AUTO;
	p.engine = LM_ENGINE_QPL_SW;
	CHECK_EQ(d->ctx_new(&ec, &p), 0);
	/* decoded by the default engine: formats interoperate */
	p.engine = LM_ENGINE_DEFAULT;
	p.stats = st_dec;
	CHECK_EQ(d->ctx_new(&dc, &p), 0);
	if (!ec || !dc) {
		d->ctx_free(ec);
		d->ctx_free(dc);
		return;
	}
	for (int i = 0; i < N; i++) {
		fill_page(pages[i], PS, i % P_KINDS);
		in[i] = pages[i];
		outp[i] = back[i];
	}
	cap = d->payload_bound(PS, N);
	enc = malloc(cap);
	wire = malloc((size_t)N * PS + cap);
	CHECK(enc && wire);
	if (!enc || !wire)
		exit(1);
	rc = d->encode(ec, in, N, PS, enc, cap, lens, &enc_len);
	CHECK_EQ(rc, 0);
	/* The payload as the sender sends it: raw pages from the region,
	 * encoded ones from enc, in page order. */
	for (int i = 0; rc == 0 && i < N; i++) {
		if (i % P_KINDS == P_RANDOM)
			CHECK_EQ(lens[i], PS);
		else
			CHECK(lens[i] < PS);
		if (lens[i] == PS) {
			memcpy(wire + wire_len, pages[i], PS);
		} else {
			memcpy(wire + wire_len, enc + off, lens[i]);
			off += lens[i];
		}
		wire_len += lens[i];
	}
	CHECK_EQ(off, enc_len);
	if (rc == 0) {
		rc = d->decode(dc, wire, wire_len, lens, outp, N, PS, &e);
		CHECK_EQ(rc, 0);
		if (rc)
			fprintf(stderr, "test_qpl: deflate decode: %s\n", e.msg);
		for (int i = 0; i < N; i++)
			CHECK(memcmp(back[i], pages[i], PS) == 0);
	}
	CHECK(find_engine_jobs(st_enc, "qpl-sw", &jobs));
	CHECK(jobs > 0);
	printf("test_qpl: deflate codec, accel auto, engine qpl-sw: %u pages -> %zu payload bytes, qpl-sw jobs %llu\n",
	       N, wire_len, (unsigned long long)jobs);
	d->ctx_free(ec);
	d->ctx_free(dc);
	free(enc);
	free(wire);
}

int main(void)
{
	if (lm__engine_qpl.available())
		test_hw_available();
	else
		test_hw_unavailable();
	CHECK(strcmp(lm__engine_qpl.name, "qpl") == 0);
	CHECK_EQ(lm__engine_qpl.hw, 1);
	test_sw_roundtrip();
	test_sw_from_others();
	test_sw_bad_input();
	test_codec();
	TEST_DONE("test_qpl");
}

#endif
