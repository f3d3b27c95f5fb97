/*
 * The streaming driver of the per-packet codecs (zstd, lz4, zlib).
 *
 * A per-packet codec turns the packet's normal pages into one frame, but
 * the pages are not contiguous on either side. The driver owns the walk:
 * it feeds the pages into the encoder one after another, and streams the
 * decoder's output straight into each destination page in turn, never
 * past it. It also owns every rule the codecs share (protocol.md "Codecs
 * in DATA"): the length table, a packet that does not shrink, a frame
 * that ends before, inside or after the pages, trailing bytes, and the
 * messages, which name the page.
 *
 * A codec file supplies only a const lm__stream_ops of its library calls
 * and points its lm__codec_ops at lm__stream_encode/decode/ctx_free; its
 * ctx_new is lm__stream_ctx_new with its table.
 */
#ifndef LM_CODEC_STREAM_H
#define LM_CODEC_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

/* A window the library writes into (out) or reads from (in); pos advances. */
typedef struct lm__sbuf {
	uint8_t *p;
	size_t size, pos;
} lm__sbuf;

typedef struct lm__cbuf {
	const uint8_t *p;
	size_t size, pos;
} lm__cbuf;

typedef struct lm__stream_ops {
	const char *name; /* the stats entry, and "<name> frame" in messages */
	const char *unit; /* what the payload is called: "frame", "stream" */
	/* 1: the library refuses a step whose worst case does not fit, so it
	 * gets payload_bound() of room and the driver checks the size after;
	 * 0: it gets one byte less than the pages and stops when full. */
	int needs_bound;
	uint64_t (*bound)(uint32_t page_size, uint32_t pages);
	int (*lib_new)(void **lib, const lm__codec_params *p);
	void (*lib_free)(void *lib);
	/* Encoding: 0; LM_ECODEC when out is full (the packet does not
	 * shrink); any other error is not the data's fault. begin starts a
	 * frame of raw bytes (and may write its header), page takes one page,
	 * end finishes the frame. */
	int (*enc_begin)(void *lib, uint32_t page_size, size_t raw, lm__sbuf *out);
	int (*enc_page)(void *lib, const void *page, size_t len, lm__sbuf *out);
	int (*enc_end)(void *lib, lm__sbuf *out);
	/* Decoding. begin resets the decoder and checks what it can of the
	 * frame before any output (LM_EDECODE with e set); in->pos may skip a
	 * header it parsed. step is one library call: it advances in and out,
	 * sets *ended when the frame is complete, and on failure returns
	 * LM_EDECODE (or -ENOMEM) with *why, the library's reason. A step that
	 * cannot progress returns 0 without moving: the driver calls that a
	 * truncated frame. */
	int (*dec_begin)(void *lib, lm__cbuf *in, size_t raw, struct lm__err *e);
	int (*dec_step)(void *lib, lm__cbuf *in, lm__sbuf *out, int *ended, const char **why);
} lm__stream_ops;

/* ctx_new of a codec built on the driver: the codec's own is one line. */
int lm__stream_ctx_new(void **ctx, const lm__stream_ops *ops, const lm__codec_params *p);
void lm__stream_ctx_free(void *ctx);
/* lm__codec_ops.encode and .decode for every codec built on the driver. */
int lm__stream_encode(void *ctx, const void *const *pages, uint32_t n, uint32_t page_size,
		      uint8_t *out, size_t cap, uint32_t *lens, size_t *out_len);
int lm__stream_decode(void *ctx, const uint8_t *in, size_t in_len, const uint32_t *lens,
		      void *const *pages, uint32_t n, uint32_t page_size, struct lm__err *e);

#endif
