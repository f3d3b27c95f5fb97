/*
 * The streaming driver of the per-packet codecs (zstd, lz4, zlib). The
 * pages are not contiguous on either side, so the driver owns the walk: it
 * feeds the pages to the encoder one after another, and streams the
 * decoder's output straight into each destination page, never past it.
 * It also owns the rules the codecs share (protocol.md "Codecs in DATA"):
 * the length table, a packet that does not shrink, a frame that ends
 * before, inside or after the pages, trailing bytes, and the messages,
 * which name the page. A codec supplies a const lm__codec_stream_ops of its
 * library calls and points its lm__codec_ops at the lm__stream_* below.
 *
 * Stats (under the codec's name): jobs = packets encoded or decoded; raw =
 * pages of packets that did not shrink; bytes_in/bytes_out = what went in
 * and came out of the codec (for a raw packet both are its page bytes).
 */
#ifndef LM_CODEC_STREAM_H
#define LM_CODEC_STREAM_H

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

/* What a frame's header says, for the driver's checks. */
typedef struct lm__frame_info {
	int skippable;       /* a skippable frame: no data */
	uint32_t dict_id;    /* 0: no dictionary */
	uint64_t content;    /* decoded size; LM__SIZE_UNSTATED when absent */
	uint64_t buffer;     /* what the decoder allocates for it (window...) */
} lm__frame_info;

#define LM__SIZE_UNSTATED UINT64_MAX

typedef struct lm__codec_stream_ops {
	const char *name; /* the stats entry; messages say "<name> <unit>" */
	const char *unit; /* "frame", "stream" */
	/* info.buffer is allowed up to max(buffer_floor, the packet's bytes):
	 * memory stays bounded by the packet. buffer names it in messages. */
	const char *buffer;
	uint64_t buffer_floor;
	/* 0: the encoder gets one byte less than the pages and stops when
	 * full (no shrink); 1: it needs payload_bound() of room (it refuses
	 * a step whose worst case does not fit) and the size is checked. */
	int needs_bound;
	uint64_t (*bound)(uint32_t page_size, uint32_t pages);
	size_t lib_size; /* the library state, zeroed, that init fills in */
	int (*init)(void *lib, const lm__codec_params *p);
	void (*fini)(void *lib); /* also after a failed init */
	/* Encoding: 0; LM_ECODEC when out is full; other errors are not the
	 * data's fault. begin starts a frame of raw bytes. step is one library
	 * call on one page; with last it also ends the frame; *done once it
	 * has taken all of in (and with last, written the frame's end). */
	int (*enc_begin)(void *lib, uint32_t page_size, size_t raw, lm__sbuf *out);
	int (*enc_step)(void *lib, lm__cbuf *in, lm__sbuf *out, int last, int *done);
	/* Decoding; a failure is LM_EDECODE (or -ENOMEM, -EIO) with *why, the
	 * library's reason. begin resets and parses the header, if the format
	 * has one, into *fi (in->pos may skip what it took). step is one
	 * library call: *ended once the frame is complete. A step that cannot
	 * progress may return 0: the driver calls that truncated. */
	int (*dec_begin)(void *lib, lm__cbuf *in, lm__frame_info *fi, const char **why);
	int (*dec_step)(void *lib, lm__cbuf *in, lm__sbuf *out, int *ended, const char **why);
} lm__codec_stream_ops;

/* A codec's ctx_new is this with its table; the rest go in lm__codec_ops. */
int lm__stream_ctx_new(void **ctx, const lm__codec_stream_ops *ops, const lm__codec_params *p);
void lm__stream_ctx_free(void *ctx);
int lm__stream_encode(void *ctx, const void *const *pages, uint32_t n, uint32_t page_size,
		      uint8_t *out, size_t cap, uint32_t *lens, size_t *out_len);
int lm__stream_decode(void *ctx, const uint8_t *in, size_t in_len, const uint32_t *lens,
		      void *const *pages, uint32_t n, uint32_t page_size, struct lm__err *e);

#endif
