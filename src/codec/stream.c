/*
 * The streaming driver of the per-packet codecs: see stream.h. Everything
 * a per-packet codec must refuse (protocol.md "Codecs in DATA") is decided
 * here, once, so the three codecs cannot drift apart; the codec's steps
 * only say what their library did.
 */
#include <errno.h>
#include <stdlib.h>

#include "stream.h"
#include "../wire.h"

typedef struct lm__stream {
	const lm__stream_ops *ops;
	void *lib;
	lm_engine_stats *st;
	lm_engine_stats sink; /* counts go here when the stats table is full */
} lm__stream;

void lm__stream_ctx_free(void *ctx)
{
	lm__stream *s = ctx;

	if (!s)
		return;
	if (s->lib)
		s->ops->lib_free(s->lib);
	free(s);
}

int lm__stream_ctx_new(void **ctx, const lm__stream_ops *ops, const lm__codec_params *p)
{
	lm__stream *s;
	int rc;

	*ctx = NULL;
	if (!p->page_size || !p->packet_pages)
		return LM_EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ops = ops;
	if ((rc = ops->lib_new(&s->lib, p))) {
		free(s);
		return rc;
	}
	s->st = lm__engine_stat_or(p->stats, ops->name, &s->sink);
	*ctx = s;
	return 0;
}

/* Where the frame may go. A library that stops when out is full gets one
 * byte less than the pages: a frame that does not fit did not shrink. One
 * that needs the worst case gets it, and the size is checked afterwards. */
static int out_window(const lm__stream_ops *ops, uint32_t page_size, uint32_t n, size_t cap,
		      size_t *size)
{
	size_t raw = (size_t)n * page_size;

	if (!ops->needs_bound) {
		*size = cap >= raw ? raw - 1 : cap;
		return 0;
	}
	*size = cap;
	return cap >= ops->bound(page_size, n) ? 0 : LM_ECODEC;
}

int lm__stream_encode(void *ctx, const void *const *pages, uint32_t n, uint32_t page_size,
		      uint8_t *out, size_t cap, uint32_t *lens, size_t *out_len)
{
	lm__stream *s = ctx;
	const lm__stream_ops *ops = s->ops;
	size_t raw = (size_t)n * page_size;
	lm__sbuf ob = {out, 0, 0};
	int rc = LM_ECODEC;

	for (uint32_t i = 0; i < n; i++)
		lens[i] = page_size;
	*out_len = 0;
	if (!n || (rc = out_window(ops, page_size, n, cap, &ob.size)))
		goto done;
	if ((rc = ops->enc_begin(s->lib, page_size, raw, &ob)))
		goto done;
	for (uint32_t i = 0; i < n; i++)
		if ((rc = ops->enc_page(s->lib, pages[i], page_size, &ob)))
			goto done;
	if ((rc = ops->enc_end(s->lib, &ob)))
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

/* Fills page i completely; *ended once the frame is complete. */
static int fill_page(lm__stream *s, lm__cbuf *in, uint8_t *page, uint32_t page_size, uint32_t i,
		     uint32_t n, int *ended, lm__err *e)
{
	const lm__stream_ops *ops = s->ops;
	lm__sbuf ob = {page, page_size, 0};
	const char *why = "";
	int rc;

	while (ob.pos < ob.size) {
		size_t ipos = in->pos, opos = ob.pos;
		if ((rc = ops->dec_step(s->lib, in, &ob, ended, &why)))
			return step_error(s, rc, why, i, n, e);
		if (*ended && ob.pos < ob.size) {
			lm__err_set(e, "data.payload: %s %s ends in page %u of %u after %zu bytes",
				    ops->name, ops->unit, i, n, ob.pos);
			return LM_EDECODE;
		}
		/* The libraries always progress while they have input: the
		 * input ran out. Also what keeps this loop from spinning. */
		if (in->pos == ipos && ob.pos == opos) {
			lm__err_set(e, "data.payload: %s %s truncated in page %u of %u", ops->name,
				    ops->unit, i, n);
			return LM_EDECODE;
		}
	}
	if (*ended && i + 1 < n) {
		lm__err_set(e, "data.payload: %s %s ends after page %u of %u", ops->name, ops->unit,
			    i, n);
		return LM_EDECODE;
	}
	return 0;
}

/* After the last page the frame may only end: any byte more is too much.
 * The library still has to see the frame's end (a trailer, an end mark)
 * to say it is complete, so it decodes into one spare byte. */
static int finish(lm__stream *s, lm__cbuf *in, int ended, uint32_t n, lm__err *e)
{
	const lm__stream_ops *ops = s->ops;
	const char *why = "";
	int rc;

	while (!ended) {
		uint8_t extra;
		lm__sbuf ob = {&extra, 1, 0};
		size_t ipos = in->pos;
		if ((rc = ops->dec_step(s->lib, in, &ob, &ended, &why)))
			return step_error(s, rc, why, n, n, e);
		if (ob.pos) {
			lm__err_set(e, "data.payload: %s %s decodes to more than %u pages", ops->name,
				    ops->unit, n);
			return LM_EDECODE;
		}
		if (!ended && in->pos == ipos) {
			lm__err_set(e, "data.payload: %s %s truncated after its %u pages", ops->name,
				    ops->unit, n);
			return LM_EDECODE;
		}
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
	const lm__stream_ops *ops = s->ops;
	size_t raw = (size_t)n * page_size;
	lm__cbuf ib = {in, in_len, 0};
	int rc, ended = 0;

	if ((rc = lm__block_lens_check(ops->name, lens, n, page_size, in_len, e)) || !n)
		goto done;
	if ((rc = ops->dec_begin(s->lib, &ib, raw, e)))
		goto done;
	for (uint32_t i = 0; i < n; i++)
		if ((rc = fill_page(s, &ib, pages[i], page_size, i, n, &ended, e)))
			goto done;
	rc = finish(s, &ib, ended, n, e);
done:
	lm__count_packet(s->st, rc ? 0 : in_len, rc ? 0 : raw, 0);
	return rc;
}
