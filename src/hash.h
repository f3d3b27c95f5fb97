/*
 * XXH3-64 (xxHash, header from Debian's libxxhash-dev), compiled twice: for
 * AVX2 ("avx2") and for the x86-64 baseline ("portable"), chosen at run time
 * by src/cpu.h. The library's libxxhash.so is built for the baseline only
 * and hashes ~2.7x slower.
 */
#ifndef LM_HASH_H
#define LM_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* XXH3-64 of the concatenation of the pieces, with seed. */
uint64_t lm__hash(const struct iovec *v, int n, uint64_t seed);

/* The per-target implementations (src/hash.c, src/hash_avx2.c). */
uint64_t lm__hash_generic(const struct iovec *v, int n, uint64_t seed);
uint64_t lm__hash_avx2(const struct iovec *v, int n, uint64_t seed);

/* The variant lm__hash runs: "avx2" or "portable". */
const char *lm__hash_impl(void);
/* Tests: run the variant called name from now on (0), or -ENOTSUP when
 * this CPU cannot (see lm__cpu_force). */
int lm__hash_force(const char *name);

#endif
