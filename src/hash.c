/* XXH3 dispatch: see hash.h. The variant is chosen by src/cpu.h. */
#include "hash.h"

#include "cpu.h"
#include "hash_impl.h"

uint64_t lm__hash_generic(const struct iovec *v, int n, uint64_t seed)
{
	return hash_pieces(v, n, seed);
}

typedef uint64_t (*hash_fn)(const struct iovec *, int, uint64_t);

static const lm__cpu_impl hash_impls[] = {
#if LM_CPU_X86
	{"avx2", LM_CPU_AVX2, (lm__cpu_fn)lm__hash_avx2},
#endif
	{"portable", 0, (lm__cpu_fn)lm__hash_generic},
};
static lm__cpu_site hash_site = {hash_impls, LM_CPU_N(hash_impls), NULL};

uint64_t lm__hash(const struct iovec *v, int n, uint64_t seed)
{
	return ((hash_fn)lm__cpu_get(&hash_site)->fn)(v, n, seed);
}

const char *lm__hash_impl(void)
{
	return lm__cpu_get(&hash_site)->name;
}

int lm__hash_force(const char *name)
{
	return lm__cpu_force(&hash_site, name);
}
