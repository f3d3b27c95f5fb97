/* XXH3 dispatch: see hash.h. */
#include "hash.h"

#include "hash_impl.h"

uint64_t lm__hash_generic(const struct iovec *v, int n, uint64_t seed)
{
	return hash_pieces(v, n, seed);
}

typedef uint64_t (*hash_fn)(const struct iovec *, int, uint64_t);

static hash_fn pick(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	if (__builtin_cpu_supports("avx2"))
		return lm__hash_avx2;
#endif
	return lm__hash_generic;
}

uint64_t lm__hash(const struct iovec *v, int n, uint64_t seed)
{
	static hash_fn fn; /* racing first calls store the same value */
	hash_fn f = __atomic_load_n(&fn, __ATOMIC_RELAXED);

	if (!f) {
		f = pick();
		__atomic_store_n(&fn, f, __ATOMIC_RELAXED);
	}
	return f(v, n, seed);
}
