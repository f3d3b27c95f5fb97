/* Body shared by hash.c and hash_avx2.c: one contiguous piece is hashed in
 * one shot (the fast path), several are streamed. */
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static uint64_t hash_pieces(const struct iovec *v, int n, uint64_t seed)
{
	XXH3_state_t st;

	if (n == 1)
		return XXH3_64bits_withSeed(v[0].iov_base, v[0].iov_len, seed);
	/* reset_withSeed compares the old seed: give it a defined one. */
	memset(&st, 0, sizeof(st));
	XXH3_64bits_reset_withSeed(&st, seed);
	for (int i = 0; i < n; i++)
		XXH3_64bits_update(&st, v[i].iov_base, v[i].iov_len);
	return XXH3_64bits_digest(&st);
}
