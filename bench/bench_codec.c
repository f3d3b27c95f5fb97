/*
 * Codec benchmark on one core: every registered codec (and, for deflate,
 * every software engine) compresses and decompresses the non-zero pages of
 * an image in packets of 128 pages, as a channel thread would. Prints
 * MB/s of input (page bytes) per core for compression and decompression,
 * the ratio, and the pages that went raw; medians of RUNS passes. zlib's
 * own deflate at level 1 (raw, one page at a time) is measured in the same
 * run as the reference the deflate targets are stated against.
 *
 *   bench_codec IMAGE [RUNS] [LEVEL]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "codec/codec.h"
#include "wire.h"
#include "zero.h"

#define PS 4096u
#define PKT 128u

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

typedef struct corpus {
	const uint8_t **pages; /* non-zero pages of the image */
	uint32_t n;
} corpus;

typedef struct result {
	double c_mbs, d_mbs, ratio;
	uint64_t raw_pages;
} result;

/* One pass: encode every packet, keep the payloads, decode them all. */
static int pass(const lm__codec_ops *ops, void *ctx, const corpus *c, uint8_t *enc, size_t cap,
		uint8_t *dst, double *tc, double *td, uint64_t *out_bytes, uint64_t *raw)
{
	static uint32_t lens[PKT];
	uint64_t total = 0;
	double t0, t_enc = 0, t_dec = 0;
	lm__err e;

	*raw = 0;
	for (uint32_t at = 0; at < c->n; at += PKT) {
		uint32_t n = c->n - at < PKT ? c->n - at : PKT;
		void *outp[PKT];
		size_t len = 0, raw_len = 0;
		int rc;

		t0 = now();
		rc = ops->encode(ctx, (const void *const *)(c->pages + at), n, PS, enc, cap, lens, &len);
		t_enc += now() - t0;
		if (rc == LM_ECODEC) { /* the packet goes raw */
			*raw += n;
			total += (uint64_t)n * PS;
			continue;
		}
		if (rc)
			return rc;
		for (uint32_t i = 0; i < n; i++)
			outp[i] = dst + (size_t)i * PS;
		if (ops->per_page) {
			/* Raw pages are not in enc: rebuild the wire payload. */
			static uint8_t wire[PKT * PS];
			size_t w = 0, k = 0;
			for (uint32_t i = 0; i < n; i++) {
				if (lens[i] == PS) {
					memcpy(wire + w, c->pages[at + i], PS);
					(*raw)++;
				} else {
					memcpy(wire + w, enc + k, lens[i]);
					k += lens[i];
				}
				w += lens[i];
			}
			raw_len = w;
			t0 = now();
			rc = ops->decode(ctx, wire, raw_len, lens, outp, n, PS, &e);
			t_dec += now() - t0;
			total += raw_len;
		} else {
			t0 = now();
			rc = ops->decode(ctx, enc, len, lens, outp, n, PS, &e);
			t_dec += now() - t0;
			total += len;
		}
		if (rc) {
			fprintf(stderr, "%s: decode failed: %s\n", ops->name, e.msg);
			return rc;
		}
		for (uint32_t i = 0; i < n; i++)
			if (memcmp(outp[i], c->pages[at + i], PS)) {
				fprintf(stderr, "%s: page mismatch\n", ops->name);
				return LM_EDECODE;
			}
	}
	*tc = t_enc;
	*td = t_dec;
	*out_bytes = total;
	return 0;
}

static int run_codec(const lm__codec_ops *ops, lm_engine_id engine, int level, const corpus *c,
		     int runs, result *res)
{
	lm_engine_stats stats[LM_MAX_ENGINES];
	lm__codec_params p = {.level = level, .page_size = PS, .packet_pages = PKT,
			      .accel = LM_ACCEL_OFF, .engine = engine, .busy_retries = 3,
			      .stats = stats};
	size_t cap = (size_t)ops->payload_bound(PS, PKT);
	uint8_t *enc = malloc(cap), *dst = malloc((size_t)PKT * PS);
	double tc[32], td[32], bytes = (double)c->n * PS;
	uint64_t out = 0;
	void *ctx = NULL;
	int rc;

	memset(stats, 0, sizeof(stats));
	if (!enc || !dst || (rc = ops->ctx_new(&ctx, &p))) {
		free(enc);
		free(dst);
		return -1;
	}
	for (int r = 0; r < runs; r++)
		if ((rc = pass(ops, ctx, c, enc, cap, dst, &tc[r], &td[r], &out, &res->raw_pages)))
			break;
	ops->ctx_free(ctx);
	free(enc);
	free(dst);
	if (rc)
		return rc;
	qsort(tc, (size_t)runs, sizeof(double), cmp_d);
	qsort(td, (size_t)runs, sizeof(double), cmp_d);
	res->c_mbs = bytes / tc[runs / 2] / 1e6;
	res->d_mbs = bytes / td[runs / 2] / 1e6;
	res->ratio = bytes / (double)out;
	return 0;
}

/* zlib level 1, raw deflate page by page, one reused stream: the
 * reference implementation the deflate engines are compared with. */
static double zlib_reference(const corpus *c, int runs, double *ratio)
{
	z_stream z;
	uint8_t out[PS];
	double t[32];
	uint64_t total = 0;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return 0;
	for (int r = 0; r < runs; r++) {
		double t0 = now();
		total = 0;
		for (uint32_t i = 0; i < c->n; i++) {
			deflateReset(&z);
			z.next_in = (Bytef *)c->pages[i];
			z.avail_in = PS;
			z.next_out = out;
			z.avail_out = PS - 1;
			total += deflate(&z, Z_FINISH) == Z_STREAM_END ? PS - 1 - z.avail_out : PS;
		}
		t[r] = now() - t0;
	}
	deflateEnd(&z);
	qsort(t, (size_t)runs, sizeof(double), cmp_d);
	*ratio = (double)c->n * PS / (double)total;
	return (double)c->n * PS / t[runs / 2] / 1e6;
}

int main(int argc, char **argv)
{
	static const char *const engines[] = {NULL, "isal", "zlib", "qpl-sw"};
	int runs = argc > 2 ? atoi(argv[2]) : 3, level = argc > 3 ? atoi(argv[3]) : 0;
	struct stat sb;
	corpus c = {0};
	uint8_t *img;
	double zref, zratio;
	int fd;

	if (argc < 2 || runs < 1 || runs > 32) {
		fprintf(stderr, "usage: bench_codec IMAGE [RUNS 1..32] [LEVEL]\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size < (off_t)PS) {
		perror(argv[1]);
		return 1;
	}
	img = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (img == MAP_FAILED)
		return 1;
	lm__zero_init();
	c.pages = malloc(sizeof(*c.pages) * ((size_t)sb.st_size / PS));
	for (size_t off = 0; off + PS <= (size_t)sb.st_size; off += PS)
		if (!lm__is_zero(img + off, PS))
			c.pages[c.n++] = img + off;
	printf("bench_codec: %s, %u non-zero pages (%.1f MiB), %d runs, 1 core, median\n", argv[1],
	       c.n, c.n * (double)PS / (1 << 20), runs);
	zref = zlib_reference(&c, runs, &zratio);
	printf("%-22s %10s %10s %7s %9s\n", "codec/engine", "comp MB/s", "dec MB/s", "ratio",
	       "raw pages");
	printf("%-22s %10.0f %10s %7.2f %9s\n", "zlib-1 reference", zref, "-", zratio, "-");
	for (uint16_t id = 0; id < 256; id++) {
		const lm__codec_ops *ops = lm__codec_get(id);
		int nengines = id == LM_CODEC_DEFLATE ? 4 : 1;
		if (!ops || ops->raw_only)
			continue; /* none: nothing to measure */
		for (int k = ops->id == LM_CODEC_DEFLATE ? 1 : 0; k < nengines; k++) {
			char name[40];
			result res = {0};
			if (run_codec(ops, (lm_engine_id)k, level, &c, runs, &res))
				continue; /* e.g. qpl-sw without QPL */
			snprintf(name, sizeof(name), "%s%s%s", ops->name, engines[k] ? "/" : "",
				 engines[k] ? engines[k] : "");
			printf("%-22s %10.0f %10.0f %7.2f %9llu", name, res.c_mbs, res.d_mbs, res.ratio,
			       (unsigned long long)res.raw_pages);
			if (id == LM_CODEC_DEFLATE)
				printf("   compress = %.1fx zlib-1", res.c_mbs / zref);
			printf("\n");
		}
	}
	return 0;
}
