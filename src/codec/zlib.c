/*
 * Codec "zlib", per packet: the packet's normal pages are one zlib stream
 * (RFC 1950: header, DEFLATE, Adler-32), 32 KiB window, no preset
 * dictionary.
 *
 * The pages are not contiguous: deflate() takes them one after another as
 * next_in (Z_NO_FLUSH, Z_FINISH with the last), and inflate() fills each
 * destination page in turn through avail_out. Both copy history into
 * their own window, so a page the guest changes while it is compressed
 * only affects that page, and inflate never writes past avail_out.
 *
 * Level: params->level, 0 = 1 (fast, as QEMU's multifd zlib), clamped to
 * 0..9 (0, from a negative level, stores: such packets never shrink).
 * z_streams live in the context; deflateReset()/inflateReset() per packet.
 *
 * The page walk, the checks, the messages and the stats ("zlib") are the
 * streaming driver's (stream.h); this file has zlib's calls only. The
 * deflate codec's zlib engine counts under the same name; a session uses
 * one codec.
 */
#include <errno.h>
#include <limits.h>

#include <zlib.h>

#include "stream.h"
#include "../wire.h"

typedef struct zlib_lib {
	z_stream d, i;
} zlib_lib;

static uint64_t zlib_bound(uint32_t page_size, uint32_t pages)
{
	return compressBound((uLong)page_size * pages);
}

static int zlib_level(int level)
{
	if (level == 0)
		return 1;
	return level < 0 ? 0 : level > 9 ? 9 : level;
}

static void zlib_fini(void *lib)
{
	zlib_lib *z = lib;

	/* Safe on a stream never (or not successfully) initialised: the
	 * state is zeroed, and zlib then refuses without touching it. */
	deflateEnd(&z->d);
	inflateEnd(&z->i);
}

static int zlib_init(void *lib, const lm__codec_params *p)
{
	zlib_lib *z = lib;
	int rc = deflateInit2(&z->d, zlib_level(p->level), Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY);

	if (rc == Z_OK)
		rc = inflateInit2(&z->i, 15);
	return rc == Z_OK ? 0 : rc == Z_MEM_ERROR ? -ENOMEM : -EIO;
}

/* zlib counts in 32 bits; no packet is near that, but never wrap. */
static uInt avail(size_t size, size_t pos)
{
	return size - pos > UINT_MAX ? UINT_MAX : (uInt)(size - pos);
}

static int zlib_enc_begin(void *lib, uint32_t page_size, size_t raw, lm__sbuf *out)
{
	(void)page_size;
	(void)raw;
	(void)out;
	return deflateReset(&((zlib_lib *)lib)->d) == Z_OK ? 0 : -EIO;
}

static int zlib_enc_step(void *lib, lm__cbuf *in, lm__sbuf *out, int last, int *done)
{
	z_stream *z = &((zlib_lib *)lib)->d;
	int zr;

	z->next_in = (Bytef *)(uintptr_t)(in->p + in->pos); /* zlib's API has no const */
	z->avail_in = avail(in->size, in->pos);
	z->next_out = out->p + out->pos;
	z->avail_out = avail(out->size, out->pos);
	zr = deflate(z, last ? Z_FINISH : Z_NO_FLUSH);
	in->pos = (size_t)(z->next_in - in->p);
	out->pos = (size_t)(z->next_out - out->p);
	if (zr == Z_STREAM_ERROR)
		return -EIO;
	*done = in->pos == in->size && (!last || zr == Z_STREAM_END);
	return 0;
}

static int zlib_dec_begin(void *lib, lm__cbuf *in, lm__frame_info *fi, const char **why)
{
	(void)fi; /* the header holds nothing the driver checks */
	if (in->size > UINT_MAX) { /* avail_in is 32 bits; no payload is this big */
		*why = "payload too large";
		return LM_EDECODE;
	}
	*why = "cannot reset the decoder";
	return inflateReset(&((zlib_lib *)lib)->i) == Z_OK ? 0 : -EIO;
}

static int zlib_dec_step(void *lib, lm__cbuf *in, lm__sbuf *out, int *ended, const char **why)
{
	z_stream *z = &((zlib_lib *)lib)->i;
	int zr;

	z->next_in = (Bytef *)(uintptr_t)(in->p + in->pos);
	z->avail_in = avail(in->size, in->pos);
	z->next_out = out->p + out->pos;
	z->avail_out = avail(out->size, out->pos);
	zr = inflate(z, Z_NO_FLUSH);
	in->pos = (size_t)(z->next_in - in->p);
	out->pos = (size_t)(z->next_out - out->p);
	switch (zr) {
	case Z_STREAM_END:
		*ended = 1;
		return 0;
	case Z_OK:
	case Z_BUF_ERROR: /* no progress: the driver calls that truncated */
		return 0;
	case Z_NEED_DICT:
		*why = "stream needs a preset dictionary";
		return LM_EDECODE;
	case Z_MEM_ERROR:
		*why = "out of memory";
		return -ENOMEM;
	default:
		*why = z->msg ? z->msg : "invalid stream";
		return LM_EDECODE;
	}
}

static const lm__codec_stream_ops zlib_stream = {
	.name = "zlib",
	.unit = "stream",
	.lib_size = sizeof(zlib_lib),
	.init = zlib_init,
	.fini = zlib_fini,
	.enc_begin = zlib_enc_begin,
	.enc_step = zlib_enc_step,
	.dec_begin = zlib_dec_begin,
	.dec_step = zlib_dec_step,
};

static int zlib_ctx_new(void **ctx, const lm__codec_params *p)
{
	return lm__stream_ctx_new(ctx, &zlib_stream, p);
}

const lm__codec_ops lm__codec_zlib = {
	.name = "zlib",
	.id = LM_CODEC_ZLIB,
	.per_page = 0,
	.raw_only = 0,
	.payload_bound = zlib_bound,
	.ctx_new = zlib_ctx_new,
	.ctx_free = lm__stream_ctx_free,
	.encode = lm__stream_encode,
	.decode = lm__stream_decode,
};
