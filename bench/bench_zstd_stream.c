/*
 * zstd across packets. Today's codec (lm__codec_zstd: one frame per packet,
 * every packet decodes on its own) against one zstd stream per channel,
 * flushed at each packet boundary, as QEMU's multifd zstd does: a packet
 * may then match the channel's earlier packets, within the window of the
 * level's default parameters (what ZSTD_initCStream(level) gives QEMU).
 *
 * The non-zero pages of IMAGE are cut into packets of 128 pages, handed
 * to CHANNELS channels round-robin as the sender does; each channel has
 * its own contexts and is timed on its own, as if on its own core. Prints,
 * per level and mode: compress and decompress MB/s of page bytes on one
 * core, the ratio (page bytes / payload bytes; packets that go raw count
 * raw), and the end-to-end estimate on 1 and 10 Gbit/s links with one
 * core per channel on each side: max(payload / link, busiest core's
 * compress time, busiest core's decompress time). Medians of RUNS passes.
 *
 *   bench_zstd_stream IMAGE [RUNS] [LEVEL...]     (levels default: 1 3)
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <zstd.h>

#include "codec/codec.h"
#include "wire.h"
#include "zero.h"

#define PS 4096u
#define PKT 128u
#define CHANNELS 2u
#define MAX_RUNS 32

typedef struct corpus {
	const uint8_t **pages; /* non-zero pages of the image */
	uint32_t n;
} corpus;

/* One channel's pass: seconds of compression and decompression, bytes. */
typedef struct chan {
	double tc, td;
	uint64_t wire;
} chan;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return v[n / 2];
}

static int same_pages(const corpus *c, uint32_t at, uint32_t n, uint8_t *const *dst)
{
	for (uint32_t i = 0; i < n; i++)
		if (memcmp(dst[i], c->pages[at + i], PS))
			return 0;
	return 1;
}

/* Packet k of channel ch: its first page and page count (0: no more). */
static uint32_t packet(const corpus *c, uint32_t ch, uint32_t k, uint32_t *at)
{
	uint64_t first = ((uint64_t)k * CHANNELS + ch) * PKT;

	if (first >= c->n)
		return 0;
	*at = (uint32_t)first;
	return c->n - *at < PKT ? c->n - *at : PKT;
}

/* Today: livemig's zstd codec, a frame per packet. */
static int chan_frames(const corpus *c, int level, uint32_t ch, uint8_t *enc, size_t cap,
		       uint8_t **dst, chan *r)
{
	lm__codec_params p = {.level = level, .page_size = PS, .packet_pages = PKT};
	const lm__codec_ops *ops = &lm__codec_zstd;
	uint32_t lens[PKT], at, n;
	void *ctx;
	lm__err e;

	if (ops->ctx_new(&ctx, &p))
		return -1;
	for (uint32_t k = 0; (n = packet(c, ch, k, &at)); k++) {
		size_t len;
		double t0 = now();
		int rc = ops->encode(ctx, (const void *const *)(c->pages + at), n, PS, enc, cap, lens,
				     &len);
		r->tc += now() - t0;
		if (rc == LM_ECODEC) { /* sent raw: nothing to decode */
			r->wire += (uint64_t)n * PS;
			continue;
		}
		t0 = now();
		if (rc || ops->decode(ctx, enc, len, lens, (void *const *)dst, n, PS, &e) ||
		    !same_pages(c, at, n, dst)) {
			ops->ctx_free(ctx);
			return -1;
		}
		r->td += now() - t0;
		r->wire += len;
	}
	ops->ctx_free(ctx);
	return 0;
}

/* Compresses one packet into the channel's stream, flushed at its end. */
static int stream_put(ZSTD_CCtx *cc, const uint8_t *const *pages, uint32_t n, ZSTD_outBuffer *ob)
{
	for (uint32_t i = 0; i < n; i++) {
		ZSTD_inBuffer ib = {pages[i], PS, 0};
		ZSTD_EndDirective op = i + 1 == n ? ZSTD_e_flush : ZSTD_e_continue;
		size_t left;
		do {
			left = ZSTD_compressStream2(cc, ob, &ib, op);
			if (ZSTD_isError(left) || ob->pos == ob->size)
				return -1;
		} while (ib.pos < ib.size || (op == ZSTD_e_flush && left));
	}
	return 0;
}

/* Decodes one flushed packet into its pages; all of it, nothing more. */
static int stream_get(ZSTD_DCtx *dc, ZSTD_inBuffer *ib, uint8_t *const *dst, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		ZSTD_outBuffer ob = {dst[i], PS, 0};
		while (ob.pos < ob.size) {
			size_t ipos = ib->pos, opos = ob.pos;
			if (ZSTD_isError(ZSTD_decompressStream(dc, &ob, ib)) ||
			    (ib->pos == ipos && ob.pos == opos))
				return -1;
		}
	}
	return ib->pos == ib->size ? 0 : -1;
}

/* QEMU's way: one stream per channel, a flush per packet. */
static int chan_stream(const corpus *c, int level, uint32_t ch, uint8_t *enc, size_t cap,
		       uint8_t **dst, chan *r)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	uint32_t at, n;
	int rc = -1;

	if (!cc || !dc || ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level)))
		goto out;
	for (uint32_t k = 0; (n = packet(c, ch, k, &at)); k++) {
		ZSTD_outBuffer ob = {enc, cap, 0};
		ZSTD_inBuffer ib;
		double t0 = now();
		if (stream_put(cc, c->pages + at, n, &ob))
			goto out;
		r->tc += now() - t0;
		ib = (ZSTD_inBuffer){enc, ob.pos, 0};
		t0 = now();
		if (stream_get(dc, &ib, dst, n) || !same_pages(c, at, n, dst))
			goto out;
		r->td += now() - t0;
		r->wire += ob.pos;
	}
	rc = 0;
out:
	ZSTD_freeCCtx(cc);
	ZSTD_freeDCtx(dc);
	return rc;
}

typedef int (*chan_fn)(const corpus *, int, uint32_t, uint8_t *, size_t, uint8_t **, chan *);

static int measure(const char *mode, chan_fn fn, const corpus *c, int level, int runs)
{
	size_t cap = 2 * ZSTD_compressBound((size_t)PKT * PS);
	uint8_t *enc = malloc(cap), *dst[PKT], *dst_mem = malloc((size_t)PKT * PS);
	double tc[MAX_RUNS], td[MAX_RUNS], mc[MAX_RUNS], md[MAX_RUNS];
	double bytes = (double)c->n * PS, wire = 0, t1, t10;

	for (uint32_t i = 0; i < PKT; i++)
		dst[i] = dst_mem + (size_t)i * PS;
	for (int run = 0; run < runs; run++) {
		tc[run] = td[run] = mc[run] = md[run] = 0;
		wire = 0;
		for (uint32_t ch = 0; ch < CHANNELS; ch++) {
			chan r = {0, 0, 0};
			if (!enc || !dst_mem || fn(c, level, ch, enc, cap, dst, &r)) {
				fprintf(stderr, "%s level %d: failed\n", mode, level);
				free(enc);
				free(dst_mem);
				return -1;
			}
			tc[run] += r.tc;
			td[run] += r.td;
			mc[run] = r.tc > mc[run] ? r.tc : mc[run];
			md[run] = r.td > md[run] ? r.td : md[run];
			wire += (double)r.wire;
		}
	}
	free(enc);
	free(dst_mem);
	/* The end-to-end estimate: the link or the busiest core. */
	t1 = wire / (1e9 / 8);
	t10 = wire / (10e9 / 8);
	mc[0] = median(mc, runs);
	md[0] = median(md, runs);
	t1 = t1 > mc[0] ? t1 : mc[0];
	t1 = t1 > md[0] ? t1 : md[0];
	t10 = t10 > mc[0] ? t10 : mc[0];
	t10 = t10 > md[0] ? t10 : md[0];
	printf("%5d %-8s %10.0f %10.0f %7.3f %12.0f %8.3f %8.3f %8.3f %8.3f\n", level, mode,
	       bytes / median(tc, runs) / 1e6, bytes / median(td, runs) / 1e6, bytes / wire,
	       wire / 1e6, mc[0], md[0], t1, t10);
	return 0;
}

static int load(const char *path, corpus *c)
{
	struct stat sb;
	uint8_t *img;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size < (off_t)PS) {
		perror(path);
		return -1;
	}
	img = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (img == MAP_FAILED)
		return -1;
	lm__zero_init();
	c->pages = malloc(sizeof(*c->pages) * ((size_t)sb.st_size / PS));
	if (!c->pages)
		return -1;
	for (size_t off = 0; off + PS <= (size_t)sb.st_size; off += PS)
		if (!lm__is_zero(img + off, PS))
			c->pages[c->n++] = img + off;
	printf("bench_zstd_stream: %s, %zu pages, %u non-zero (%.1f MiB), packets of %u pages, "
	       "%u channels round-robin\n",
	       path, (size_t)sb.st_size / PS, c->n, c->n * (double)PS / (1 << 20), PKT, CHANNELS);
	return 0;
}

int main(int argc, char **argv)
{
	static const int default_levels[] = {1, 3};
	int runs = argc > 2 ? atoi(argv[2]) : 5;
	corpus c = {0};

	if (argc < 2 || runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "usage: bench_zstd_stream IMAGE [RUNS 1..%d] [LEVEL...]\n", MAX_RUNS);
		return 2;
	}
	if (load(argv[1], &c))
		return 1;
	printf("medians of %d passes; MB/s per core; busiest core's seconds; end to end "
	       "= max(payload/link, busiest core)\n",
	       runs);
	printf("%5s %-8s %10s %10s %7s %12s %8s %8s %8s %8s\n", "level", "mode", "comp MB/s",
	       "dec MB/s", "ratio", "payload MB", "comp s", "dec s", "1G s", "10G s");
	for (int i = 0; i < (argc > 3 ? argc - 3 : 2); i++) {
		int level = argc > 3 ? atoi(argv[3 + i]) : default_levels[i];
		if (measure("frames", chan_frames, &c, level, runs) ||
		    measure("stream", chan_stream, &c, level, runs))
			return 1;
	}
	return 0;
}
