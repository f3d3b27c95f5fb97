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
 * The page walk, the checks, the messages and the stats ("lz4") are the
 * streaming driver's (stream.h); this file has LZ4F's calls only.
 */
#include <errno.h>
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

static void lz4_fini(void *lib)
{
	lz4_lib *z = lib;

	LZ4F_freeCompressionContext(z->cc);
	LZ4F_freeDecompressionContext(z->dc);
}

static int lz4_init(void *lib, const lm__codec_params *p)
{
	lz4_lib *z = lib;
	uint8_t hdr[LZ4F_HEADER_SIZE_MAX];

	if (LZ4F_isError(LZ4F_createCompressionContext(&z->cc, LZ4F_VERSION)) ||
	    LZ4F_isError(LZ4F_createDecompressionContext(&z->dc, LZ4F_VERSION)))
		return -ENOMEM;
	z->prefs = lz4_prefs(p->page_size, lz4_level(p->level), 0);
	/* LZ4F allocates its state and block buffers at the first frame:
	 * start one now, so that encoding never allocates. */
	return LZ4F_isError(LZ4F_compressBegin(z->cc, hdr, sizeof(hdr), &z->prefs)) ? -ENOMEM : 0;
}

/* The driver gives the encoder lz4_bound() of room (needs_bound: LZ4F
 * refuses a call whose worst case does not fit, and stores a block that
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

/* LZ4F takes a whole page per call (it has the room for it). */
static int lz4_enc_step(void *lib, lm__cbuf *in, lm__sbuf *out, int last, int *done)
{
	LZ4F_compressOptions_t opt = {.stableSrc = 0}; /* history is copied */
	lz4_lib *z = lib;
	size_t r = LZ4F_compressUpdate(z->cc, out->p + out->pos, out->size - out->pos,
				       in->p + in->pos, in->size - in->pos, &opt);

	if (LZ4F_isError(r))
		return -EIO;
	out->pos += r;
	in->pos = in->size;
	if (last) {
		r = LZ4F_compressEnd(z->cc, out->p + out->pos, out->size - out->pos, &opt);
		if (LZ4F_isError(r))
			return -EIO;
		out->pos += r;
	}
	*done = 1;
	return 0;
}

static int lz4_dec_begin(void *lib, lm__cbuf *in, lm__frame_info *fi, const char **why)
{
	lz4_lib *z = lib;
	LZ4F_frameInfo_t f;
	size_t r, hdr_len = in->size;

	/* Also forgets whatever a failed packet left half decoded. */
	LZ4F_resetDecompressionContext(z->dc);
	r = LZ4F_getFrameInfo(z->dc, &f, in->p, &hdr_len);
	if (LZ4F_isError(r)) {
		*why = LZ4F_getErrorName(r);
		return LM_EDECODE;
	}
	in->pos = hdr_len; /* LZ4F has taken the header in */
	fi->skippable = f.frameType != LZ4F_frame;
	fi->dict_id = f.dictID;
	if (f.contentSize)
		fi->content = f.contentSize;
	/* blockSizeID 4..7 (LZ4F checked it): 64 KiB, 256 KiB, 1 MiB, 4 MiB. */
	fi->buffer = (uint64_t)1 << (8 + 2 * (unsigned)f.blockSizeID);
	return 0;
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

static const lm__codec_stream_ops lz4_stream = {
	.name = "lz4",
	.unit = "frame",
	.buffer = "blocks", /* LZ4F allocates buffers of the block size */
	.buffer_floor = 256u << 10,
	.needs_bound = 1,
	.bound = lz4_bound,
	.lib_size = sizeof(lz4_lib),
	.init = lz4_init,
	.fini = lz4_fini,
	.enc_begin = lz4_enc_begin,
	.enc_step = lz4_enc_step,
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
