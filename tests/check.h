/* Test assertions that stay active in release builds (never assert()). */
#ifndef LM_TEST_CHECK_H
#define LM_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

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

#define TEST_DONE(name)                                                              \
	do {                                                                         \
		printf("%s: %d checks, %d failed\n", name, lm_test_checks,           \
		       lm_test_failures);                                            \
		return lm_test_failures ? 1 : 0;                                     \
	} while (0)

#endif
