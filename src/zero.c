/*
 * zero.c - zero-page detection (SIMD scan with run-time dispatch).
 *
 * Two implementations:
 *   - "portable": 64-bit loads through memcpy (no unaligned-pointer UB),
 *     8 loads OR-ed per 64-byte step.
 *   - "avx2": 4 x 32-byte loads OR-ed, one vptest per 128 bytes.  Compiled
 *     with __attribute__((target("avx2"))) so the file needs no -mavx2, and
 *     only selected when __builtin_cpu_supports("avx2") says so.
 *
 * Both check the first bytes of the buffer before the main loop, because a
 * non-zero page almost always has a non-zero byte right at its start.
 *
 * Dispatch: an atomic pointer to an implementation descriptor, set once by
 * lm__zero_init() (pthread_once).  Before initialisation it points at a
 * resolver that runs lm__zero_init() and then re-dispatches, so calling
 * lm__is_zero() first is also safe.
 */
#include "zero.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define LM_ZERO_HAVE_AVX2 1
#include <immintrin.h>
#else
#define LM_ZERO_HAVE_AVX2 0
#endif

typedef bool (*lm__zero_fn)(const void *p, size_t len);

struct lm__zero_impl_desc {
    const char *name;
    lm__zero_fn fn;
};

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
       (q < p + 8).  For an aligned p this re-reads the head, which keeps a
       4096-byte page at exactly 64 iterations of the main loop. */
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
       so end - 8 is inside the buffer. */
    if (q != end)
        return zero_ld64(end - 8) == 0;
    return true;
}

static const struct lm__zero_impl_desc zero_impl_portable = { "portable", zero_portable };

/* ------------------------------------------------------------------------ */
/* AVX2 implementation                                                       */
/* ------------------------------------------------------------------------ */

#if LM_ZERO_HAVE_AVX2

__attribute__((target("avx2")))
static bool zero_avx2(const void *ptr, size_t len)
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
       For an aligned 4096-byte page this gives exactly 32 main-loop steps. */
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
       len >= 32 so end - 32 is inside the buffer. */
    if (q != end) {
        __m256i t = _mm256_loadu_si256((const __m256i *)(const void *)(end - 32));
        return _mm256_testz_si256(t, t) != 0;
    }
    return true;
}

static const struct lm__zero_impl_desc zero_impl_avx2 = { "avx2", zero_avx2 };

static bool zero_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
}

#endif /* LM_ZERO_HAVE_AVX2 */

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */
/* ------------------------------------------------------------------------ */

static bool zero_resolve(const void *p, size_t len);

static const struct lm__zero_impl_desc zero_impl_unresolved = { "unresolved", zero_resolve };

static _Atomic(const struct lm__zero_impl_desc *) zero_cur = &zero_impl_unresolved;
static pthread_once_t zero_once = PTHREAD_ONCE_INIT;

static void zero_set(const struct lm__zero_impl_desc *d)
{
    atomic_store_explicit(&zero_cur, d, memory_order_release);
}

static void zero_init_once(void)
{
#if LM_ZERO_HAVE_AVX2
    if (zero_cpu_has_avx2()) {
        zero_set(&zero_impl_avx2);
        return;
    }
#endif
    zero_set(&zero_impl_portable);
}

void lm__zero_init(void)
{
    (void)pthread_once(&zero_once, zero_init_once);
}

static bool zero_resolve(const void *p, size_t len)
{
    lm__zero_init();
    return lm__is_zero(p, len);
}

bool lm__is_zero(const void *p, size_t len)
{
    const struct lm__zero_impl_desc *d = atomic_load_explicit(&zero_cur, memory_order_acquire);
    return d->fn(p, len);
}

const char *lm__zero_impl(void)
{
    lm__zero_init();
    return atomic_load_explicit(&zero_cur, memory_order_acquire)->name;
}

int lm__zero_force(const char *name)
{
    /* Run detection first so that a later lm__zero_init() cannot overwrite
       the forced choice. */
    lm__zero_init();
    if (name == NULL)
        return -ENOTSUP;
    if (strcmp(name, "portable") == 0) {
        zero_set(&zero_impl_portable);
        return 0;
    }
    if (strcmp(name, "avx2") == 0) {
#if LM_ZERO_HAVE_AVX2
        if (zero_cpu_has_avx2()) {
            zero_set(&zero_impl_avx2);
            return 0;
        }
#endif
        return -ENOTSUP;
    }
    return -ENOTSUP;
}
