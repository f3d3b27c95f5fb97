/*
 * Codec ops table. One file per codec (src/codec/<name>.c), each exporting a
 * const lm__codec_ops. Two shapes fit the same table:
 *  - per-page codecs (none, deflate): every normal page is encoded on its
 *    own; the packet's length table holds each page's encoded length and
 *    length == page_size means the page travels raw;
 *  - per-packet codecs (zstd, lz4, zlib): the normal pages are encoded as one
 *    block; each length is page_size (the decoded size) and the payload is
 *    the block. A packet that does not shrink is sent with codec none.
 * Contexts are per channel thread and never shared.
 */
#ifndef LM_CODEC_H
#define LM_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "livemig.h"

struct lm__err;

typedef struct lm__codec_ops {
	const char *name;
	uint16_t id;
	int per_page; /* 1: lengths are per-page encoded sizes */
	int raw_only; /* 1: pages travel as they are (zero-copy path) */
	/* Worst-case payload for pages normal pages: sizes every buffer. */
	uint64_t (*payload_bound)(uint32_t page_size, uint32_t pages);
	int (*ctx_new)(void **ctx, int level, uint32_t page_size, uint32_t packet_pages);
	void (*ctx_free)(void *ctx);
	/* Encodes n pages into out (capacity cap), filling lens[]; sets *out_len.
	 * Returns 0, or LM_ECODEC when the packet should go raw instead. */
	int (*encode)(void *ctx, const void *const *pages, uint32_t n, uint32_t page_size,
		      uint8_t *out, size_t cap, uint32_t *lens, size_t *out_len);
	/* Decodes in (in_len bytes, lens[] as validated) into n pages of
	 * page_size each. Never writes outside those pages; a page that does
	 * not decode to exactly page_size bytes is LM_EDECODE with e set. */
	int (*decode)(void *ctx, const uint8_t *in, size_t in_len, const uint32_t *lens,
		      void *const *pages, uint32_t n, uint32_t page_size, struct lm__err *e);
} lm__codec_ops;

/* NULL for an unknown id: callers treat it as LM_ECODEC. */
const lm__codec_ops *lm__codec_get(uint16_t id);
/* Largest payload any codec may send for a packet of pages pages. */
uint64_t lm__codec_payload_bound(uint32_t page_size, uint32_t pages);

extern const lm__codec_ops lm__codec_none;

#endif
