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
 * Stats ("zstd"): jobs = packets encoded or decoded; raw = pages of packets
 * that did not shrink; bytes_in/bytes_out = what went in and came out of
 * the codec (for a raw packet both are its page bytes).
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader: window and dict id */
#include <errno.h>
#include <stdlib.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "codec.h"
#include "../wire.h"

typedef struct zstd_ctx {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	lm_engine_stats *st;
	lm_engine_stats sink; /* counts go here when the stats table is full */
} zstd_ctx;

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

static void zstd_ctx_free(void *ctx)
{
	zstd_ctx *c = ctx;

	if (!c)
		return;
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	free(c);
}

static int zstd_ctx_new(void **out, const lm__codec_params *p)
{
	zstd_ctx *c;
	int rc = -ENOMEM;

	*out = NULL;
	if (!p->page_size || !p->packet_pages)
		return LM_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cctx = ZSTD_createCCtx();
	c->dctx = ZSTD_createDCtx();
	if (!c->cctx || !c->dctx)
		goto fail;
	/* Parameters stick across ZSTD_reset_session_only. */
	rc = -EIO;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel,
						zstd_level(p->level))) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(
		    c->dctx, ZSTD_d_windowLogMax,
		    window_log((uint64_t)p->page_size * p->packet_pages))))
		goto fail;
	c->st = lm__engine_stat_or(p->stats, "zstd", &c->sink);
	*out = c;
	return 0;
fail:
	zstd_ctx_free(c);
	return rc;
}

/* Feeds one page; 0, LM_ECODEC when out is full (no shrink), or an error. */
static int feed_page(zstd_ctx *c, ZSTD_outBuffer *ob, const void *page, uint32_t page_size,
		     int last)
{
	ZSTD_inBuffer ib = {page, page_size, 0};
	ZSTD_EndDirective op = last ? ZSTD_e_end : ZSTD_e_continue;

	for (;;) {
		size_t ipos = ib.pos, opos = ob->pos;
		size_t left = ZSTD_compressStream2(c->cctx, ob, &ib, op);
		if (ZSTD_isError(left))
			return zstd_errno(left);
		/* With ZSTD_e_end, left is what is still to flush. */
		if (ib.pos == ib.size && (!last || !left))
			return 0;
		/* Output full with work left: the frame would be at least
		 * the raw size. */
		if (ob->pos == ob->size)
			return LM_ECODEC;
		/* zstd always progresses while it has room; never spin. */
		if (ib.pos == ipos && ob->pos == opos)
			return -EIO;
	}
}

static int zstd_encode(void *ctx, const void *const *pages, uint32_t n, uint32_t page_size,
		       uint8_t *out, size_t cap, uint32_t *lens, size_t *out_len)
{
	zstd_ctx *c = ctx;
	size_t raw = (size_t)n * page_size;
	/* One byte less than raw: a frame that does not fit did not shrink. */
	ZSTD_outBuffer ob = {out, raw && cap >= raw ? raw - 1 : cap, 0};
	int rc = LM_ECODEC;

	for (uint32_t i = 0; i < n; i++)
		lens[i] = page_size;
	*out_len = 0;
	if (!n)
		goto done;
	rc = -EIO;
	if (ZSTD_isError(ZSTD_CCtx_reset(c->cctx, ZSTD_reset_session_only)) ||
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c->cctx, raw)))
		goto done;
	for (uint32_t i = 0; i < n; i++)
		if ((rc = feed_page(c, &ob, pages[i], page_size, i + 1 == n)))
			goto done;
	*out_len = ob.pos;
done:
	if (rc == 0 || rc == LM_ECODEC)
		lm__count_packet(c->st, raw, rc ? raw : ob.pos, rc ? n : 0);
	return rc;
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

/* A failed ZSTD_decompressStream: the data's fault unless out of memory. */
static int stream_error(size_t r, uint32_t page, lm__err *e)
{
	lm__err_set(e, "data.payload: zstd in page %u: %s", page, ZSTD_getErrorName(r));
	return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM : LM_EDECODE;
}

/* Fills page i completely; *left is zstd's hint (0: the frame has ended). */
static int fill_page(zstd_ctx *c, ZSTD_inBuffer *ib, void *page, uint32_t page_size, uint32_t i,
		     uint32_t n, size_t *left, lm__err *e)
{
	ZSTD_outBuffer ob = {page, page_size, 0};

	while (ob.pos < ob.size) {
		size_t ipos = ib->pos, opos = ob.pos;
		*left = ZSTD_decompressStream(c->dctx, &ob, ib);
		if (ZSTD_isError(*left))
			return stream_error(*left, i, e);
		if (*left == 0 && ob.pos < ob.size) {
			lm__err_set(e, "data.payload: zstd frame ends in page %u of %u after %zu bytes",
				    i, n, ob.pos);
			return LM_EDECODE;
		}
		if (ib->pos == ipos && ob.pos == opos) {
			lm__err_set(e, "data.payload: zstd frame truncated in page %u of %u", i, n);
			return LM_EDECODE;
		}
	}
	if (*left == 0 && i + 1 < n) {
		lm__err_set(e, "data.payload: zstd frame ends after page %u of %u", i, n);
		return LM_EDECODE;
	}
	return 0;
}

/* After the last page the frame may only end: any byte more is too much. */
static int finish_frame(zstd_ctx *c, ZSTD_inBuffer *ib, size_t left, uint32_t n, lm__err *e)
{
	while (left) {
		uint8_t extra;
		ZSTD_outBuffer ob = {&extra, 1, 0};
		size_t ipos = ib->pos;
		left = ZSTD_decompressStream(c->dctx, &ob, ib);
		if (ZSTD_isError(left))
			return stream_error(left, n, e);
		if (ob.pos) {
			lm__err_set(e, "data.payload: zstd frame decodes to more than %u pages", n);
			return LM_EDECODE;
		}
		if (left && ib->pos == ipos) {
			lm__err_set(e, "data.payload: zstd frame truncated after its %u pages", n);
			return LM_EDECODE;
		}
	}
	if (ib->pos != ib->size) {
		lm__err_set(e, "data.payload: %zu bytes after the zstd frame", ib->size - ib->pos);
		return LM_EDECODE;
	}
	return 0;
}

static int zstd_decode(void *ctx, const uint8_t *in, size_t in_len, const uint32_t *lens,
		       void *const *pages, uint32_t n, uint32_t page_size, lm__err *e)
{
	zstd_ctx *c = ctx;
	size_t raw = (size_t)n * page_size, left = 1;
	ZSTD_inBuffer ib = {in, in_len, 0};
	int rc;

	if ((rc = lm__block_lens_check("zstd", lens, n, page_size, in_len, e)) || !n)
		goto done;
	if ((rc = check_header(in, in_len, raw, e)))
		goto done;
	rc = -EIO;
	if (ZSTD_isError(ZSTD_DCtx_reset(c->dctx, ZSTD_reset_session_only)))
		goto done;
	for (uint32_t i = 0; i < n; i++)
		if ((rc = fill_page(c, &ib, pages[i], page_size, i, n, &left, e)))
			goto done;
	rc = finish_frame(c, &ib, left, n, e);
done:
	lm__count_packet(c->st, rc ? 0 : in_len, rc ? 0 : raw, 0);
	return rc;
}

const lm__codec_ops lm__codec_zstd = {
	.name = "zstd",
	.id = LM_CODEC_ZSTD,
	.per_page = 0,
	.raw_only = 0,
	.payload_bound = zstd_bound,
	.ctx_new = zstd_ctx_new,
	.ctx_free = zstd_ctx_free,
	.encode = zstd_encode,
	.decode = zstd_decode,
};
