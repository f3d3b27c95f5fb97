/*
 * Codec "lz4", per packet: the packet's normal pages are one LZ4 frame
 * (the LZ4 frame format, lz4frame.h) with linked blocks of the smallest
 * size above the page (64 KiB, or 256 KiB for 64 KiB pages), the content
 * size in its header, no checksums (the region checksum covers the data)
 * and no dictionary. Any lz4 tool decodes a payload.
 *
 * Why the frame API and not LZ4_compress_fast_continue() per page: the
 * block API's history is "the previous contiguous run" of memory on each
 * side, so a stream whose sender pages happen to be adjacent needs the
 * receiver's pages adjacent too, and a guest writing a page already
 * compressed would corrupt the next page's matches. LZ4F keeps its own
 * history, so the format depends on neither side's memory layout. With
 * blocks larger than a page, LZ4F copies every page into its block buffer
 * (stableSrc = 0) and compresses the copy, so a page the guest changes
 * meanwhile only affects itself (a page of a whole block would be
 * compressed in place and its history saved afterwards, maybe different).
 * The decoder streams into each destination page in turn; LZ4F decodes a
 * block into its own buffer and copies the pages out (stableDst = 0: it
 * never reads history back from a page, and a packet may list the same
 * offset twice, protocol.md leaves offsets unchecked).
 *
 * Level: params->level is the acceleration, 0 = 1 (lz4's default, the best
 * ratio of its fast mode), clamped to 1..65537 (lz4.c's
 * LZ4_ACCELERATION_MAX). LZ4F spells acceleration a as level 1 - a.
 *
 * A frame may not declare blocks larger than both 256 KiB and the packet:
 * LZ4F allocates buffers of the block size, so memory stays bounded.
 *
 * The walk over the pages, the page-exact checks and the messages are the
 * streaming driver's (stream.c); this file has LZ4F's calls only.
 *
 * Stats ("lz4"): jobs = packets encoded or decoded; raw = pages of packets
 * that did not shrink; bytes_in/bytes_out = what went in and came out of
 * the codec (for a raw packet both are its page bytes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>

#include "stream.h"
#include "../wire.h"

#define LZ4_ACCEL_MAX 65537 /* LZ4_ACCELERATION_MAX in lz4.c */

typedef struct lz4_lib {
	LZ4F_cctx *cc;
	LZ4F_dctx *dc;
	LZ4F_preferences_t prefs;
} lz4_lib;

/* Blocks above the page: see the top of the file. */
static LZ4F_blockSizeID_t block_id(uint32_t page_size)
{
	return page_size < (64u << 10) ? LZ4F_max64KB : LZ4F_max256KB;
}

/* The frame shape the encoder writes; level and content size per use. */
static LZ4F_preferences_t lz4_prefs(uint32_t page_size, int level, uint64_t content)
{
	LZ4F_preferences_t p;

	memset(&p, 0, sizeof(p));
	p.frameInfo.blockSizeID = block_id(page_size);
	p.frameInfo.blockMode = LZ4F_blockLinked;
	p.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
	p.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
	p.frameInfo.frameType = LZ4F_frame;
	p.frameInfo.contentSize = content;
	p.compressionLevel = level;
	return p;
}

static uint64_t lz4_bound(uint32_t page_size, uint32_t pages)
{
	size_t raw = (size_t)page_size * pages;
	LZ4F_preferences_t p = lz4_prefs(page_size, 0, raw);

	return LZ4F_compressFrameBound(raw, &p);
}

static int lz4_level(int level)
{
	int accel = level <= 0 ? 1 : level > LZ4_ACCEL_MAX ? LZ4_ACCEL_MAX : level;

	return 1 - accel;
}

static void lz4_lib_free(void *lib)
{
	lz4_lib *z = lib;

	LZ4F_freeCompressionContext(z->cc);
	LZ4F_freeDecompressionContext(z->dc);
	free(z);
}

/* LZ4F allocates its state and block buffers at the first frame: start
 * one now, so that encoding never allocates. */
static int lz4_warm_up(lz4_lib *z)
{
	uint8_t hdr[LZ4F_HEADER_SIZE_MAX];

	return LZ4F_isError(LZ4F_compressBegin(z->cc, hdr, sizeof(hdr), &z->prefs)) ? -ENOMEM : 0;
}

static int lz4_lib_new(void **out, const lm__codec_params *p)
{
	lz4_lib *z = calloc(1, sizeof(*z));
	int rc = -ENOMEM;

	if (!z)
		return -ENOMEM;
	if (LZ4F_isError(LZ4F_createCompressionContext(&z->cc, LZ4F_VERSION)) ||
	    LZ4F_isError(LZ4F_createDecompressionContext(&z->dc, LZ4F_VERSION)))
		goto fail;
	z->prefs = lz4_prefs(p->page_size, lz4_level(p->level), 0);
	if ((rc = lz4_warm_up(z)))
		goto fail;
	*out = z;
	return 0;
fail:
	lz4_lib_free(z);
	return rc;
}

/* The driver gives the encoder lz4_bound() of room (needs_bound: LZ4F
 * refuses a step whose worst case does not fit, and stores a block that
 * does not shrink), so an error while encoding is not the data's fault. */
static int lz4_enc_begin(void *lib, uint32_t page_size, size_t raw, lm__sbuf *out)
{
	lz4_lib *z = lib;
	size_t r;

	z->prefs.frameInfo.blockSizeID = block_id(page_size);
	z->prefs.frameInfo.contentSize = raw;
	r = LZ4F_compressBegin(z->cc, out->p + out->pos, out->size - out->pos, &z->prefs);
	if (LZ4F_isError(r))
		return -EIO;
	out->pos += r;
	return 0;
}

static int lz4_enc_page(void *lib, const void *page, size_t len, lm__sbuf *out)
{
	LZ4F_compressOptions_t opt = {.stableSrc = 0}; /* history is copied */
	size_t r = LZ4F_compressUpdate(((lz4_lib *)lib)->cc, out->p + out->pos,
				       out->size - out->pos, page, len, &opt);

	if (LZ4F_isError(r))
		return -EIO;
	out->pos += r;
	return 0;
}

static int lz4_enc_end(void *lib, lm__sbuf *out)
{
	LZ4F_compressOptions_t opt = {.stableSrc = 0};
	size_t r = LZ4F_compressEnd(((lz4_lib *)lib)->cc, out->p + out->pos, out->size - out->pos,
				    &opt);

	if (LZ4F_isError(r))
		return -EIO;
	out->pos += r;
	return 0;
}

/* One plain frame of exactly the packet, with bounded block buffers. */
static int check_header(lz4_lib *z, lm__cbuf *in, size_t raw, lm__err *e)
{
	LZ4F_frameInfo_t fi;
	size_t r, block, hdr_len = in->size;

	r = LZ4F_getFrameInfo(z->dc, &fi, in->p, &hdr_len);
	if (LZ4F_isError(r)) {
		lm__err_set(e, "data.payload: lz4 frame header: %s", LZ4F_getErrorName(r));
		return LM_EDECODE;
	}
	in->pos = hdr_len; /* LZ4F has taken the header in */
	if (fi.frameType != LZ4F_frame) {
		lm__err_set(e, "data.payload: lz4 skippable frame, no data");
		return LM_EDECODE;
	}
	if (fi.dictID) {
		lm__err_set(e, "data.payload: lz4 frame needs dictionary %u", fi.dictID);
		return LM_EDECODE;
	}
	if (fi.contentSize && fi.contentSize != raw) {
		lm__err_set(e, "data.payload: lz4 frame content size %llu, the pages need %zu",
			    fi.contentSize, raw);
		return LM_EDECODE;
	}
	/* blockSizeID 4..7 (LZ4F checked it): 64 KiB, 256 KiB, 1 MiB, 4 MiB. */
	block = (size_t)1 << (8 + 2 * (unsigned)fi.blockSizeID);
	if (block > (256u << 10) && block > raw) {
		lm__err_set(e, "data.payload: lz4 frame blocks of %zu bytes above the packet's %zu",
			    block, raw);
		return LM_EDECODE;
	}
	return 0;
}

static int lz4_dec_begin(void *lib, lm__cbuf *in, size_t raw, lm__err *e)
{
	lz4_lib *z = lib;

	/* Also forgets whatever a failed packet left half decoded. */
	LZ4F_resetDecompressionContext(z->dc);
	return check_header(z, in, raw, e);
}

static int lz4_dec_step(void *lib, lm__cbuf *in, lm__sbuf *out, int *ended, const char **why)
{
	LZ4F_decompressOptions_t opt = {.stableDst = 0}; /* see the top of the file */
	size_t dst = out->size - out->pos, src = in->size - in->pos;
	size_t hint = LZ4F_decompress(((lz4_lib *)lib)->dc, out->p + out->pos, &dst,
				      in->p + in->pos, &src, &opt);

	if (LZ4F_isError(hint)) {
		*why = LZ4F_getErrorName(hint);
		return LM_EDECODE;
	}
	in->pos += src;
	out->pos += dst;
	*ended = hint == 0; /* 0: the frame is complete */
	return 0;
}

static const lm__stream_ops lz4_stream = {
	.name = "lz4",
	.unit = "frame",
	.needs_bound = 1,
	.bound = lz4_bound,
	.lib_new = lz4_lib_new,
	.lib_free = lz4_lib_free,
	.enc_begin = lz4_enc_begin,
	.enc_page = lz4_enc_page,
	.enc_end = lz4_enc_end,
	.dec_begin = lz4_dec_begin,
	.dec_step = lz4_dec_step,
};

static int lz4_ctx_new(void **ctx, const lm__codec_params *p)
{
	return lm__stream_ctx_new(ctx, &lz4_stream, p);
}

const lm__codec_ops lm__codec_lz4 = {
	.name = "lz4",
	.id = LM_CODEC_LZ4,
	.per_page = 0,
	.raw_only = 0,
	.payload_bound = lz4_bound,
	.ctx_new = lz4_ctx_new,
	.ctx_free = lm__stream_ctx_free,
	.encode = lm__stream_encode,
	.decode = lm__stream_decode,
};
