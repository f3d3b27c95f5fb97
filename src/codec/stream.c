/*
 * The streaming driver of the per-packet codecs: see stream.h. Everything
 * a per-packet codec must refuse (protocol.md "Codecs in DATA") is decided
 * here, once, so the three codecs cannot drift apart; the codec's steps
 * only say what their library did.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "stream.h"
#include "../wire.h"

typedef struct lm__stream {
	const lm__codec_stream_ops *ops;
	lm_engine_stats *st;
	lm_engine_stats sink; /* counts go here when the stats table is full */
	max_align_t lib[];    /* the codec's state: ops->lib_size bytes */
} lm__stream;

void lm__stream_ctx_free(void *ctx)
{
	lm__stream *s = ctx;

	if (s)
		s->ops->fini(s->lib);
	free(s);
}

int lm__stream_ctx_new(void **ctx, const lm__codec_stream_ops *ops, const lm__codec_params *p)
{
	lm__stream *s;
	int rc;

	*ctx = NULL;
	if (!p->page_size || !p->packet_pages)
		return LM_EINVAL;
	if (!(s = calloc(1, sizeof(*s) + ops->lib_size)))
		return -ENOMEM;
	s->ops = ops;
	if ((rc = ops->init(s->lib, p))) {
		lm__stream_ctx_free(s);
		return rc;
	}
	s->st = lm__engine_stat_or(p->stats, ops->name, &s->sink);
	*ctx = s;
	return 0;
}

/* Feeds one page (last: and ends the frame); LM_ECODEC when out fills. */
static int feed(lm__stream *s, const void *page, uint32_t page_size, int last, lm__sbuf *ob)
{
	lm__cbuf ib = {page, page_size, 0};
	int done = 0, rc;

	for (;;) {
		size_t ipos = ib.pos, opos = ob->pos;
		if ((rc = s->ops->enc_step(s->lib, &ib, ob, last, &done)) || done)
			return rc;
		/* Full with work left: the frame would be at least the pages. */
		if (ob->pos == ob->size)
			return LM_ECODEC;
		/* The libraries progress while they have room; never spin. */
		if (ib.pos == ipos && ob->pos == opos)
			return -EIO;
	}
}

int lm__stream_encode(void *ctx, const void *const *pages, uint32_t n, uint32_t page_size,
		      uint8_t *out, size_t cap, uint32_t *lens, size_t *out_len)
{
	lm__stream *s = ctx;
	size_t raw = (size_t)n * page_size;
	/* One byte less than the pages: a frame that does not fit did not
	 * shrink. A library that needs the worst case gets it, or nothing. */
	lm__sbuf ob = {out, !raw || s->ops->needs_bound || cap < raw ? cap : raw - 1, 0};
	int rc = LM_ECODEC;

	for (uint32_t i = 0; i < n; i++)
		lens[i] = page_size;
	*out_len = 0;
	if (!n || (s->ops->needs_bound && cap < s->ops->bound(page_size, n)))
		goto done;
	if ((rc = s->ops->enc_begin(s->lib, page_size, raw, &ob)))
		goto done;
	for (uint32_t i = 0; i < n; i++)
		if ((rc = feed(s, pages[i], page_size, i + 1 == n, &ob)))
			goto done;
	/* Not smaller than the pages: the sender sends them raw. */
	if (ob.pos >= raw)
		rc = LM_ECODEC;
	else
		*out_len = ob.pos;
done:
	if (rc == 0 || rc == LM_ECODEC)
		lm__count_packet(s->st, raw, rc ? raw : ob.pos, rc ? n : 0);
	return rc;
}

/* "data.payload: <codec> <unit> <what>": the payload is refused. */
__attribute__((format(printf, 3, 4))) static int refuse(const lm__stream *s, lm__err *e,
							 const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	lm__err_set(e, "data.payload: %s %s %s", s->ops->name, s->ops->unit, what);
	return LM_EDECODE;
}

/* A step the library refused; page == n: after the last page. */
static int step_error(const lm__stream *s, int rc, const char *why, uint32_t page, uint32_t n,
		      lm__err *e)
{
	if (page < n)
		lm__err_set(e, "data.payload: %s in page %u: %s", s->ops->name, page, why);
	else
		lm__err_set(e, "data.payload: %s after its %u pages: %s", s->ops->name, n, why);
	return rc;
}

/* The header must describe one plain frame of exactly the packet. */
static int check_header(const lm__stream *s, const lm__frame_info *fi, size_t raw, lm__err *e)
{
	uint64_t max = raw > s->ops->buffer_floor ? raw : s->ops->buffer_floor;

	if (fi->skippable)
		return refuse(s, e, "is skippable, no data");
	if (fi->dict_id)
		return refuse(s, e, "needs dictionary %u", fi->dict_id);
	if (fi->content != LM__SIZE_UNSTATED && fi->content != raw)
		return refuse(s, e, "content size %llu, the pages need %zu",
			      (unsigned long long)fi->content, raw);
	if (fi->buffer > max)
		return refuse(s, e, "%s of %llu bytes above the packet's %zu", s->ops->buffer,
			      (unsigned long long)fi->buffer, raw);
	return 0;
}

/* Fills page i completely; *ended once the frame is complete. */
static int fill_page(lm__stream *s, lm__cbuf *in, uint8_t *page, uint32_t page_size, uint32_t i,
		     uint32_t n, int *ended, lm__err *e)
{
	const lm__codec_stream_ops *ops = s->ops;
	lm__sbuf ob = {page, page_size, 0};
	const char *why = "";
	int rc;

	while (ob.pos < ob.size) {
		size_t ipos = in->pos, opos = ob.pos;
		if ((rc = ops->dec_step(s->lib, in, &ob, ended, &why)))
			return step_error(s, rc, why, i, n, e);
		if (*ended && ob.pos < ob.size)
			return refuse(s, e, "ends in page %u of %u after %zu bytes", i, n, ob.pos);
		/* The libraries always progress while they have input: the
		 * input ran out. Also what keeps this loop from spinning. */
		if (in->pos == ipos && ob.pos == opos)
			return refuse(s, e, "truncated in page %u of %u", i, n);
	}
	return *ended && i + 1 < n ? refuse(s, e, "ends after page %u of %u", i, n) : 0;
}

/* After the last page the frame may only end: any byte more is too much.
 * The library still has to see the frame's end (a trailer, an end mark)
 * to say it is complete, so it decodes into one spare byte. */
static int finish(lm__stream *s, lm__cbuf *in, int ended, uint32_t n, lm__err *e)
{
	const lm__codec_stream_ops *ops = s->ops;
	const char *why = "";
	int rc;

	while (!ended) {
		uint8_t extra;
		lm__sbuf ob = {&extra, 1, 0};
		size_t ipos = in->pos;
		if ((rc = ops->dec_step(s->lib, in, &ob, &ended, &why)))
			return step_error(s, rc, why, n, n, e);
		if (ob.pos)
			return refuse(s, e, "decodes to more than %u pages", n);
		if (!ended && in->pos == ipos)
			return refuse(s, e, "truncated after its %u pages", n);
	}
	if (in->pos != in->size) {
		lm__err_set(e, "data.payload: %zu bytes after the %s %s", in->size - in->pos,
			    ops->name, ops->unit);
		return LM_EDECODE;
	}
	return 0;
}

int lm__stream_decode(void *ctx, const uint8_t *in, size_t in_len, const uint32_t *lens,
		      void *const *pages, uint32_t n, uint32_t page_size, lm__err *e)
{
	lm__stream *s = ctx;
	const lm__codec_stream_ops *ops = s->ops;
	size_t raw = (size_t)n * page_size;
	lm__cbuf ib = {in, in_len, 0};
	lm__frame_info fi = {0, 0, LM__SIZE_UNSTATED, 0};
	const char *why = "";
	int rc, ended = 0;

	if ((rc = lm__block_lens_check(ops->name, lens, n, page_size, in_len, e)) || !n)
		goto done;
	if ((rc = ops->dec_begin(s->lib, &ib, &fi, &why))) {
		refuse(s, e, "header: %s", why);
		goto done;
	}
	if ((rc = check_header(s, &fi, raw, e)))
		goto done;
	for (uint32_t i = 0; i < n; i++)
		if ((rc = fill_page(s, &ib, pages[i], page_size, i, n, &ended, e)))
			goto done;
	rc = finish(s, &ib, ended, n, e);
done:
	lm__count_packet(s->st, rc ? 0 : in_len, rc ? 0 : raw, 0);
	return rc;
}
