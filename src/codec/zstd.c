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
 * The page walk, the checks, the messages and the stats ("zstd") are the
 * streaming driver's (stream.h); this file has zstd's calls only.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader: window and dict id */
#include <errno.h>

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

static void zstd_fini(void *lib)
{
	zstd_lib *z = lib;

	ZSTD_freeCCtx(z->cctx);
	ZSTD_freeDCtx(z->dctx);
}

static int zstd_init(void *lib, const lm__codec_params *p)
{
	zstd_lib *z = lib;

	z->cctx = ZSTD_createCCtx();
	z->dctx = ZSTD_createDCtx();
	if (!z->cctx || !z->dctx)
		return -ENOMEM;
	/* Parameters stick across ZSTD_reset_session_only. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel,
						zstd_level(p->level))) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_contentSizeFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(
		    z->dctx, ZSTD_d_windowLogMax,
		    window_log((uint64_t)p->page_size * p->packet_pages))))
		return -EIO;
	return 0;
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

static int zstd_enc_step(void *lib, lm__cbuf *in, lm__sbuf *out, int last, int *done)
{
	ZSTD_inBuffer ib = {in->p, in->size, in->pos};
	ZSTD_outBuffer ob = {out->p, out->size, out->pos};
	size_t left = ZSTD_compressStream2(((zstd_lib *)lib)->cctx, &ob, &ib,
					   last ? ZSTD_e_end : ZSTD_e_continue);

	in->pos = ib.pos;
	out->pos = ob.pos;
	if (ZSTD_isError(left)) /* not the data's fault */
		return ZSTD_getErrorCode(left) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
	/* With ZSTD_e_end, left is what is still to flush. */
	*done = ib.pos == ib.size && (!last || !left);
	return 0;
}

static int zstd_dec_begin(void *lib, lm__cbuf *in, lm__frame_info *fi, const char **why)
{
	ZSTD_frameHeader h;
	size_t r = ZSTD_getFrameHeader(&h, in->p, in->size);

	if (r) { /* not 0: an error, or the bytes the header still needs */
		*why = ZSTD_isError(r) ? ZSTD_getErrorName(r) : "truncated";
		return LM_EDECODE;
	}
	fi->skippable = h.frameType != ZSTD_frame;
	fi->dict_id = h.dictID;
	if (h.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN)
		fi->content = h.frameContentSize;
	fi->buffer = h.windowSize;
	*why = "cannot reset the decoder";
	return ZSTD_isError(ZSTD_DCtx_reset(((zstd_lib *)lib)->dctx, ZSTD_reset_session_only))
		       ? -EIO
		       : 0;
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

static const lm__codec_stream_ops zstd_stream = {
	.name = "zstd",
	.unit = "frame",
	.buffer = "window", /* the encoder pledges the size: window <= packet */
	.lib_size = sizeof(zstd_lib),
	.init = zstd_init,
	.fini = zstd_fini,
	.enc_begin = zstd_enc_begin,
	.enc_step = zstd_enc_step,
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
