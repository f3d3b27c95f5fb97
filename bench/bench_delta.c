/*
 * bench_delta.c - delta pages (src/codec/delta.h): encode and apply speed.
 *
 * Cases, over 4096 pairs of 4 KiB pages (16 MiB old + 16 MiB new, random
 * bytes, so L2 misses like the sender's real pages):
 *   store-8    one aligned 8-byte store per page
 *   runs-10%   ten 41-byte stores per page at random places (~10% of it)
 *   dense-10%  each byte changed with probability 10%
 *   dense-50%  each byte changed with probability 50%
 * encode: lm__delta_encode with no limit (the whole page is scanned and
 * encoded); encode/2: with limit page_size / 2, as the sender calls it (a
 * page that does not shrink to half stops early). apply: lm__delta_apply of
 * the full encodings onto the old pages. MB/s = page bytes per second
 * (1 MB = 1e6 bytes), median of repetitions.
 *
 * Usage: bench_delta [seconds-per-repetition] [repetitions]
 */
#include "codec/delta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PS 4096u
#define NP 4096u
#define MAX_REPS 101

static uint8_t *old_pg, *new_pg, *enc;
static size_t enc_len[NP];
static volatile size_t sink;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static void make_case(int which)
{
	for (size_t i = 0; i < (size_t)NP * PS; i += 8) {
		uint64_t w = rnd();
		memcpy(old_pg + i, &w, 8);
	}
	memcpy(new_pg, old_pg, (size_t)NP * PS);
	for (uint32_t p = 0; p < NP; p++) {
		uint8_t *n = new_pg + (size_t)p * PS;
		if (which == 0) {
			uint32_t at = (uint32_t)(rnd() % (PS / 8) * 8);
			for (uint32_t k = 0; k < 8; k++)
				n[at + k] ^= (uint8_t)(1 + rnd() % 255);
			continue;
		}
		if (which == 1) {
			for (int r = 0; r < 10; r++) {
				uint32_t at = (uint32_t)(rnd() % (PS - 41));
				for (uint32_t k = 0; k < 41; k++)
					n[at + k] ^= (uint8_t)(1 + rnd() % 255);
			}
			continue;
		}
		for (uint32_t k = 0; k < PS; k++) {
			uint64_t x = rnd();
			if (x % 100 < (which == 2 ? 10u : 50u))
				n[k] ^= (uint8_t)(1 + (x >> 32) % 255);
		}
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One pass over all pages: 0 encode, 1 encode with limit PS/2, 2 apply. */
static size_t pass(int op)
{
	size_t total = 0, limit = op == 1 ? PS / 2 : LM_DELTA_MAX(PS) + 1;
	lm__err e;

	for (uint32_t p = 0; p < NP; p++) {
		const uint8_t *o = old_pg + (size_t)p * PS, *n = new_pg + (size_t)p * PS;
		uint8_t *out = enc + (size_t)p * LM_DELTA_MAX(PS);
		if (op == 2) {
			if (lm__delta_apply((uint8_t *)o, PS, out, enc_len[p], &e)) {
				fprintf(stderr, "bench_delta: apply failed: %s\n", e.msg);
				exit(1);
			}
			total += enc_len[p];
			continue;
		}
		size_t len = lm__delta_encode(o, n, PS, out, limit);
		if (op == 0)
			enc_len[p] = len;
		total += len == LM_DELTA_TOO_BIG ? 0 : len;
	}
	sink += total;
	return total;
}

static double run(int op, double secs, int reps)
{
	double r[MAX_REPS];

	for (int i = 0; i < reps; i++) {
		size_t passes = 0;
		double t0 = now_s(), t;
		do {
			pass(op);
			passes++;
			t = now_s();
		} while (t - t0 < secs);
		r[i] = (double)passes * NP * PS / (t - t0) / 1e6;
	}
	qsort(r, (size_t)reps, sizeof(r[0]), cmp_double);
	return r[reps / 2];
}

int main(int argc, char **argv)
{
	static const char *const names[] = {"store-8", "runs-10%", "dense-10%", "dense-50%"};
	double secs = 0.3;
	int reps = 5;

	if (argc > 1)
		secs = strtod(argv[1], NULL);
	if (argc > 2)
		reps = atoi(argv[2]);
	if (!(secs > 0) || reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "usage: %s [seconds-per-repetition > 0] [repetitions 1..%d]\n",
			argv[0], MAX_REPS);
		return 2;
	}
	old_pg = aligned_alloc(PS, (size_t)NP * PS);
	new_pg = aligned_alloc(PS, (size_t)NP * PS);
	enc = malloc((size_t)NP * LM_DELTA_MAX(PS));
	if (!old_pg || !new_pg || !enc) {
		fprintf(stderr, "bench_delta: out of memory\n");
		return 1;
	}
	printf("bench_delta: %u pages of %u bytes, %d x %.2f s per figure, MB/s of page bytes "
	       "(median)\n",
	       NP, PS, reps, secs);
	for (int c = 0; c < 4; c++) {
		size_t bytes, half = 0;
		double e_full, e_half, apply;

		make_case(c);
		bytes = pass(0);
		for (uint32_t p = 0; p < NP; p++) {
			size_t len = lm__delta_encode(old_pg + (size_t)p * PS,
						      new_pg + (size_t)p * PS, PS, enc, PS / 2);
			half += len != LM_DELTA_TOO_BIG;
		}
		pass(0); /* enc was overwritten by the check above */
		e_full = run(0, secs, reps);
		e_half = run(1, secs, reps);
		apply = run(2, secs, reps); /* XOR: old pages toggle, the runs stay valid */
		printf("%-10s %7.1f bytes/page, %5.1f%% under half a page: encode %6.0f MB/s, "
		       "encode/2 %6.0f MB/s, apply %6.0f MB/s\n",
		       names[c], (double)bytes / NP, 100.0 * (double)half / NP, e_full, e_half,
		       apply);
		fflush(stdout);
	}
	free(old_pg);
	free(new_pg);
	free(enc);
	return 0;
}
