/*
 * test_hash.c - XXH3 through lm__hash (src/hash.c) in every variant this
 * CPU can run ("portable" always, "avx2" when the CPU has it), forced one
 * after the other through src/cpu.h's override:
 *  - each variant equals an independent XXH3 (the header compiled here, for
 *    the baseline) for lengths 0..4 KiB and some larger, seeds 0 and not,
 *    one piece or split into several at any place;
 *  - the run-time choice is the fastest variant the CPU has;
 *  - an unknown name, or a variant the CPU lacks, is refused and leaves the
 *    choice in place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "check.h"
#include "cpu.h"
#include "hash.h"

enum { MAXLEN = 70000 };

static uint8_t buf[MAXLEN];

static void fill(void)
{
	uint64_t x = 0x9E3779B97F4A7C15ull;

	for (size_t i = 0; i < MAXLEN; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		buf[i] = (uint8_t)((x * 0x2545F4914F6CDD1Dull) >> 56);
	}
}

/* lm__hash of buf[0, len) in one piece and split in three at a and b. */
static void check_len(size_t len, uint64_t seed)
{
	uint64_t want = XXH3_64bits_withSeed(buf, len, seed);
	struct iovec one = {buf, len};
	size_t a = len / 3, b = len - len / 5;
	struct iovec three[3] = {{buf, a}, {buf + a, b - a}, {buf + b, len - b}};

	CHECK(lm__hash(&one, 1, seed) == want);
	CHECK(lm__hash(three, 3, seed) == want);
}

static void check_variant(const char *name)
{
	unsigned long failed = (unsigned long)lm_test_failures;

	CHECK_EQ(lm__hash_force(name), 0);
	CHECK(strcmp(lm__hash_impl(), name) == 0);
	for (size_t len = 0; len <= 4096; len++)
		check_len(len, len % 2 ? 0 : 0x1234567890abcdefull);
	for (size_t len = 4097; len <= MAXLEN; len = len * 3 / 2 + 7)
		check_len(len, 7);
	check_len(MAXLEN, 0);
	printf("test_hash: [%s] %s\n", name,
	       (unsigned long)lm_test_failures == failed ? "matches XXH3" : "DIFFERS from XXH3");
}

int main(void)
{
	const char *chosen = lm__hash_impl();
	int avx2 = lm__cpu_has(LM_CPU_AVX2);

	fill();
	printf("test_hash: run-time choice: %s\n", chosen);
	CHECK(strcmp(chosen, avx2 ? "avx2" : "portable") == 0);
	CHECK_EQ(lm__cpu_has(0), 0);

	check_variant("portable");
	if (avx2)
		check_variant("avx2");
	else
		printf("test_hash: [avx2] skipped: %s\n",
		       LM_CPU_X86 ? "this CPU has no AVX2" : "not an x86-64 build");

	/* Refusals keep the previous choice. */
	CHECK_EQ(lm__hash_force("portable"), 0);
	CHECK_EQ(lm__hash_force("bogus"), -ENOTSUP);
	CHECK_EQ(lm__hash_force(""), -ENOTSUP);
	CHECK_EQ(lm__hash_force(NULL), -ENOTSUP);
	if (!avx2)
		CHECK_EQ(lm__hash_force("avx2"), -ENOTSUP);
	CHECK(strcmp(lm__hash_impl(), "portable") == 0);
	TEST_DONE("test_hash");
}
