/* Configuration checks with messages that name the field (config.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "codec/codec.h"

static int bad(lm__err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(lm__err *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return LM_EINVAL;
}

/* The deflate settings both sides take. */
static int check_deflate(lm_accel accel, lm_engine_id engine, lm__err *e)
{
	if ((unsigned)accel > LM_ACCEL_OFF)
		return bad(e, "accel: %d is not an lm_accel (0 auto, 1 qpl, 2 off)", (int)accel);
	if ((unsigned)engine > LM_ENGINE_QPL_SW)
		return bad(e, "engine: %d is not an lm_engine_id (0 default, 1 isal, 2 zlib, 3 qpl-sw)",
			   (int)engine);
	return 0;
}

int lm__sender_config_check(const lm_sender_config *c, lm__err *e)
{
	int rc;

	if (c->channels > LM_MAX_CHANNELS)
		return bad(e, "channels: %u is out of range 1..%d", c->channels, LM_MAX_CHANNELS);
	if (c->page_size < LM_MIN_PAGE_SIZE || c->page_size > LM_MAX_PAGE_SIZE ||
	    (c->page_size & (c->page_size - 1)))
		return bad(e, "page_size: %u is not a power of two in %u..%u", c->page_size,
			   LM_MIN_PAGE_SIZE, LM_MAX_PAGE_SIZE);
	if (c->packet_pages > LM_MAX_PACKET_PAGES)
		return bad(e, "packet_pages: %u is out of range 1..%d", c->packet_pages,
			   LM_MAX_PACKET_PAGES);
	if (c->codec != LM_CODEC_AUTO && !lm__codec_get((uint16_t)c->codec))
		return bad(e, "codec: %d is not a codec of this build (%s)", (int)c->codec,
			   "none 0, deflate 1, zstd 2, lz4 3, zlib 4, auto 255");
	if ((rc = check_deflate(c->accel, c->engine, e)))
		return rc;
	if (c->sndbuf < 0)
		return bad(e, "sndbuf: %d is negative (0 = the kernel's autotuning)", c->sndbuf);
	return 0;
}

int lm__receiver_config_check(const lm_receiver_config *c, lm__err *e)
{
	int rc;

	if ((rc = check_deflate(c->accel, c->engine, e)))
		return rc;
	if (c->max_channels > LM_MAX_CHANNELS)
		return bad(e, "max_channels: %u is out of range 1..%d", c->max_channels,
			   LM_MAX_CHANNELS);
	if (c->rcvbuf < 0)
		return bad(e, "rcvbuf: %d is negative (0 = the kernel's autotuning)", c->rcvbuf);
	/* TLS files and keys are checked as listen loads them, with theirs. */
	if (c->accept_timeout_ms < 0)
		return bad(e, "accept_timeout_ms: %d is negative (0 = wait forever)",
			   c->accept_timeout_ms);
	if (c->session_timeout_ms < 0)
		return bad(e, "session_timeout_ms: %d is negative (0 = none)", c->session_timeout_ms);
	if (c->huge_pages && !c->alloc_regions)
		return bad(e, "huge_pages: applies to the memory alloc_regions maps, and alloc_regions is 0");
	return 0;
}
