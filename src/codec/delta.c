/*
 * Delta pages: XOR-run encoding (format: delta.h).
 *
 * The encoder compares 8 bytes at a time, 32 per step while the pages are
 * equal (the common case: a re-dirtied page usually changed in a few
 * places), through memcpy loads so any alignment is fine and compilers emit
 * plain unaligned moves. Inside a changed stretch it looks for the first
 * gap of 3 equal bytes with a branch-free zero-byte mask per word, so dense
 * changes also move 6-8 bytes per step. Apply XORs 32 bytes per step.
 */
#include "codec/delta.h"

#include <string.h>

#include "compat.h"
#include "livemig.h"
#include "varint.h"

#define VARINT_MAX 3u /* bytes: 21 bits hold 65536 */

static inline uint64_t ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

static inline void st64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof v);
}

/* Index of the first byte of word w (loaded from memory) that is non-zero
 * / whose 0x80 bit is set in a byte mask; w != 0. */
static inline unsigned first_byte(uint64_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return lm__clz64(w) / 8;
#else
	return lm__ctz64(w) / 8;
#endif
}

/* 0x80 in each byte of x that is zero, 0 elsewhere (exact: no borrow
 * between bytes, unlike the (x - 0x01..) & ~x trick). */
static inline uint64_t zero_bytes(uint64_t x)
{
	const uint64_t lo7 = 0x7f7f7f7f7f7f7f7full;

	return ~(((x & lo7) + lo7) | x | lo7);
}

/* Mask of the zero bytes of x that start 3 zero bytes within the word
 * (byte positions 0..5 only: the others need the next word). Shifts move
 * towards lower addresses whatever the byte order. */
static inline uint64_t zero_triples(uint64_t z)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return z & (z << 8) & (z << 16);
#else
	return z & (z >> 8) & (z >> 16);
#endif
}

/* First p' >= p where old and cur differ, or ps. */
static uint32_t next_diff(const uint8_t *old, const uint8_t *cur, uint32_t p, uint32_t ps)
{
	while (p + 32 <= ps) {
		uint64_t a = ld64(old + p) ^ ld64(cur + p);
		uint64_t b = ld64(old + p + 8) ^ ld64(cur + p + 8);
		uint64_t c = ld64(old + p + 16) ^ ld64(cur + p + 16);
		uint64_t d = ld64(old + p + 24) ^ ld64(cur + p + 24);

		if (a | b | c | d) {
			if (a)
				return p + first_byte(a);
			if (b)
				return p + 8 + first_byte(b);
			if (c)
				return p + 16 + first_byte(c);
			return p + 24 + first_byte(d);
		}
		p += 32;
	}
	for (; p + 8 <= ps; p += 8) {
		uint64_t a = ld64(old + p) ^ ld64(cur + p);
		if (a)
			return p + first_byte(a);
	}
	while (p < ps && old[p] == cur[p])
		p++;
	return p;
}

/* End of the run that starts at the changed byte p: the first byte of a
 * gap of 3 equal bytes, or of a gap that reaches the page end, or ps. The
 * byte before the result is a changed one. */
static uint32_t run_end(const uint8_t *old, const uint8_t *cur, uint32_t p, uint32_t ps)
{
	uint32_t s = p + 1;

	while (s + 8 <= ps) {
		uint64_t z = zero_bytes(ld64(old + s) ^ ld64(cur + s));
		uint64_t t;

		if (!z) {
			s += 8;
			continue;
		}
		t = zero_triples(z);
		if (t)
			return s + first_byte(t);
		s += 6; /* a gap may start at byte 6 or 7 and go on in the next word */
	}
	for (; s < ps; s++) {
		if (old[s] != cur[s])
			continue;
		if ((s + 1 >= ps || old[s + 1] == cur[s + 1]) &&
		    (s + 2 >= ps || old[s + 2] == cur[s + 2]))
			return s;
	}
	return ps;
}

static inline size_t varint_len(uint32_t v)
{
	return v < (1u << 7) ? 1 : v < (1u << 14) ? 2 : 3;
}


/* out[i] = a[i] ^ b[i] for n bytes (also apply's in-place page ^= in). */
static void xor_into(uint8_t *out, const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i = 0;

	for (; i + 32 <= n; i += 32) {
		uint64_t w0 = ld64(a + i) ^ ld64(b + i);
		uint64_t w1 = ld64(a + i + 8) ^ ld64(b + i + 8);
		uint64_t w2 = ld64(a + i + 16) ^ ld64(b + i + 16);
		uint64_t w3 = ld64(a + i + 24) ^ ld64(b + i + 24);
		st64(out + i, w0);
		st64(out + i + 8, w1);
		st64(out + i + 16, w2);
		st64(out + i + 24, w3);
	}
	for (; i + 8 <= n; i += 8)
		st64(out + i, ld64(a + i) ^ ld64(b + i));
	for (; i < n; i++)
		out[i] = a[i] ^ b[i];
}

size_t lm__delta_encode(const uint8_t *old, const uint8_t *cur, uint32_t page_size, uint8_t *out,
			size_t limit)
{
	uint32_t pos = 0; /* page position after the last pair written */
	uint32_t p = next_diff(old, cur, 0, page_size);
	size_t n = 0;

	while (p < page_size) {
		uint32_t end = run_end(old, cur, p, page_size);
		uint32_t skip = p - pos, len = end - p;
		size_t need = varint_len(skip) + varint_len(len) + len;

		/* Checked before writing, so out[limit] is never touched. */
		if (need >= limit - n)
			return LM_DELTA_TOO_BIG;
		n += lm__put_uv(out + n, skip);
		n += lm__put_uv(out + n, len);
		xor_into(out + n, old + p, cur + p, len);
		n += len;
		pos = end;
		/* end .. end+2 are known equal (or past the page end). */
		p = end + 3 < page_size ? next_diff(old, cur, end + 3, page_size) : page_size;
	}
	return n < limit ? n : LM_DELTA_TOO_BIG;
}

/* Reads the varint at in[*i] (the field `what` of the pair): at most 3
 * bytes, value <= page_size. */
static int get_varint(const uint8_t *in, size_t len, size_t *i, uint32_t page_size,
		      const char *what, uint32_t *v, lm__err *e)
{
	size_t at = *i;
	uint32_t val = 0;

	for (unsigned k = 0;; k++) {
		if (k == VARINT_MAX) {
			lm__err_set(e, "delta: %s varint at input byte %zu longer than %u bytes", what,
				    at, VARINT_MAX);
			return LM_EFIELD;
		}
		if (at + k >= len) {
			lm__err_set(e, "delta: %s varint at input byte %zu truncated (input ends)",
				    what, at);
			return LM_EFIELD;
		}
		val |= (uint32_t)(in[at + k] & 0x7f) << (7 * k);
		if (!(in[at + k] & 0x80)) {
			*i = at + k + 1;
			break;
		}
	}
	if (val > page_size) {
		lm__err_set(e, "delta: %s %u at input byte %zu above the page size (%u)", what, val,
			    at, page_size);
		return LM_EFIELD;
	}
	*v = val;
	return 0;
}

/* get_varint with the common 1-byte case inline (below 128 <= page size). */
static inline int next_varint(const uint8_t *in, size_t len, size_t *i, uint32_t page_size,
			      const char *what, uint32_t *v, lm__err *e)
{
	if (*i < len && in[*i] < 0x80) {
		*v = in[(*i)++];
		return 0;
	}
	return get_varint(in, len, i, page_size, what, v, e);
}

int lm__delta_apply(uint8_t *page, uint32_t page_size, const uint8_t *in, size_t len,
		    lm__err *e)
{
	uint32_t pos = 0, skip, run;
	size_t i = 0, at;
	int rc;

	while (i < len) {
		if ((rc = next_varint(in, len, &i, page_size, "skip", &skip, e)))
			return rc;
		if (skip > page_size - pos) {
			lm__err_set(e, "delta: skip of %u bytes at %u past the page end (%u)", skip,
				    pos, page_size);
			return LM_EFIELD;
		}
		pos += skip;
		at = i;
		if ((rc = next_varint(in, len, &i, page_size, "run length", &run, e)))
			return rc;
		if (run == 0) {
			lm__err_set(e, "delta: zero-length run at %u (input byte %zu)", pos, at);
			return LM_EFIELD;
		}
		if (run > page_size - pos) {
			lm__err_set(e, "delta: run of %u bytes at %u past the page end (%u)", run, pos,
				    page_size);
			return LM_EFIELD;
		}
		if (run > len - i) {
			lm__err_set(e,
				    "delta: run of %u bytes at %u cut short: input ends after %zu "
				    "of them",
				    run, pos, len - i);
			return LM_EFIELD;
		}
		xor_into(page + pos, page + pos, in + i, run);
		pos += run;
		i += run;
	}
	return 0;
}
