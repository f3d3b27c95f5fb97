/*
 * libFuzzer target: arbitrary bytes -> the decode() of every registered
 * codec (none, deflate when built, zstd, lz4, zlib), as the receiver calls
 * it for a DATA packet.
 *
 * Input layout:
 *   byte 0   codec: the id byte0 & 15 when a codec has that id, else the
 *            (byte0 % count)-th registered codec (seeds stay valid when a
 *            codec is added)
 *   byte 1   bits 0-2: n - 1 (1..8 pages); bit 3: page size 65536, else 4096
 *   per-page codecs that encode (deflate): 2 * (n - 1) bytes, be16 each:
 *            page i's length is 1 + v % page_size; the last page gets the
 *            rest of the payload
 *   the rest the payload
 * The length table is one lm__dec_data_tables() accepts, and inputs that it
 * would refuse are skipped: page_size each for none and per-packet codecs,
 * none's payload exactly n pages, a per-page length outside 1..page_size,
 * a payload above payload_bound(page_size, n).
 *
 * Each input is decoded twice, into pages first filled with 0xa5 and then
 * with 0x5a. Checked (violations __builtin_trap()): decode returns 0 or
 * LM_EDECODE with a message naming data.payload or data.length; both runs
 * agree; after a success the two sets of pages are identical, so every
 * byte of every page was written (an unwritten byte would keep its fill).
 *
 * The payload ends at a PROT_NONE page and every destination page sits
 * between PROT_NONE pages: the compression libraries are not instrumented,
 * so ASan alone would not see them read or write out of bounds. Contexts
 * are made once per codec and page size and reused, so a failed packet's
 * leftover state meets the next input, as on a receiver's channel.
 *
 * Seeds (tests/seeds/fuzz_decode/): small valid packets of every codec.
 * Regenerate (each seed is checked to decode):
 *   cc -D_GNU_SOURCE -DLM_FUZZ_SEEDGEN -Iinclude -Isrc tests/fuzz_decode.c \
 *      build/liblivemig.a -lisal -lz -lzstd -llz4 -lxxhash -lpthread -o /tmp/seedgen_decode &&
 *   /tmp/seedgen_decode tests/seeds/fuzz_decode
 * (a library built with QPL also needs /opt/qpl/lib/libqpl.a -lstdc++ -ldl).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "codec/codec.h"
#include "wire.h"

#define MAX_N 8u
#define MAX_IN (1u << 20)
#define GUARD 4096u

#define INVARIANT(c)                                                                 \
	do {                                                                         \
		if (!(c)) {                                                          \
			fprintf(stderr, "fuzz_decode: invariant failed at %s:%d: %s\n", \
				__FILE__, __LINE__, #c);                             \
			__builtin_trap();                                            \
		}                                                                    \
	} while (0)

static const lm__codec_ops *codecs[16];
static unsigned ncodecs;
static void *ctxs[16][2];         /* [codec][page size 4096, 65536] */
static lm_engine_stats stats[16][2][LM_MAX_ENGINES];
static uint8_t *in_end;           /* MAX_IN bytes end here, a guard follows */
static void *pages[2][MAX_N];     /* each between guard pages */
static uint8_t *first;            /* the first run's pages, to compare */
static int last_rc;               /* for the seed generator */

static uint8_t *guarded(size_t len)
{
	uint8_t *m = mmap(NULL, len + 2 * GUARD, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED || mprotect(m + GUARD, len, PROT_READ | PROT_WRITE))
		return NULL;
	return m + GUARD;
}

static int setup(void)
{
	uint8_t *in = guarded(MAX_IN);

	if (!in)
		return -1;
	in_end = in + MAX_IN;
	for (unsigned z = 0; z < 2; z++)
		for (unsigned i = 0; i < MAX_N; i++)
			if (!(pages[z][i] = guarded(z ? 65536 : 4096)))
				return -1;
	first = malloc((size_t)MAX_N * 65536);
	for (uint16_t id = 0; id < 16; id++)
		if (lm__codec_get(id))
			codecs[ncodecs++] = lm__codec_get(id);
	return first && ncodecs ? 0 : -1;
}

/* The channel's context for this codec and page size, made on first use.
 * No accelerator: the deflate codec decodes with its software engine. */
static void *ctx_for(const lm__codec_ops *ops, unsigned z)
{
	lm__codec_params p = {.page_size = z ? 65536 : 4096, .packet_pages = MAX_N,
			      .accel = LM_ACCEL_OFF, .stats = stats[ops->id][z]};

	if (!ctxs[ops->id][z])
		INVARIANT(ops->ctx_new(&ctxs[ops->id][z], &p) == 0);
	return ctxs[ops->id][z];
}

static const lm__codec_ops *pick(uint8_t b)
{
	const lm__codec_ops *ops = lm__codec_get(b & 15);

	return ops ? ops : codecs[b % ncodecs];
}

/* lens[] as lm__dec_data_tables would accept them; -1: it would not. */
static int make_lens(const lm__codec_ops *ops, const uint8_t **p, size_t *left, uint32_t n,
		     uint32_t ps, uint32_t *lens)
{
	uint64_t sum = 0;

	for (uint32_t i = 0; i < n; i++)
		lens[i] = ps;
	if (ops->raw_only)
		return *left == (size_t)n * ps ? 0 : -1;
	if (!ops->per_page)
		return *left <= ops->payload_bound(ps, n) ? 0 : -1;
	if (*left < 2 * (size_t)(n - 1))
		return -1;
	for (uint32_t i = 0; i + 1 < n; i++, *p += 2, *left -= 2) {
		lens[i] = 1 + (((uint32_t)(*p)[0] << 8) | (*p)[1]) % ps;
		sum += lens[i];
	}
	if (sum >= *left || *left - sum > ps)
		return -1;
	lens[n - 1] = (uint32_t)(*left - sum);
	return 0;
}

static int decode(const lm__codec_ops *ops, void *ctx, const uint8_t *in, size_t len,
		  const uint32_t *lens, uint32_t n, unsigned z, int fill)
{
	uint32_t ps = z ? 65536 : 4096;
	lm__err e = {0};
	int rc;

	for (uint32_t i = 0; i < n; i++)
		memset(pages[z][i], fill, ps);
	rc = ops->decode(ctx, in, len, lens, pages[z], n, ps, &e);
	INVARIANT(rc == 0 || rc == LM_EDECODE);
	INVARIANT(rc == 0 || strncmp(e.msg, "data.payload", 12) == 0 ||
		  strncmp(e.msg, "data.length", 11) == 0);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	const lm__codec_ops *ops;
	uint32_t lens[MAX_N], n, ps;
	const uint8_t *p = data + 2;
	size_t left;
	unsigned z;
	uint8_t *in;
	int rc;

	last_rc = 1; /* skipped */
	if (!ready)
		INVARIANT(setup() == 0);
	ready = 1;
	if (size < 2)
		return 0;
	left = size - 2;
	ops = pick(data[0]);
	n = 1 + (data[1] & 7);
	z = (data[1] >> 3) & 1;
	ps = z ? 65536 : 4096;
	if (make_lens(ops, &p, &left, n, ps, lens) || left > MAX_IN)
		return 0;
	in = memcpy(in_end - left, p, left);
	rc = decode(ops, ctx_for(ops, z), in, left, lens, n, z, 0xa5);
	for (uint32_t i = 0; i < n; i++)
		memcpy(first + (size_t)i * ps, pages[z][i], ps);
	INVARIANT(decode(ops, ctx_for(ops, z), in, left, lens, n, z, 0x5a) == rc);
	for (uint32_t i = 0; rc == 0 && i < n; i++)
		INVARIANT(memcmp(first + (size_t)i * ps, pages[z][i], ps) == 0);
	last_rc = rc;
	return 0;
}

#ifdef LM_FUZZ_SEEDGEN
/* Small realistic pages: text (words picked by an LCG), mostly-zero pages
 * with a few words, or noise (raw literals inside a frame that shrinks). */
static void content(uint8_t *pg, uint32_t ps, uint32_t i, int kind)
{
	static const char *const words[] = {"the ", "guest ", "page ", "of ", "memory ",
					    "migrates ", "over ", "channels\n", "0x7f3a ", "{ "};
	uint32_t x = 12345 + i * 977, k = 0;

	memset(pg, 0, ps);
	while (k < ps) {
		x = x * 1103515245u + 12345u;
		if (kind == 0) {
			for (const char *w = words[(x >> 16) % 10]; *w && k < ps; w++)
				pg[k++] = (uint8_t)*w;
		} else if (kind == 1) {
			pg[k] = (uint8_t)(x >> 24);
			k += 256 + (x >> 16) % 256;
		} else {
			pg[k++] = (uint8_t)(x >> 24);
		}
	}
	pg[0] |= 1;
}

static int write_seed(const char *dir, const char *name, const uint8_t *b, size_t len)
{
	char path[512];
	FILE *f;

	LLVMFuzzerTestOneInput(b, len);
	if (last_rc != 0) {
		fprintf(stderr, "seed %s does not decode: %d\n", name, last_rc);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b, 1, len, f) != len || fclose(f)) {
		perror(path);
		return -1;
	}
	return 0;
}

/* One packet of n pages encoded with ops, in this target's input format. */
static int seed(const char *dir, const lm__codec_ops *ops, uint32_t n, unsigned z, int text)
{
	static uint8_t src[MAX_N][65536], enc[MAX_N * 65536 + 4096], buf[MAX_N * 65536 + 4096];
	uint32_t ps = z ? 65536 : 4096, lens[MAX_N];
	static lm_engine_stats st[LM_MAX_ENGINES];
	lm__codec_params p = {.page_size = ps, .packet_pages = MAX_N, .accel = LM_ACCEL_OFF,
			      .stats = st};
	const void *srcp[MAX_N];
	size_t len = 2, out_len = 0, at = 0;
	void *ctx = NULL;
	char name[64];
	int rc;

	for (uint32_t i = 0; i < n; i++) {
		content(src[i], ps, i, text ? (n == 3 && i == 1 ? 2 : 0) : 1);
		srcp[i] = src[i];
	}
	if (ops->ctx_new(&ctx, &p))
		return -1;
	rc = ops->encode(ctx, srcp, n, ps, enc, sizeof(enc), lens, &out_len);
	ops->ctx_free(ctx);
	if (rc)
		return rc == LM_ECODEC ? 0 : -1; /* does not shrink: no seed */
	buf[0] = (uint8_t)ops->id;
	buf[1] = (uint8_t)((n - 1) | (z << 3));
	if (ops->per_page && !ops->raw_only)
		for (uint32_t i = 0; i + 1 < n; i++, len += 2)
			lm__put16(buf + len, (uint16_t)(lens[i] - 1));
	if (!ops->per_page) {
		memcpy(buf + len, enc, out_len);
		len += out_len;
	} else {
		for (uint32_t i = 0; i < n; i++) { /* raw pages come from the region */
			int raw = ops->raw_only || lens[i] == ps;
			memcpy(buf + len, raw ? src[i] : enc + at, raw ? ps : lens[i]);
			len += raw ? ps : lens[i];
			at += raw ? 0 : lens[i];
		}
	}
	snprintf(name, sizeof(name), "%s-%ux%u-%s", ops->name, n, ps, text ? "text" : "sparse");
	return write_seed(dir, name, buf, len);
}

int main(int argc, char **argv)
{
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)"", 0); /* setup */
	for (unsigned c = 0; c < ncodecs; c++) {
		const lm__codec_ops *ops = codecs[c];
		bad |= seed(argv[1], ops, 1, 0, 1);
		if (ops->raw_only)
			continue; /* payloads of whole raw pages: one is enough */
		bad |= seed(argv[1], ops, 3, 0, 1);
		bad |= seed(argv[1], ops, 8, 0, 0);
		bad |= seed(argv[1], ops, 2, 1, 0);
	}
	return bad ? 1 : 0;
}
#endif
