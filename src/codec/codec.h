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
struct lm__engine_ops;

/* What a channel's codec context is made from. */
typedef struct lm__codec_params {
	int level;             /* 0 = the codec's default */
	uint32_t page_size, packet_pages;
	lm_accel accel;
	lm_engine_id engine;
	uint32_t busy_retries; /* accelerator submissions before software */
	/* LM_MAX_ENGINES entries the context fills in (names, counters).
	 * Owner: the channel thread that owns the context. */
	lm_engine_stats *stats;
	/* Tests only: use this accelerator instead of probing for one. */
	const struct lm__engine_ops *accel_ops;
} lm__codec_params;

typedef struct lm__codec_ops {
	const char *name;
	uint16_t id;
	int per_page; /* 1: lengths are per-page encoded sizes */
	int raw_only; /* 1: pages travel as they are (zero-copy path) */
	/* Worst-case payload for pages normal pages: sizes every buffer. */
	uint64_t (*payload_bound)(uint32_t page_size, uint32_t pages);
	/* Returns 0, or an error (LM_ECODEC: the codec or a required
	 * accelerator is not available here). */
	int (*ctx_new)(void **ctx, const lm__codec_params *p);
	void (*ctx_free)(void *ctx);
	/* Encodes n pages (cap >= payload_bound(page_size, n)), sets *out_len.
	 *  - per-page codecs fill lens[i]: the encoded length (< page_size),
	 *    or page_size for a page that goes raw. Encoded pages are packed
	 *    in out in page order; raw pages are NOT copied to out (the sender
	 *    sends them from the region, without a copy).
	 *  - per-packet codecs write one block to out and set every lens[i] to
	 *    page_size. LM_ECODEC: the packet does not shrink, send it raw.
	 * Any other error fails the migration. */
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
extern const lm__codec_ops lm__codec_deflate;
extern const lm__codec_ops lm__codec_zstd;
extern const lm__codec_ops lm__codec_lz4;
extern const lm__codec_ops lm__codec_zlib;

/* Checks a per-packet codec's length table against its payload. */
int lm__block_lens_check(const char *codec, const uint32_t *lens, uint32_t n, uint32_t page_size,
			 size_t in_len, struct lm__err *e);

/* Explains why a codec context could not be made (rc from ctx_new). */
void lm__codec_unavailable(struct lm__err *e, uint16_t codec, lm_accel accel, int rc);

/* Finds or adds the stats entry called name in p->stats (NULL if full). */
lm_engine_stats *lm__engine_stat(lm_engine_stats *stats, const char *name);
/* The same, but sink (the context's own) when the table is full or NULL. */
lm_engine_stats *lm__engine_stat_or(lm_engine_stats *stats, const char *name,
				    lm_engine_stats *sink);
/* Per-packet codecs: one packet handled (raw_pages: it did not shrink). */
void lm__count_packet(lm_engine_stats *st, uint64_t in, uint64_t out, uint32_t raw_pages);

#endif
