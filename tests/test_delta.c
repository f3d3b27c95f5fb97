/*
 * Delta pages' XOR-run encoding (src/codec/delta.h): round trips of typical
 * and random changes at every page size, the size the encoder picks, its
 * limit, and every class of malformed input with its message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codec/delta.h"

#define PS_MAX 65536u

static uint8_t old_pg[PS_MAX], cur_pg[PS_MAX], work[PS_MAX];
static uint8_t enc[LM_DELTA_MAX(PS_MAX)];

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

/* The encoding's size as delta.h defines it, computed bytewise: runs of
 * changed bytes, gaps of 1-2 equal bytes merged, pairs of minimal varints. */
static size_t vlen(uint32_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : 3;
}

static size_t ref_size(const uint8_t *a, const uint8_t *b, uint32_t ps)
{
	size_t n = 0;
	uint32_t pos = 0, p = 0;

	for (;;) {
		while (p < ps && a[p] == b[p])
			p++;
		if (p == ps)
			return n;
		uint32_t end = p + 1, last = p;
		for (; end < ps; end++) {
			if (a[end] != b[end])
				last = end;
			else if (end - last > 2)
				break;
		}
		end = last + 1;
		n += vlen(p - pos) + vlen(end - p) + (end - p);
		pos = end;
		p = end;
	}
}

/* Encodes old -> cur with no limit, checks the size against ref_size,
 * applies to a copy of old and compares with cur. Returns the size. */
static size_t round_trip(uint32_t ps, const char *what)
{
	lm__err e = {0};
	size_t n = lm__delta_encode(old_pg, cur_pg, ps, enc, LM_DELTA_MAX(ps) + 1);
	size_t want = ref_size(old_pg, cur_pg, ps);

	CHECK(n != LM_DELTA_TOO_BIG);
	if (n == LM_DELTA_TOO_BIG)
		return 0;
	if (n != want)
		fprintf(stderr, "%s (page %u): encoded %zu bytes, expected %zu\n", what, ps, n,
			want);
	CHECK_EQ(n, want);
	CHECK(n <= LM_DELTA_MAX(ps));
	memcpy(work, old_pg, ps);
	CHECK_EQ(lm__delta_apply(work, ps, enc, n, &e), 0);
	if (memcmp(work, cur_pg, ps))
		fprintf(stderr, "%s (page %u): applied page differs (%s)\n", what, ps, e.msg);
	CHECK(memcmp(work, cur_pg, ps) == 0);
	return n;
}

static void test_shapes(uint32_t ps)
{
	size_t n;

	fill_random(old_pg, ps);

	memcpy(cur_pg, old_pg, ps);
	CHECK_EQ(round_trip(ps, "unchanged"), 0);

	/* One 8-byte store, unaligned: skip, len 8, 8 bytes. */
	memcpy(cur_pg, old_pg, ps);
	for (int i = 0; i < 8; i++)
		cur_pg[1001 + i] ^= 0xff;
	n = round_trip(ps, "8-byte store");
	CHECK_EQ(n, 2 + 1 + 8);
	CHECK_EQ(enc[0], 0x80 | (1001 & 0x7f));
	CHECK_EQ(enc[1], 1001 >> 7);
	CHECK_EQ(enc[2], 8);

	/* Every other byte over half the page: gaps of 1 merge into one run. */
	memcpy(cur_pg, old_pg, ps);
	for (uint32_t i = 0; i < ps / 2; i += 2)
		cur_pg[i] ^= 0x5a;
	n = round_trip(ps, "every other byte");
	CHECK_EQ(n, 1 + vlen(ps / 2 - 1) + ps / 2 - 1);

	/* Every third byte: gaps of 2 merge too; every fourth: gaps of 3 do not. */
	memcpy(cur_pg, old_pg, ps);
	for (uint32_t i = 0; i < ps; i += 3)
		cur_pg[i] ^= 1;
	round_trip(ps, "every third byte");
	memcpy(cur_pg, old_pg, ps);
	for (uint32_t i = 0; i < ps; i += 4)
		cur_pg[i] ^= 1;
	n = round_trip(ps, "every fourth byte");
	CHECK_EQ(n, 3 * (ps / 4)); /* pairs of 3 bytes: skip 3 (0 first), len 1, 1 byte */

	/* The whole page: one pair, skip 0. */
	for (uint32_t i = 0; i < ps; i++)
		cur_pg[i] = (uint8_t)~old_pg[i];
	n = round_trip(ps, "whole page");
	CHECK_EQ(n, 1 + vlen(ps) + ps);
	CHECK(n <= LM_DELTA_MAX(ps));

	/* First byte, last byte, both. */
	memcpy(cur_pg, old_pg, ps);
	cur_pg[0] ^= 0x80;
	CHECK_EQ(round_trip(ps, "first byte"), 3);
	memcpy(cur_pg, old_pg, ps);
	cur_pg[ps - 1] ^= 1;
	CHECK_EQ(round_trip(ps, "last byte"), vlen(ps - 1) + 1 + 1);
	cur_pg[0] ^= 1;
	round_trip(ps, "first and last byte");
	/* Changes ending 1 and 2 bytes before the page end, and at it. */
	for (uint32_t back = 1; back <= 10; back++) {
		memcpy(cur_pg, old_pg, ps);
		for (uint32_t i = ps - 40; i < ps - back; i += 1 + (i % 3))
			cur_pg[i] ^= 0x11;
		round_trip(ps, "near the end");
	}
}

/* Random pages x random changes: stores of 1-64 bytes, byte flips, dense
 * stretches, at random places, seeded. */
static void test_random(uint32_t ps, int iters)
{
	for (int it = 0; it < iters; it++) {
		int edits = (int)(rnd() % 40);

		fill_random(old_pg, ps);
		memcpy(cur_pg, old_pg, ps);
		for (int k = 0; k < edits; k++) {
			uint32_t at = (uint32_t)(rnd() % ps);
			uint32_t len = 1 + (uint32_t)(rnd() % (rnd() % 8 ? 64 : ps / 4));
			uint32_t step = 1 + (uint32_t)(rnd() % 5);
			for (uint32_t i = at; i < at + len && i < ps; i += step)
				cur_pg[i] = (uint8_t)rnd(); /* may equal the old byte */
		}
		round_trip(ps, "random");
	}
}

/* Limit: n < limit is returned, n >= limit is TOO_BIG, and nothing is
 * written at out[limit] or beyond. */
static void test_limit(uint32_t ps)
{
	static uint8_t out[LM_DELTA_MAX(PS_MAX) + 64];
	size_t n, m;

	fill_random(old_pg, ps);
	memcpy(cur_pg, old_pg, ps);
	for (uint32_t i = 100; i < ps; i += 7)
		cur_pg[i] ^= 0x42;
	n = lm__delta_encode(old_pg, cur_pg, ps, enc, SIZE_MAX);
	CHECK(n != LM_DELTA_TOO_BIG && n > 0);
	for (size_t limit = 0; limit <= n + 2; limit += (limit < 64 || limit + 64 > n ? 1 : 61)) {
		memset(out, 0xee, sizeof(out));
		m = lm__delta_encode(old_pg, cur_pg, ps, out, limit);
		if (limit > n) {
			CHECK_EQ(m, n);
			CHECK(memcmp(out, enc, n) == 0);
		} else {
			CHECK(m == LM_DELTA_TOO_BIG);
		}
		for (size_t i = limit; i < sizeof(out); i++)
			if (out[i] != 0xee) {
				CHECK(!"wrote at or past limit");
				break;
			}
	}
	/* An unchanged page needs a limit of 1 (0 bytes < 1), not 0. */
	CHECK_EQ(lm__delta_encode(old_pg, old_pg, ps, out, 1), 0);
	CHECK(lm__delta_encode(old_pg, old_pg, ps, out, 0) == LM_DELTA_TOO_BIG);
	/* The whole page changed does not fit half a page. */
	for (uint32_t i = 0; i < ps; i++)
		cur_pg[i] = (uint8_t)~old_pg[i];
	CHECK(lm__delta_encode(old_pg, cur_pg, ps, out, ps / 2) == LM_DELTA_TOO_BIG);
}

/* Applies in (as a heap copy of exactly len bytes, so ASan sees an
 * over-read) to a 4096-byte page; checks the result and the message. */
static void bad(const char *name, const uint8_t *in, size_t len, const char *msg)
{
	lm__err e = {0};
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	memcpy(copy, in, len);
	memset(work, 0, 4096);
	rc = lm__delta_apply(work, 4096, copy, len, &e);
	CHECK_EQ(rc, LM_EFIELD);
	if (strcmp(e.msg, msg)) {
		fprintf(stderr, "%s: message \"%s\", expected \"%s\"\n", name, e.msg, msg);
		CHECK(!"message");
	}
	free(copy);
}

static void good(const uint8_t *in, size_t len)
{
	lm__err e = {0};

	memset(work, 0, 4096);
	CHECK_EQ(lm__delta_apply(work, 4096, in, len, &e), 0);
}

static void test_malformed(void)
{
	/* Accepted edge cases first: empty, a run ending exactly at the page
	 * end, skip 0 between runs, a non-minimal varint. */
	good((const uint8_t[]){0}, 0);
	{
		static uint8_t full[4 + 4096];
		full[0] = 0;
		full[1] = 0x80;
		full[2] = 0x20; /* 4096 */
		memset(full + 3, 0xff, 4096);
		good(full, 3 + 4096);
		for (int i = 0; i < 4096; i++)
			CHECK(work[i] == 0xff);
	}
	good((const uint8_t[]){0xff, 0x1f, 1, 0xaa}, 4); /* skip 4095, 1 byte */
	CHECK_EQ(work[4095], 0xaa);
	good((const uint8_t[]){1, 1, 7, 0, 1, 9}, 6);
	CHECK(work[1] == 7 && work[2] == 9);
	good((const uint8_t[]){0x82, 0x00, 0x81, 0x80, 0x00, 5}, 6);
	CHECK_EQ(work[2], 5);

	bad("run past end", (const uint8_t[]){0xfa, 0x1f, 12}, 3,
	    "delta: run of 12 bytes at 4090 past the page end (4096)");
	bad("run past end after runs", (const uint8_t[]){0, 1, 1, 0xff, 0x1f, 2, 0, 0}, 8,
	    "delta: run of 2 bytes at 4096 past the page end (4096)");
	bad("skip past end", (const uint8_t[]){0x80, 0x1f, 1, 1, 0x80, 0x01, 1}, 7,
	    "delta: skip of 128 bytes at 3969 past the page end (4096)");
	bad("zero-length run", (const uint8_t[]){5, 0}, 2,
	    "delta: zero-length run at 5 (input byte 1)");
	bad("zero-length run, long varint", (const uint8_t[]){1, 1, 3, 0, 0x80, 0x00}, 6,
	    "delta: zero-length run at 2 (input byte 4)");
	bad("truncated skip", (const uint8_t[]){0x80}, 1,
	    "delta: skip varint at input byte 0 truncated (input ends)");
	bad("truncated run length", (const uint8_t[]){0, 1, 9, 4}, 4,
	    "delta: run length varint at input byte 4 truncated (input ends)");
	bad("truncated run length varint", (const uint8_t[]){0, 1, 9, 4, 0x81}, 5,
	    "delta: run length varint at input byte 4 truncated (input ends)");
	bad("overlong skip", (const uint8_t[]){0x80, 0x80, 0x80, 0x00, 1, 1}, 6,
	    "delta: skip varint at input byte 0 longer than 3 bytes");
	bad("overlong run length", (const uint8_t[]){0, 0x81, 0x80, 0x80, 0x00}, 5,
	    "delta: run length varint at input byte 1 longer than 3 bytes");
	bad("skip above page size", (const uint8_t[]){0x81, 0x20, 1, 0}, 4,
	    "delta: skip 4097 at input byte 0 above the page size (4096)");
	bad("run above page size", (const uint8_t[]){0, 0xff, 0xff, 0x7f}, 4,
	    "delta: run length 2097151 at input byte 1 above the page size (4096)");
	bad("bytes cut short", (const uint8_t[]){10, 4, 1, 2, 3}, 5,
	    "delta: run of 4 bytes at 10 cut short: input ends after 3 of them");
	bad("bytes missing", (const uint8_t[]){10, 4}, 2,
	    "delta: run of 4 bytes at 10 cut short: input ends after 0 of them");
	bad("garbage after a run", (const uint8_t[]){0, 1, 1, 7}, 4,
	    "delta: run length varint at input byte 4 truncated (input ends)");
}

int main(void)
{
	static const uint32_t sizes[] = {4096, 8192, 16384, 32768, 65536};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		test_shapes(sizes[i]);
		test_random(sizes[i], sizes[i] <= 8192 ? 400 : 60);
		test_limit(sizes[i]);
	}
	test_malformed();
	TEST_DONE("test_delta");
}
