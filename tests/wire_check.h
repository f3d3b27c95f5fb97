/*
 * Assertions for the checked decoders of src/wire.h (test_wire.c,
 * test_packed.c): a call fails with the code and names the field in its
 * message, or succeeds. Each includes check.h and wire.h first.
 */
#ifndef LM_TEST_WIRE_CHECK_H
#define LM_TEST_WIRE_CHECK_H

#include <stdio.h>
#include <string.h>

static lm__err E;

/* A decoder call fails with `code` and names `field` in its message. */
#define REJECT(expr, code, field)                                                           \
	do {                                                                                \
		memset(&E, 0, sizeof(E));                                                   \
		int rc_ = (expr);                                                           \
		CHECK_EQ(rc_, (code));                                                      \
		CHECK(strstr(E.msg, (field)) != NULL);                                      \
		if (rc_ != (code) || !strstr(E.msg, (field)))                               \
			fprintf(stderr, "  (wanted %s / \"%s\", got %d / \"%s\")\n", #code, \
				(field), rc_, E.msg);                                       \
	} while (0)

#define ACCEPT(expr)                                                                \
	do {                                                                        \
		memset(&E, 0, sizeof(E));                                           \
		int rc_ = (expr);                                                   \
		CHECK_EQ(rc_, 0);                                                   \
		if (rc_)                                                            \
			fprintf(stderr, "  (unexpected: %d \"%s\")\n", rc_, E.msg); \
	} while (0)

#endif
