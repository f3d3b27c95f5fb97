/*
 * bench_zero.c - zero-scan throughput of each lm__is_zero implementation.
 *
 * Cases (every scan is one lm__is_zero() call per 4096-byte page, the way
 * the library uses it):
 *   cached-64K  a 64 KiB zero buffer scanned repeatedly (L1/L2 resident)
 *   mem-256M    a 256 MiB zero buffer (memory bandwidth)
 *   mix-256M    256 MiB where 45% of pages are zero and the others have one
 *               non-zero byte at a random position (early exit); GB/s is
 *               page bytes classified per second, not bytes actually read
 *
 * Each case runs ~0.5 s per repetition, 5 repetitions; prints the median and
 * min/max.  Usage: bench_zero [seconds-per-repetition] [repetitions]
 */
#include "zero.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE        4096u
#define CACHED_SIZE (64u * 1024u)
#define BIG_SIZE    (256u * 1024u * 1024u)
#define MAX_REPS    101

static volatile size_t g_sink;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One pass: classify every page; returns the number of zero pages. */
static size_t scan_pass(const unsigned char *buf, size_t size)
{
	size_t zero = 0;
	for (size_t off = 0; off < size; off += PAGE) {
		zero += lm__is_zero(buf + off, PAGE);
		g_sink += zero; /* volatile: the calls cannot be elided */
	}
	return zero;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Runs repeated passes for ~secs; returns GB/s (1e9 bytes/s).  Aborts if a
 * pass gives the wrong number of zero pages. */
static double run_once(const unsigned char *buf, size_t size, size_t expect_zero, double secs)
{
	size_t passes = 0;
	double t0 = now_s(), t;
	do {
		/* Batch cheap passes so the clock is not read every 2 us. */
		size_t batch = size < (1u << 20) ? 64 : 1;
		for (size_t i = 0; i < batch; i++) {
			size_t z = scan_pass(buf, size);
			if (z != expect_zero) {
				fprintf(stderr,
					"bench_zero: wrong result: %zu zero pages, expected %zu\n",
					z, expect_zero);
				exit(1);
			}
		}
		passes += batch;
		t = now_s();
	} while (t - t0 < secs);
	return (double)passes * (double)size / (t - t0) / 1e9;
}

static void run_case(const char *impl, const char *name, const unsigned char *buf, size_t size,
		     size_t expect_zero, double secs, int reps)
{
	double r[MAX_REPS];
	(void)run_once(buf, size, expect_zero, secs / 5); /* warm-up */
	for (int i = 0; i < reps; i++)
		r[i] = run_once(buf, size, expect_zero, secs);
	qsort(r, (size_t)reps, sizeof r[0], cmp_double);
	printf("zero-scan %s %s: %.1f GB/s (median of %d, min %.1f max %.1f)\n", impl, name,
	       r[reps / 2], reps, r[0], r[reps - 1]);
	fflush(stdout);
}

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static uint64_t rnd(void)
{
	g_rng ^= g_rng >> 12;
	g_rng ^= g_rng << 25;
	g_rng ^= g_rng >> 27;
	return g_rng * 0x2545F4914F6CDD1Dull;
}

int main(int argc, char **argv)
{
	double secs = 0.5;
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

	lm__zero_init();
	printf("bench_zero: detected implementation: %s; %d x %.2f s per case; "
	       "1 GB/s = 1e9 bytes/s; one call per 4 KiB page\n",
	       lm__zero_impl(), reps, secs);

	unsigned char *cached = aligned_alloc(PAGE, CACHED_SIZE);
	unsigned char *big = aligned_alloc(PAGE, BIG_SIZE);
	unsigned char *mix = aligned_alloc(PAGE, BIG_SIZE);
	if (!cached || !big || !mix) {
		fprintf(stderr, "bench_zero: out of memory\n");
		return 1;
	}
	/* Write non-zero first, then zero, so every page is really backed by
	 * its own memory (untouched anonymous pages would all map the kernel's
	 * single shared zero page and be cache-resident). */
	memset(cached, 0xA5, CACHED_SIZE);
	memset(cached, 0, CACHED_SIZE);
	memset(big, 0xA5, BIG_SIZE);
	memset(big, 0, BIG_SIZE);
	memset(mix, 0xA5, BIG_SIZE);
	memset(mix, 0, BIG_SIZE);

	size_t npages = BIG_SIZE / PAGE, mix_zero = 0;
	for (size_t i = 0; i < npages; i++) {
		if (rnd() % 100 < 45) {
			mix_zero++;
		} else {
			size_t pos = (size_t)(rnd() % PAGE);
			mix[i * PAGE + pos] = (unsigned char)(1 + rnd() % 255);
		}
	}
	printf("bench_zero: mix-256M has %zu of %zu pages zero (%.1f%%)\n", mix_zero, npages,
	       100.0 * (double)mix_zero / (double)npages);

	static const char *const impls[] = {"portable", "avx2"};
	for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++) {
		int rc = lm__zero_force(impls[i]);
		if (rc != 0) {
			printf("zero-scan %s: skipped (%s)\n", impls[i],
			       rc == -ENOTSUP ? "not supported on this CPU" : strerror(-rc));
			continue;
		}
		run_case(impls[i], "cached-64K", cached, CACHED_SIZE, CACHED_SIZE / PAGE, secs,
			 reps);
		run_case(impls[i], "mem-256M", big, BIG_SIZE, npages, secs, reps);
		run_case(impls[i], "mix-256M", mix, BIG_SIZE, mix_zero, secs, reps);
	}

	free(cached);
	free(big);
	free(mix);
	return 0;
}
