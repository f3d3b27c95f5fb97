/*
 * Codec "none": pages travel as they are. The sender hands page memory to
 * sendmsg and the receiver reads straight into the destination pages, so
 * decode is only used by paths that hold the payload in a buffer (tests).
 */
#include <string.h>

#include "codec.h"
#include "../wire.h"

static uint64_t none_bound(uint32_t page_size, uint32_t pages)
{
	return (uint64_t)page_size * pages;
}

static int none_ctx_new(void **ctx, const lm__codec_params *p)
{
	(void)p;
	*ctx = NULL;
	return 0;
}

static void none_ctx_free(void *ctx) { (void)ctx; }

/* Every page raw: nothing goes to out (the sender sends raw pages from the
 * region itself). */
static int none_encode(void *ctx, const void *const *pages, uint32_t n, uint32_t page_size,
		       uint8_t *out, size_t cap, uint32_t *lens, size_t *out_len)
{
	(void)ctx; (void)pages; (void)out; (void)cap;
	for (uint32_t i = 0; i < n; i++)
		lens[i] = page_size;
	*out_len = 0;
	return 0;
}

static int none_decode(void *ctx, const uint8_t *in, size_t in_len, const uint32_t *lens,
		       void *const *pages, uint32_t n, uint32_t page_size, struct lm__err *e)
{
	(void)ctx;
	if (in_len != (size_t)n * page_size) {
		lm__err_set(e, "data.payload %zu, %u raw pages need %zu", in_len, n,
			    (size_t)n * page_size);
		return LM_EDECODE;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (lens[i] != page_size) {
			lm__err_set(e, "data.length[%u] %u, raw page needs %u", i, lens[i], page_size);
			return LM_EDECODE;
		}
		memcpy(pages[i], in + (size_t)i * page_size, page_size);
	}
	return 0;
}

const lm__codec_ops lm__codec_none = {
	.name = "none",
	.id = LM_CODEC_NONE,
	.per_page = 1,
	.raw_only = 1,
	.payload_bound = none_bound,
	.ctx_new = none_ctx_new,
	.ctx_free = none_ctx_free,
	.encode = none_encode,
	.decode = none_decode,
};
