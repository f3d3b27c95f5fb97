/*
 * XXH3-64 (xxHash, header from Debian's libxxhash-dev), compiled twice: for
 * AVX2 and for the x86-64 baseline, chosen at run time. The library's
 * libxxhash.so is built for the baseline only and hashes ~2.7x slower.
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

#endif
