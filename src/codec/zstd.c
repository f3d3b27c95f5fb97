/*
 * Codec "zstd", per packet: the packet's normal pages are one zstd frame
 * (RFC 8878) with the content size in its header, no checksum (the
 * protocol's region checksum covers the data end to end) and no dictionary.
 *
 * The pages are not contiguous. The encoder streams them with one
 * ZSTD_inBuffer per page (zstd copies input into its own window, so a page
 * the guest changes meanwhile cannot make the frame inconsistent), and the
 * decoder streams the frame into each destination page in turn: zstd keeps
 * the history in its own buffer and never writes past a ZSTD_outBuffer.
 *
 * Level: params->level, 0 = 1 (fast, as QEMU's multifd default), clamped
 * to ZSTD_minCLevel()..ZSTD_maxCLevel(). The frame's window is at most the
 * packet: the encoder pledges the size, the decoder refuses larger windows
 * and ZSTD_d_windowLogMax caps what the DCtx may ever allocate.
 *
 * The walk over the pages, the page-exact checks and the messages are the
 * streaming driver's (stream.c); this file has zstd's calls only.
 *
 * Stats ("zstd"): jobs = packets encoded or decoded; raw = pages of packets
 * that did not shrink; bytes_in/bytes_out = what went in and came out of
 * the codec (for a raw packet both are its page bytes).
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader: window and dict id */
#include <errno.h>
#include <stdlib.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "stream.h"
#include "../wire.h"

typedef struct zstd_lib {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
} zstd_lib;

static uint64_t zstd_bound(uint32_t page_size, uint32_t pages)
{
	return ZSTD_compressBound((size_t)page_size * pages);
}

static int zstd_level(int level)
{
	if (level == 0)
		return 1;
	if (level < ZSTD_minCLevel())
		return ZSTD_minCLevel();
	return level > ZSTD_maxCLevel() ? ZSTD_maxCLevel() : level;
}

/* Smallest window log that holds a whole packet: frames never need more. */
static int window_log(uint64_t packet_bytes)
{
	int log = ZSTD_WINDOWLOG_MIN;

	while (log < ZSTD_WINDOWLOG_MAX && (1ull << log) < packet_bytes)
		log++;
	return log;
}

/* zstd failures that are not the data's fault. */
static int zstd_errno(size_t r)
{
	return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
}

static void zstd_lib_free(void *lib)
{
	zstd_lib *z = lib;

	ZSTD_freeCCtx(z->cctx);
	ZSTD_freeDCtx(z->dctx);
	free(z);
}

static int zstd_lib_new(void **out, const lm__codec_params *p)
{
	zstd_lib *z = calloc(1, sizeof(*z));
	int rc = -ENOMEM;

	if (!z)
		return -ENOMEM;
	z->cctx = ZSTD_createCCtx();
	z->dctx = ZSTD_createDCtx();
	if (!z->cctx || !z->dctx)
		goto fail;
	/* Parameters stick across ZSTD_reset_session_only. */
	rc = -EIO;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel,
						zstd_level(p->level))) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_contentSizeFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(
		    z->dctx, ZSTD_d_windowLogMax,
		    window_log((uint64_t)p->page_size * p->packet_pages))))
		goto fail;
	*out = z;
	return 0;
fail:
	zstd_lib_free(z);
	return rc;
}

static int zstd_enc_begin(void *lib, uint32_t page_size, size_t raw, lm__sbuf *out)
{
	zstd_lib *z = lib;

	(void)page_size;
	(void)out;
	if (ZSTD_isError(ZSTD_CCtx_reset(z->cctx, ZSTD_reset_session_only)) ||
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(z->cctx, raw)))
		return -EIO;
	return 0;
}

/* Takes all of src (op ZSTD_e_end: and flushes the frame's end); 0,
 * LM_ECODEC when out is full first (no shrink), or an error. */
static int compress(ZSTD_CCtx *cctx, lm__sbuf *out, const void *src, size_t len,
		    ZSTD_EndDirective op)
{
	ZSTD_inBuffer ib = {src, len, 0};
	ZSTD_outBuffer ob = {out->p, out->size, out->pos};

	for (;;) {
		size_t ipos = ib.pos, opos = ob.pos;
		size_t left = ZSTD_compressStream2(cctx, &ob, &ib, op);
		out->pos = ob.pos;
		if (ZSTD_isError(left))
			return zstd_errno(left);
		/* With ZSTD_e_end, left is what is still to flush. */
		if (ib.pos == ib.size && (op == ZSTD_e_continue || !left))
			return 0;
		/* Output full with work left: the frame would be at least
		 * the raw size. */
		if (ob.pos == ob.size)
			return LM_ECODEC;
		/* zstd always progresses while it has room; never spin. */
		if (ib.pos == ipos && ob.pos == opos)
			return -EIO;
	}
}

static int zstd_enc_page(void *lib, const void *page, size_t len, lm__sbuf *out)
{
	return compress(((zstd_lib *)lib)->cctx, out, page, len, ZSTD_e_continue);
}

static int zstd_enc_end(void *lib, lm__sbuf *out)
{
	return compress(((zstd_lib *)lib)->cctx, out, NULL, 0, ZSTD_e_end);
}

/* The header must describe one plain frame of exactly the packet. */
static int check_header(const uint8_t *in, size_t in_len, size_t raw, lm__err *e)
{
	ZSTD_frameHeader h;
	size_t r = ZSTD_getFrameHeader(&h, in, in_len);

	if (ZSTD_isError(r)) {
		lm__err_set(e, "data.payload: zstd frame header: %s", ZSTD_getErrorName(r));
		return LM_EDECODE;
	}
	if (r) {
		lm__err_set(e, "data.payload: zstd frame header truncated at %zu bytes", in_len);
		return LM_EDECODE;
	}
	if (h.frameType != ZSTD_frame) {
		lm__err_set(e, "data.payload: zstd skippable frame, no data");
		return LM_EDECODE;
	}
	if (h.dictID) {
		lm__err_set(e, "data.payload: zstd frame needs dictionary %u", h.dictID);
		return LM_EDECODE;
	}
	if (h.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN && h.frameContentSize != raw) {
		lm__err_set(e, "data.payload: zstd frame content size %llu, the pages need %zu",
			    h.frameContentSize, raw);
		return LM_EDECODE;
	}
	if (h.windowSize > raw) {
		lm__err_set(e, "data.payload: zstd frame window %llu bytes above the packet's %zu",
			    h.windowSize, raw);
		return LM_EDECODE;
	}
	return 0;
}

static int zstd_dec_begin(void *lib, lm__cbuf *in, size_t raw, lm__err *e)
{
	zstd_lib *z = lib;
	int rc = check_header(in->p, in->size, raw, e);

	if (!rc && ZSTD_isError(ZSTD_DCtx_reset(z->dctx, ZSTD_reset_session_only)))
		rc = -EIO;
	return rc;
}

static int zstd_dec_step(void *lib, lm__cbuf *in, lm__sbuf *out, int *ended, const char **why)
{
	ZSTD_inBuffer ib = {in->p, in->size, in->pos};
	ZSTD_outBuffer ob = {out->p, out->size, out->pos};
	size_t left = ZSTD_decompressStream(((zstd_lib *)lib)->dctx, &ob, &ib);

	in->pos = ib.pos;
	out->pos = ob.pos;
	if (ZSTD_isError(left)) {
		*why = ZSTD_getErrorName(left);
		/* The data's fault unless out of memory. */
		return ZSTD_getErrorCode(left) == ZSTD_error_memory_allocation ? -ENOMEM
									 : LM_EDECODE;
	}
	*ended = left == 0; /* 0: the frame is complete and flushed */
	return 0;
}

static const lm__stream_ops zstd_stream = {
	.name = "zstd",
	.unit = "frame",
	.lib_new = zstd_lib_new,
	.lib_free = zstd_lib_free,
	.enc_begin = zstd_enc_begin,
	.enc_page = zstd_enc_page,
	.enc_end = zstd_enc_end,
	.dec_begin = zstd_dec_begin,
	.dec_step = zstd_dec_step,
};

static int zstd_ctx_new(void **ctx, const lm__codec_params *p)
{
	return lm__stream_ctx_new(ctx, &zstd_stream, p);
}

const lm__codec_ops lm__codec_zstd = {
	.name = "zstd",
	.id = LM_CODEC_ZSTD,
	.per_page = 0,
	.raw_only = 0,
	.payload_bound = zstd_bound,
	.ctx_new = zstd_ctx_new,
	.ctx_free = lm__stream_ctx_free,
	.encode = lm__stream_encode,
	.decode = lm__stream_decode,
};
