/* Test assertions that stay active in release builds (never assert()). */
#ifndef LM_TEST_CHECK_H
#define LM_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "livemig.h"

static int lm_test_failures, lm_test_checks;

#define CHECK(cond)                                                                  \
	do {                                                                         \
		lm_test_checks++;                                                    \
		if (!(cond)) {                                                       \
			lm_test_failures++;                                          \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
		}                                                                    \
	} while (0)

#define CHECK_EQ(a, b)                                                               \
	do {                                                                         \
		long long lm_a_ = (long long)(a), lm_b_ = (long long)(b);            \
		lm_test_checks++;                                                    \
		if (lm_a_ != lm_b_) {                                                \
			lm_test_failures++;                                          \
			fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, %s == %lld\n", \
				__FILE__, __LINE__, #a, lm_a_, #b, lm_b_);           \
		}                                                                    \
	} while (0)

/* lm_region_checksum() as a value; a failure to compute it fails the test. */
static inline uint64_t region_sum(const void *base, uint64_t len)
{
	uint64_t sum = 0;
	int rc = lm_region_checksum(base, len, &sum);

	CHECK_EQ(rc, 0);
	return sum;
}

/* text holds want; else says so, with label. */
static inline void check_contains(const char *label, const char *text, const char *want)
{
	int ok = strstr(text, want) != NULL;

	CHECK(ok);
	if (!ok)
		fprintf(stderr, "%s: \"%s\" lacks \"%s\"\n", label, text, want);
}

#define TEST_DONE(name)                                                              \
	do {                                                                         \
		printf("%s: %d checks, %d failed\n", name, lm_test_checks,           \
		       lm_test_failures);                                            \
		return lm_test_failures ? 1 : 0;                                     \
	} while (0)

/* 1 under ASan or TSan: tests scale their sizes down there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LM_TEST_SLOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LM_TEST_SLOW 1
#endif
#endif
#ifndef LM_TEST_SLOW
#define LM_TEST_SLOW 0
#endif

#endif
