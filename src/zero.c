/*
 * zero.c - zero-page detection (SIMD scan with run-time dispatch).
 *
 * Two implementations:
 *   - "portable": 64-bit loads through memcpy (no unaligned-pointer UB),
 *     8 loads OR-ed per 64-byte step.
 *   - "avx2": 4 x 32-byte loads OR-ed, one vptest per 128 bytes.  Compiled
 *     with __attribute__((target("avx2"))) so the file needs no -mavx2, and
 *     only run on a CPU with AVX2 (src/cpu.h, x86-64 only).
 *
 * Both check the first bytes of the buffer before the main loop, because a
 * non-zero page almost always has a non-zero byte right at its start.
 *
 * Dispatch: src/cpu.h, as for every SIMD variant: the first call (or
 * lm__zero_init()) picks the variant, later calls use the cached choice.
 */
#include "zero.h"

#include <stdint.h>
#include <string.h>

#include "cpu.h"

#if LM_CPU_X86
#include <immintrin.h>
#endif

typedef bool (*lm__zero_fn)(const void *p, size_t len);

/* ------------------------------------------------------------------------ */
/* Portable implementation                                                   */
/* ------------------------------------------------------------------------ */

static inline uint64_t zero_ld64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline uint32_t zero_ld32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

/* len < 16.  Overlapping loads cover every byte exactly as needed. */
static inline bool zero_small(const unsigned char *p, size_t len)
{
	if (len >= 8)
		return (zero_ld64(p) | zero_ld64(p + len - 8)) == 0;
	if (len >= 4)
		return (zero_ld32(p) | zero_ld32(p + len - 4)) == 0;
	if (len == 0)
		return true;
	/* len 1..3: bytes 0, len/2 and len-1 cover every position. */
	return (p[0] | p[len / 2] | p[len - 1]) == 0;
}

static bool zero_portable(const void *ptr, size_t len)
{
	const unsigned char *p = ptr;

	if (len < 16)
		return zero_small(p, len);

	/* Early exit: most non-zero pages are non-zero in their first bytes. */
	if ((zero_ld64(p) | zero_ld64(p + 8)) != 0)
		return false;

	const unsigned char *end = p + len;
	/* Round up to 8-byte alignment; [p, q) is inside the head just checked
	 * (q < p + 8).  For an aligned p this re-reads the head, which keeps a
	 * 4096-byte page at exactly 64 iterations of the main loop. */
	const unsigned char *q = p + ((8 - ((uintptr_t)p & 7)) & 7);

	while ((size_t)(end - q) >= 64) {
		uint64_t a = zero_ld64(q) | zero_ld64(q + 8);
		uint64_t b = zero_ld64(q + 16) | zero_ld64(q + 24);
		uint64_t c = zero_ld64(q + 32) | zero_ld64(q + 40);
		uint64_t d = zero_ld64(q + 48) | zero_ld64(q + 56);
		if (((a | b) | (c | d)) != 0)
			return false;
		q += 64;
	}
	while ((size_t)(end - q) >= 8) {
		if (zero_ld64(q) != 0)
			return false;
		q += 8;
	}
	/* Tail (< 8 bytes): an overlapping load of the last 8 bytes; len >= 16
	 * so end - 8 is inside the buffer. */
	if (q != end)
		return zero_ld64(end - 8) == 0;
	return true;
}

/* ------------------------------------------------------------------------ */
/* AVX2 implementation                                                       */
/* ------------------------------------------------------------------------ */

#if LM_CPU_X86

__attribute__((target("avx2"))) static bool zero_avx2(const void *ptr, size_t len)
{
	const unsigned char *p = ptr;

	if (len < 32)
		return len < 16 ? zero_small(p, len) : zero_portable(p, len);

	/* Early exit on the first 32 bytes (unaligned load). */
	__m256i h = _mm256_loadu_si256((const __m256i *)(const void *)p);
	if (!_mm256_testz_si256(h, h))
		return false;

	const unsigned char *end = p + len;
	/* Round up to 32-byte alignment; [p, q) lies inside the head (q < p + 32).
	 * For an aligned 4096-byte page this gives exactly 32 main-loop steps. */
	const unsigned char *q = p + ((32 - ((uintptr_t)p & 31)) & 31);

	while ((size_t)(end - q) >= 128) {
		__m256i a = _mm256_load_si256((const __m256i *)(const void *)q);
		__m256i b = _mm256_load_si256((const __m256i *)(const void *)(q + 32));
		__m256i c = _mm256_load_si256((const __m256i *)(const void *)(q + 64));
		__m256i d = _mm256_load_si256((const __m256i *)(const void *)(q + 96));
		__m256i o = _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
		if (!_mm256_testz_si256(o, o))
			return false;
		q += 128;
	}
	while ((size_t)(end - q) >= 32) {
		__m256i a = _mm256_load_si256((const __m256i *)(const void *)q);
		if (!_mm256_testz_si256(a, a))
			return false;
		q += 32;
	}
	/* Tail (< 32 bytes): overlapping unaligned load of the last 32 bytes;
	 * len >= 32 so end - 32 is inside the buffer. */
	if (q != end) {
		__m256i t = _mm256_loadu_si256((const __m256i *)(const void *)(end - 32));
		return _mm256_testz_si256(t, t) != 0;
	}
	return true;
}

#endif /* LM_CPU_X86 */

/* ------------------------------------------------------------------------ */
/* Dispatch (src/cpu.h)                                                      */
/* ------------------------------------------------------------------------ */

static const lm__cpu_impl zero_impls[] = {
#if LM_CPU_X86
	{"avx2", LM_CPU_AVX2, (lm__cpu_fn)zero_avx2},
#endif
	{"portable", 0, (lm__cpu_fn)zero_portable},
};
static lm__cpu_site zero_site = {zero_impls, LM_CPU_N(zero_impls), NULL};

void lm__zero_init(void)
{
	(void)lm__cpu_get(&zero_site);
}

bool lm__is_zero(const void *p, size_t len)
{
	return ((lm__zero_fn)lm__cpu_get(&zero_site)->fn)(p, len);
}

const char *lm__zero_impl(void)
{
	return lm__cpu_get(&zero_site)->name;
}

int lm__zero_force(const char *name)
{
	return lm__cpu_force(&zero_site, name);
}
