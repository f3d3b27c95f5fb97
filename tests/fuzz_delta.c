/*
 * libFuzzer target: delta pages (src/codec/delta.h).
 *
 * Input layout:
 *   byte 0   bits 0-1 page size (4096, 8192, 16384, 65536);
 *            bits 2-7 L: the encoder's limit, (L + 1) * page_size / 32
 *            (1/32 of a page .. 2 pages), L = 63: no limit (SIZE_MAX)
 *   byte 1   seed of the old page's bytes
 *   rest     1) an encoding, applied to the old page
 *            2) read again as edits making the new page from the old one:
 *               4 bytes each, be16 offset (mod page size), count, value:
 *               count bytes from the offset, every (1 + value % 4)-th one,
 *               get value + their index (so some stay equal)
 *
 * Checked (violations __builtin_trap()):
 *  1) lm__delta_apply on arbitrary input agrees with a bytewise reference
 *     decoder written from delta.h alone: same verdict, same page (on error
 *     both applied the runs before the bad pair); a failure is LM_EFIELD
 *     with a message that starts "delta: ". The page ends at a PROT_NONE
 *     guard page and the bytes before it hold a canary; the input is a heap
 *     copy of exactly its size (ASan sees an over-read).
 *  2) for the edited pair: the encoding with no limit is at most
 *     LM_DELTA_MAX and applies to the old page giving the new one; with the
 *     limit it is the same bytes when shorter than the limit, else
 *     LM_DELTA_TOO_BIG; its output buffer ends at a guard page exactly at
 *     the limit (when the limit fits it), so no write reaches out[limit].
 *
 * Seeds (tests/seeds/fuzz_delta/): encodings the encoder made of typical
 * changes, and one of each malformed class. The generator is the
 * LM_FUZZ_SEEDGEN part of this file, built as seedgen_fuzz_delta (never run
 * by ctest):  out/release/tests/seedgen_fuzz_delta tests/seeds/fuzz_delta
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "codec/delta.h"

#define CHECK(c)                                                                      \
	do {                                                                          \
		if (!(c)) {                                                           \
			fprintf(stderr, "fuzz_delta: invariant failed at %s:%d: %s\n", \
				__FILE__, __LINE__, #c);                              \
			__builtin_trap();                                             \
		}                                                                     \
	} while (0)

#define GUARD 4096u
#define PS_MAX 65536u
#define OUT_ROOM (2u * PS_MAX + GUARD) /* the largest limit, page-rounded */
#define CANARY 0xcc

static const uint32_t sizes[4] = {4096, 8192, 16384, 65536};

/* [guard][rw][guard]: returns the start of rw. */
static uint8_t *map_guarded(size_t rw)
{
	uint8_t *m = mmap(NULL, rw + 2 * GUARD, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(m != MAP_FAILED);
	CHECK(mprotect(m + GUARD, rw, PROT_READ | PROT_WRITE) == 0);
	return m + GUARD;
}

static int filled = -1; /* (page size index << 8 | seed) old_pg holds */
static uint8_t *page_area, *out_area; /* PS_MAX, OUT_ROOM bytes */
static uint8_t canary[PS_MAX], old_pg[PS_MAX], new_pg[PS_MAX], ref_pg[PS_MAX], full[LM_DELTA_MAX(PS_MAX)];

static void fill(uint8_t *p, uint32_t ps, uint8_t seed)
{
	uint32_t x = 0x9e3779b9u * (seed + 1u);

	for (uint32_t i = 0; i < ps; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		/* Mostly zero-ish and repeated bytes, as memory is. */
		p[i] = (x & 0x300) ? (uint8_t)(seed & 0x0f) : (uint8_t)x;
	}
}

/* delta.h's format, byte by byte: 1 and the page, or 0 at the first bad pair. */
static int ref_get(const uint8_t *in, size_t len, size_t *i, uint32_t ps, uint32_t *v)
{
	uint32_t val = 0;

	for (int k = 0; k < 3; k++) {
		if (*i >= len)
			return 0;
		uint8_t b = in[(*i)++];
		val |= (uint32_t)(b & 0x7f) << (7 * k);
		if (!(b & 0x80)) {
			*v = val;
			return val <= ps;
		}
	}
	return 0;
}

static int ref_apply(uint8_t *page, uint32_t ps, const uint8_t *in, size_t len)
{
	size_t i = 0;
	uint64_t pos = 0;
	uint32_t skip, run;

	while (i < len) {
		if (!ref_get(in, len, &i, ps, &skip) || pos + skip > ps)
			return 0;
		pos += skip;
		if (!ref_get(in, len, &i, ps, &run) || run == 0 || pos + run > ps ||
		    run > len - i)
			return 0;
		for (uint32_t k = 0; k < run; k++)
			page[pos + k] ^= in[i + k];
		pos += run;
		i += run;
	}
	return 1;
}

static void check_apply(uint32_t ps, const uint8_t *in, size_t len)
{
	uint8_t *page = page_area + PS_MAX - ps; /* ends at the guard */
	uint8_t *copy = malloc(len ? len : 1);
	lm__err e = {0};
	int rc, ok;

	CHECK(copy);
	memcpy(copy, in, len);
	memset(page_area, CANARY, PS_MAX - ps);
	memcpy(page, old_pg, ps);
	memcpy(ref_pg, old_pg, ps);
	rc = lm__delta_apply(page, ps, copy, len, &e);
	ok = ref_apply(ref_pg, ps, in, len);
	CHECK(rc == 0 || rc == LM_EFIELD);
	CHECK((rc == 0) == ok);
	if (rc) {
		CHECK(memchr(e.msg, 0, sizeof(e.msg)) != NULL);
		CHECK(strncmp(e.msg, "delta: ", 7) == 0);
	}
	CHECK(memcmp(page, ref_pg, ps) == 0);
	CHECK(memcmp(page_area, canary, PS_MAX - ps) == 0);
	free(copy);
}

static void check_round_trip(uint32_t ps, uint8_t lsel, const uint8_t *ed, size_t len)
{
	uint8_t *page = page_area + PS_MAX - ps;
	size_t limit = lsel == 63 ? SIZE_MAX : (size_t)(lsel + 1) * ps / 32;
	size_t n, m;
	lm__err e = {0};
	uint8_t *out;

	memcpy(new_pg, old_pg, ps);
	for (size_t i = 0; i + 4 <= len; i += 4) {
		uint32_t off = ((uint32_t)ed[i] << 8 | ed[i + 1]) % ps, step = 1 + ed[i + 3] % 4;
		for (uint32_t k = 0; k < ed[i + 2] && off < ps; k++, off += step)
			new_pg[off] = (uint8_t)(ed[i + 3] + k);
	}
	n = lm__delta_encode(old_pg, new_pg, ps, full, SIZE_MAX);
	CHECK(n <= LM_DELTA_MAX(ps));
	CHECK((n == 0) == (memcmp(old_pg, new_pg, ps) == 0));
	memcpy(page, old_pg, ps);
	CHECK(lm__delta_apply(page, ps, full, n, &e) == 0);
	CHECK(memcmp(page, new_pg, ps) == 0);

	/* The limited encoding, with out[limit] on the guard page. */
	out = limit <= OUT_ROOM ? out_area + OUT_ROOM - limit : out_area;
	m = lm__delta_encode(old_pg, new_pg, ps, out, limit);
	if (n < limit) {
		CHECK(m == n);
		CHECK(memcmp(out, full, n) == 0);
	} else {
		CHECK(m == LM_DELTA_TOO_BIG);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t ps;

	if (size < 2)
		return 0;
	if (!page_area) {
		page_area = map_guarded(PS_MAX);
		out_area = map_guarded(OUT_ROOM);
		memset(canary, CANARY, sizeof(canary));
	}
	ps = sizes[data[0] & 3];
	if (filled != ((data[0] & 3) << 8 | data[1])) {
		fill(old_pg, ps, data[1]); /* 64 KiB of it is slow under ASan */
		filled = (data[0] & 3) << 8 | data[1];
	}
	check_apply(ps, data + 2, size - 2);
	check_round_trip(ps, data[0] >> 2, data + 2, size - 2);
	return 0;
}

#ifdef LM_FUZZ_SEEDGEN
/* ---- seed generator ---------------------------------------------------------- */

static const char *outdir;

static void write_seed(const char *name, uint8_t cfg, uint8_t seed, const uint8_t *body,
		       size_t len, int want_ok)
{
	char path[4096];
	uint8_t *all = malloc(len + 2);
	uint32_t ps = sizes[cfg & 3];
	FILE *f;

	CHECK(all);
	all[0] = cfg;
	all[1] = seed;
	memcpy(all + 2, body, len);
	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(all, 1, len + 2, f) != len + 2 || fclose(f)) {
		perror(path);
		exit(1);
	}
	LLVMFuzzerTestOneInput(all, len + 2);
	if (ref_apply(ref_pg, ps, body, len) != want_ok) {
		fprintf(stderr, "%s: expected %s\n", name, want_ok ? "valid" : "invalid");
		exit(1);
	}
	printf("%s: %zu bytes, %s\n", path, len + 2, want_ok ? "valid" : "invalid");
	free(all);
}

/* A real encoding: the old page of seed with edits (as the fuzzer reads
 * them), which then also drive the round trip. */
static void seed_encoded(const char *name, uint8_t cfg, uint8_t seed, const uint8_t *ed,
			 size_t elen)
{
	static uint8_t body[LM_DELTA_MAX(PS_MAX) + 64];
	uint32_t ps = sizes[cfg & 3];
	size_t n;

	fill(old_pg, ps, seed);
	memcpy(new_pg, old_pg, ps);
	for (size_t i = 0; i + 4 <= elen; i += 4) {
		uint32_t off = ((uint32_t)ed[i] << 8 | ed[i + 1]) % ps, step = 1 + ed[i + 3] % 4;
		for (uint32_t k = 0; k < ed[i + 2] && off < ps; k++, off += step)
			new_pg[off] = (uint8_t)(ed[i + 3] + k);
	}
	n = lm__delta_encode(old_pg, new_pg, ps, body, SIZE_MAX);
	CHECK(n != LM_DELTA_TOO_BIG);
	filled = -1; /* old_pg was refilled here */
	write_seed(name, cfg, seed, body, n, 1);
}

#define SEED(name, cfg, ...)                                                           \
	do {                                                                           \
		static const uint8_t b_[] = {__VA_ARGS__};                             \
		write_seed(name, cfg, 0, b_, sizeof(b_), 0);                           \
	} while (0)

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];

	write_seed("empty", 0xfc, 0, (const uint8_t[]){0}, 0, 1);
	seed_encoded("store-8", 0x10, 1, (const uint8_t[]){0x03, 0xe9, 8, 0x40}, 4);
	seed_encoded("stores-3-8k", 0x41, 2,
		     (const uint8_t[]){0x00, 0x00, 4, 0x11, 0x10, 0x00, 16, 0x24, 0x1f, 0xf8, 8, 0x7c},
		     12);
	seed_encoded("dense-every-other-16k", 0x7e, 3, (const uint8_t[]){0x00, 0x10, 0xff, 0x01}, 4);
	seed_encoded("gaps-of-3-64k", 0xff, 4,
		     (const uint8_t[]){0x12, 0x34, 0xff, 0x03, 0xff, 0x00, 200, 0x02}, 8);
	seed_encoded("last-byte", 0x20, 5, (const uint8_t[]){0x0f, 0xff, 1, 0x80}, 4);
	seed_encoded("four-runs", 0x80, 6,
		     (const uint8_t[]){0x00, 0x00, 0xff, 0x00, 0x01, 0x00, 0xff, 0x04, 0x02,
				       0x00, 0xff, 0x08, 0x03, 0x00, 0xff, 0x0c},
		     16);

	SEED("bad-run-past-end", 0, 0xfa, 0x1f, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
	SEED("bad-skip-past-end", 0, 0x80, 0x1f, 1, 1, 0x80, 0x01, 1, 0);
	SEED("bad-zero-run", 0, 5, 0);
	SEED("bad-truncated-varint", 0, 0, 1, 9, 4, 0x81);
	SEED("bad-overlong-varint", 0, 0x80, 0x80, 0x80, 0x00, 1, 1);
	SEED("bad-above-page-size", 0, 0x81, 0x20, 1, 0);
	SEED("bad-cut-short", 0, 10, 4, 1, 2, 3);
	return 0;
}
#endif
