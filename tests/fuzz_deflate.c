/*
 * libFuzzer target: arbitrary bytes -> raw DEFLATE decode of one 4 KiB page.
 *
 *  1. The whole input through the isal engine's decompression, and
 *  2. through the zlib engine's: each answers an error (status != 0, no
 *     output length) or exactly one page; when both succeed the pages are
 *     identical (a valid stream has one meaning).
 *  3. Through the deflate codec's decode, with a length table derived from
 *     the input:
 *       byte 0        bits 0-1: pages n - 1 (1..4); bit 2: engine (0 isal,
 *                     1 zlib)
 *       bytes 1..2n   page lengths, be16 each, taken mod 4100 (so 0, a
 *                     page, and more than a page all occur)
 *       the rest      the payload
 *     The codec answers 0 (every page raw-copied or decoded to exactly one
 *     page) or LM_EDECODE; never anything else, never a crash.
 *
 *  4. When byte 0 has bit 7 set: the rest of the input, tiled, is a page;
 *     it is compressed by the engine bit 6 picks (isal or zlib; a page that
 *     does not fit is skipped), then byte 1 says how to damage the stream
 *     (low 2 bits: bit flips at positions from bytes 2-3, bits 2-3: cut or
 *     extend it by 1-3 bytes, 0: intact), and both engines decode it: an
 *     intact stream must give the page back exactly; a damaged one exactly
 *     one page or an error. This reaches the decoders' deep states, which
 *     coverage cannot steer to (ISA-L and zlib are not instrumented).
 *
 * Every destination page sits between PROT_NONE pages and the input ends at
 * a PROT_NONE page: ISA-L's assembly is not instrumented by ASan, the guard
 * pages catch its reads and writes out of bounds.
 *
 * Seeds (tests/seeds/fuzz_deflate/): valid pages from both engines, streams
 * of half a page and of two pages, and codec-format packets. Regenerate:
 *   cc -D_GNU_SOURCE -DLM_FUZZ_SEEDGEN -Iinclude -Isrc tests/fuzz_deflate.c \
 *      build/liblivemig.a -lisal -lz -lzstd -llz4 -lxxhash -lpthread -o /tmp/seedgen_deflate &&
 *   /tmp/seedgen_deflate tests/seeds/fuzz_deflate
 * (a library built with QPL also needs /opt/qpl/lib/libqpl.a -lstdc++ -ldl).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "codec/codec.h"
#include "engine/engine.h"
#include "wire.h"

#define PS 4096u
#define MAX_IN (1u << 20)
#define NPAGES 4

#define INVARIANT(c)                                                                 \
	do {                                                                         \
		if (!(c)) {                                                          \
			fprintf(stderr, "fuzz_deflate: invariant failed at %s:%d: %s\n", \
				__FILE__, __LINE__, #c);                             \
			__builtin_trap();                                            \
		}                                                                    \
	} while (0)

static uint8_t *in_area;          /* MAX_IN bytes, then a guard page */
static uint8_t *pages[NPAGES + 1]; /* each between guard pages; [NPAGES]: scratch */
static void *eng_ctx[2];
static void *codec_ctx[2];
static const lm__engine_ops *const engines[2] = {&lm__engine_isal, &lm__engine_zlib};

static int setup(void)
{
	size_t pg = 4096;
	uint8_t *m;

	m = mmap(NULL, MAX_IN + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || mprotect(m + MAX_IN, pg, PROT_NONE))
		return -1;
	in_area = m;
	/* guard, page, guard, page, ..., guard */
	m = mmap(NULL, (2 * (NPAGES + 1) + 1) * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	for (int i = 0; i <= NPAGES; i++) {
		pages[i] = m + (2 * (size_t)i + 1) * pg;
		if (mprotect(pages[i], pg, PROT_READ | PROT_WRITE))
			return -1;
	}
	for (int e = 0; e < 2; e++) {
		lm__codec_params p = {
			.page_size = PS,
			.packet_pages = NPAGES,
			.accel = LM_ACCEL_OFF,
			.engine = e ? LM_ENGINE_ZLIB : LM_ENGINE_ISAL,
			.busy_retries = 3,
		};
		if (engines[e]->ctx_new(&eng_ctx[e], 0, PS, 1) ||
		    lm__codec_deflate.ctx_new(&codec_ctx[e], &p))
			return -1;
	}
	return 0;
}

/* The input copied so that its last byte touches the guard page. */
static const uint8_t *guarded_input(const uint8_t *data, size_t size)
{
	uint8_t *p = in_area + MAX_IN - size;

	memcpy(p, data, size);
	return p;
}

static void engines_one_page(const uint8_t *data, size_t size)
{
	const uint8_t *in = guarded_input(data, size);
	int ok[2];

	for (int e = 0; e < 2; e++) {
		uint8_t *out = pages[e];
		lm__engine_job j = {
			.op = LM_ENGINE_DECOMPRESS,
			.in = in,
			.in_len = (uint32_t)size,
			.out = out,
			.out_cap = PS,
		};
		int rc = engines[e]->execute(eng_ctx[e], &j);
		INVARIANT(rc == 0 || rc == LM_EDECODE);
		ok[e] = rc == 0;
		INVARIANT(ok[e] ? j.out_len == PS : j.out_len == 0);
	}
	if (ok[0] && ok[1])
		INVARIANT(memcmp(pages[0], pages[1], PS) == 0);
}

static void codec_packet(const uint8_t *data, size_t size)
{
	uint32_t n, lens[NPAGES];
	void *dst[NPAGES];
	size_t hdr, in_len;
	const uint8_t *in;
	void *ctx;
	lm__err e = {0};
	int rc;

	if (size < 1)
		return;
	n = (data[0] & 3u) + 1;
	ctx = codec_ctx[(data[0] >> 2) & 1];
	hdr = 1 + 2 * (size_t)n;
	if (size < hdr)
		return;
	for (uint32_t i = 0; i < n; i++)
		lens[i] = ((uint32_t)data[1 + 2 * i] << 8 | data[2 + 2 * i]) % 4100u;
	in_len = size - hdr;
	in = guarded_input(data + hdr, in_len);
	for (uint32_t i = 0; i < n; i++) {
		memset(pages[i], 0xCD, PS);
		dst[i] = pages[i];
	}
	rc = lm__codec_deflate.decode(ctx, in, in_len, lens, dst, n, PS, &e);
	INVARIANT(rc == 0 || rc == LM_EDECODE);
	if (rc == 0) {
		size_t pos = 0;
		for (uint32_t i = 0; i < n; i++) {
			INVARIANT(lens[i] >= 1 && lens[i] <= PS);
			if (lens[i] == PS)
				INVARIANT(memcmp(pages[i], in + pos, PS) == 0);
			pos += lens[i];
		}
		INVARIANT(pos == in_len);
	} else {
		INVARIANT(e.msg[0] != 0);
	}
}

static void damaged_stream(const uint8_t *data, size_t size)
{
	static uint8_t page[PS], comp[PS];
	int e = (data[0] >> 6) & 1;
	uint32_t len, flips = data[1] & 3u, cut = (data[1] >> 2) & 3u;
	uint32_t pos = (uint32_t)data[2] << 8 | data[3];
	const uint8_t *body = data + 4;
	size_t blen = size - 4;
	lm__engine_job j = {.op = LM_ENGINE_COMPRESS, .in = page, .in_len = PS, .out = comp,
			    .out_cap = PS - 1};
	uint8_t *in;
	int rc;

	for (uint32_t i = 0; i < PS; i++)
		page[i] = blen ? body[i % blen] : 0;
	rc = engines[e]->execute(eng_ctx[e], &j);
	INVARIANT(rc == 0 || rc == LM_ECODEC);
	if (rc)
		return; /* did not fit: would travel raw */
	INVARIANT(j.out_len > 0 && j.out_len < PS);
	len = j.out_len;
	for (uint32_t f = 0; f < flips; f++) {
		pos = pos * 2654435761u + f;
		comp[pos % len] ^= (uint8_t)(1u << ((pos >> 8) % 8));
	}
	if (cut) {
		if (data[1] & 0x10) {
			for (uint32_t i = 0; i < cut && len < PS - 1; i++)
				comp[len++] = data[1];
		} else {
			len = len > cut ? len - cut : 1;
		}
	}
	in = in_area + MAX_IN - len;
	memcpy(in, comp, len);
	for (int d = 0; d < 2; d++) {
		lm__engine_job k = {.op = LM_ENGINE_DECOMPRESS, .in = in, .in_len = len,
				    .out = pages[d], .out_cap = PS};
		rc = engines[d]->execute(eng_ctx[d], &k);
		INVARIANT(rc == 0 || rc == LM_EDECODE);
		INVARIANT(rc == 0 ? k.out_len == PS : k.out_len == 0);
		if (!flips && !cut)
			INVARIANT(rc == 0 && memcmp(pages[d], page, PS) == 0);
		/* An intact stream cut short never decodes. With bit flips too
		 * it may: a flip can turn it into another, shorter stream that
		 * ends early and still yields exactly one page. */
		if (cut && !flips && !(data[1] & 0x10))
			INVARIANT(rc != 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;

	if (!ready) {
		if (setup()) {
			fprintf(stderr, "fuzz_deflate: setup failed\n");
			abort();
		}
		ready = 1;
	}
	if (size > MAX_IN)
		return 0;
	engines_one_page(data, size);
	codec_packet(data, size);
	if (size >= 4 && (data[0] & 0x80))
		damaged_stream(data, size);
	return 0;
}

#ifdef LM_FUZZ_SEEDGEN
/* Writes the seeds into the directory argv[1]. */
static void page_of(uint8_t *p, int kind)
{
	static const char *const words[] = {"page ", "memory ", "kernel ", "migration ", "the ",
					    "of ", "channel ", "queue\n"};
	uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(kind + 1);

	for (uint32_t i = 0; i < PS;) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (kind == 0) {
			const char *w = words[x % 8];
			while (*w && i < PS)
				p[i++] = (uint8_t)*w++;
		} else if (kind == 1) {
			uint32_t v = (uint32_t)(i / 16), z = 0;
			memcpy(p + i, &v, 4);
			memcpy(p + i + 4, &z, 4);
			memcpy(p + i + 8, &x, 8);
			p[i + 8] = p[i + 9] = 0x7f;
			i += 16;
		} else {
			p[i++] = (uint8_t)(0x20 + kind);
		}
	}
}

static void put(const char *dir, const char *name, const uint8_t *b, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b, 1, n, f) != n) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

static uint32_t squeeze(int e, const uint8_t *in, uint32_t len, uint8_t *out, uint32_t cap)
{
	void *c;
	lm__engine_job j = {.op = LM_ENGINE_COMPRESS, .in = in, .in_len = len, .out = out,
			    .out_cap = cap};
	int rc;

	engines[e]->ctx_new(&c, 0, PS, 1);
	rc = engines[e]->execute(c, &j);
	engines[e]->ctx_free(c);
	return rc ? 0 : j.out_len;
}

int main(int argc, char **argv)
{
	static uint8_t pg[3][PS], two[2 * PS], out[4 * PS], pkt[8 * PS];
	const char *dir = argc > 1 ? argv[1] : ".";
	char name[64];
	uint32_t n;

	for (int k = 0; k < 3; k++)
		page_of(pg[k], k);
	for (int e = 0; e < 2; e++) {
		for (int k = 0; k < 3; k++) {
			n = squeeze(e, pg[k], PS, out, PS - 1);
			snprintf(name, sizeof(name), "page-%s-%d", engines[e]->name, k);
			put(dir, name, out, n);
		}
		n = squeeze(e, pg[0], PS / 2, out, PS);
		snprintf(name, sizeof(name), "half-page-%s", engines[e]->name);
		put(dir, name, out, n);
		memcpy(two, pg[0], PS);
		memcpy(two + PS, pg[1], PS);
		n = squeeze(e, two, 2 * PS, out, 2 * PS);
		snprintf(name, sizeof(name), "two-pages-%s", engines[e]->name);
		put(dir, name, out, n);
	}
	/* Codec packets: 3 pages (compressed, raw, compressed), both engines. */
	for (int e = 0; e < 2; e++) {
		size_t pos = 7;
		uint32_t l0 = squeeze(e, pg[0], PS, pkt + pos, PS - 1);
		pos += l0;
		memcpy(pkt + pos, pg[1], PS);
		pos += PS;
		uint32_t l2 = squeeze(1 - e, pg[2], PS, pkt + pos, PS - 1);
		pos += l2;
		pkt[0] = (uint8_t)(2 | (e << 2));
		pkt[1] = (uint8_t)(l0 >> 8), pkt[2] = (uint8_t)l0;
		pkt[3] = (uint8_t)(PS >> 8), pkt[4] = (uint8_t)PS;
		pkt[5] = (uint8_t)(l2 >> 8), pkt[6] = (uint8_t)l2;
		snprintf(name, sizeof(name), "packet-3-%s", engines[e]->name);
		put(dir, name, pkt, pos);
	}
	/* Mode 4: a page of text (and of records), intact and damaged. */
	for (int e = 0; e < 2; e++) {
		static const uint8_t damage[2] = {0x00, 0x11};
		for (int d = 0; d < 2; d++) {
			pkt[0] = (uint8_t)(0x80 | (e << 6));
			pkt[1] = damage[d];
			pkt[2] = 0x12, pkt[3] = 0x34;
			memcpy(pkt + 4, pg[e], 600);
			snprintf(name, sizeof(name), "stream-%s-%s", engines[e]->name,
				 d ? "damaged" : "intact");
			put(dir, name, pkt, 604);
		}
	}
	return 0;
}
#endif
