/*
 * cpu.h - the one way livemig picks SIMD code at run time (src/hash.c,
 * src/zero.c; any future variant uses the same).
 *
 * A function with CPU-specific variants lists them in a const array of
 * lm__cpu_impl, fastest first, each with the features it needs (LM_CPU_*);
 * the last one needs none and runs anywhere. An lm__cpu_site holds that
 * array and the variant chosen: the first call picks the first variant
 * whose features the CPU has (detected once per process, then cached) and
 * later calls cost one atomic load and an indirect call.
 *
 * How a variant is compiled is the file's business (a file of its own built
 * with -mavx2 like src/hash_avx2.c, or __attribute__((target)) like
 * src/zero.c); it only ever runs after this check.
 *
 * Thread-safety: lm__cpu_get and lm__cpu_has may be called from any thread
 * at any time; racing first calls pick the same variant. lm__cpu_force is
 * for tests and benchmarks: it takes effect for every later call, and a
 * call already inside the old variant finishes there.
 */
#ifndef LM_CPU_H
#define LM_CPU_H

#include <stdatomic.h>

/* x86-64 with GCC or clang: the only targets with SIMD variants today.
 * Elsewhere only the portable variants exist and lm__cpu_has answers 0. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LM_CPU_X86 1
#else
#define LM_CPU_X86 0
#endif

#define LM_CPU_AVX2 (1u << 0)

/* A function pointer of no particular type: each site casts it back to its
 * own (C allows the round trip; GCC's -Wcast-function-type exempts it). */
typedef void (*lm__cpu_fn)(void);

typedef struct lm__cpu_impl {
	const char *name; /* "avx2", "portable": for the tests and the stats */
	unsigned needs;   /* LM_CPU_* bits the variant uses; 0 for the last */
	lm__cpu_fn fn;
} lm__cpu_impl;

typedef struct lm__cpu_site {
	const lm__cpu_impl *impls;
	int n;
	/* NULL until the first call; then the variant in use. Written once
	 * by the first pick (compare-and-swap from NULL) or by a force. */
	_Atomic(const lm__cpu_impl *) cur;
} lm__cpu_site;

/* The number of variants in a site's array: {impls, LM_CPU_N(impls), NULL}. */
#define LM_CPU_N(impls) ((int)(sizeof(impls) / sizeof((impls)[0])))

/* 1 when this CPU has every feature in mask (0 for an empty mask too: the
 * portable variants need no check). */
int lm__cpu_has(unsigned mask);

/* Slow path of lm__cpu_get: picks and caches the site's variant. */
const lm__cpu_impl *lm__cpu_pick(lm__cpu_site *site);

/* The site's variant: picked at the first call, cached afterwards. */
static inline const lm__cpu_impl *lm__cpu_get(lm__cpu_site *site)
{
	const lm__cpu_impl *c = atomic_load_explicit(&site->cur, memory_order_acquire);

	return c ? c : lm__cpu_pick(site);
}

/* Tests and benchmarks: use the variant called name from now on. 0, or
 * -ENOTSUP for a name the site lacks or a variant this CPU cannot run (the
 * previous choice stays). */
int lm__cpu_force(lm__cpu_site *site, const char *name);

#endif
