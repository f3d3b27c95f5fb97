/* XXH3 for AVX2 CPUs: see hash.h. */
#include "hash.h"

#include "cpu.h"

#if LM_CPU_X86
/* CMake compiles this file alone with -mavx2; it runs only after the
 * run-time check of src/cpu.h (hash.c lists it as needing LM_CPU_AVX2). */
#define XXH_VECTOR 2 /* XXH_AVX2 */
#include "hash_impl.h"

uint64_t lm__hash_avx2(const struct iovec *v, int n, uint64_t seed)
{
	return hash_pieces(v, n, seed);
}
#else
uint64_t lm__hash_avx2(const struct iovec *v, int n, uint64_t seed)
{
	return lm__hash_generic(v, n, seed);
}
#endif
