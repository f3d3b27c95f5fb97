/*
 * zero.h - zero-page detection (SIMD scan with run-time dispatch).
 *
 * Private to livemig (prefix lm__).  Implementations: "avx2" (x86-64 CPUs that
 * support it, chosen at run time by src/cpu.h) and "portable" (always available).
 */
#ifndef LM_ZERO_H
#define LM_ZERO_H

#include <stdbool.h>
#include <stddef.h>

/* Picks the variant now rather than at the first lm__is_zero() (src/cpu.h); idempotent. Every
 * function here may be called from any thread at any time. */
void lm__zero_init(void);

/* True when the len bytes at p are all zero. p need not be aligned; len may be any size
 * (0 -> true). */
bool lm__is_zero(const void *p, size_t len);

/* Name of the implementation chosen at run time: "avx2" or "portable" (for stats/bench). */
const char *lm__zero_impl(void);

/* For tests and benchmarks: force an implementation ("avx2", "portable") regardless of detection;
 * returns 0, or -ENOTSUP if the CPU lacks it / unknown name (lm__cpu_force). */
int lm__zero_force(const char *name);

#endif /* LM_ZERO_H */
