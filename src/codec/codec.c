/* The codec registry: ids on the wire map to ops tables here only. */
#include "codec.h"

#include "../wire.h"

#include <stdio.h>
#include <string.h>

static const lm__codec_ops *const codecs[] = {
	&lm__codec_none,
#ifdef LM_HAVE_CODEC_DEFLATE
	&lm__codec_deflate,
#endif
#ifdef LM_HAVE_CODEC_ZSTD
	&lm__codec_zstd,
#endif
#ifdef LM_HAVE_CODEC_LZ4
	&lm__codec_lz4,
#endif
#ifdef LM_HAVE_CODEC_ZLIB
	&lm__codec_zlib,
#endif
};

#define NCODECS (sizeof(codecs) / sizeof(codecs[0]))

const lm__codec_ops *lm__codec_get(uint16_t id)
{
	for (size_t i = 0; i < NCODECS; i++)
		if (codecs[i]->id == id)
			return codecs[i];
	return NULL;
}

uint64_t lm__codec_payload_bound(uint32_t page_size, uint32_t pages)
{
	uint64_t max = 0;

	for (size_t i = 0; i < NCODECS; i++) {
		uint64_t b = codecs[i]->payload_bound(page_size, pages);
		if (b > max)
			max = b;
	}
	return max;
}

int lm_codec_from_name(const char *name, lm_codec_id *out)
{
	if (name && strcmp(name, "auto") == 0) {
		*out = LM_CODEC_AUTO;
		return 0;
	}
	for (size_t i = 0; name && i < NCODECS; i++) {
		if (strcmp(codecs[i]->name, name) == 0) {
			*out = (lm_codec_id)codecs[i]->id;
			return 0;
		}
	}
	return LM_ECODEC;
}

const char *lm_codec_name(lm_codec_id id)
{
	if (id == LM_CODEC_AUTO)
		return "auto";
	const lm__codec_ops *ops = lm__codec_get((uint16_t)id);
	return ops ? ops->name : NULL;
}

int lm_accel_from_name(const char *name, lm_accel *out)
{
	static const char *const names[] = {"auto", "qpl", "off"};

	for (int i = 0; name && i < 3; i++) {
		if (strcmp(names[i], name) == 0) {
			*out = (lm_accel)i;
			return 0;
		}
	}
	return LM_EINVAL;
}

int lm_engine_from_name(const char *name, lm_engine_id *out)
{
	static const char *const names[] = {"isal", "zlib", "qpl-sw"};

	for (int i = 0; name && i < 3; i++) {
		if (strcmp(names[i], name) == 0) {
			*out = (lm_engine_id)(i + 1);
			return 0;
		}
	}
	return LM_EINVAL;
}

/* Per-packet codecs: every length is page_size, and the payload is empty
 * exactly when there are no pages. */
int lm__block_lens_check(const char *codec, const uint32_t *lens, uint32_t n, uint32_t page_size,
			 size_t in_len, struct lm__err *e)
{
	for (uint32_t i = 0; i < n; i++) {
		if (lens[i] != page_size) {
			lm__err_set(e, "data.length[%u] %u, %s needs %u", i, lens[i], codec, page_size);
			return LM_EDECODE;
		}
	}
	if (!n && in_len) {
		lm__err_set(e, "data.payload: %s payload of %zu bytes for no pages", codec, in_len);
		return LM_EDECODE;
	}
	if (n && !in_len) {
		lm__err_set(e, "data.payload: %s payload empty for %u pages", codec, n);
		return LM_EDECODE;
	}
	return 0;
}

void lm__codec_unavailable(struct lm__err *e, uint16_t codec, lm_accel accel, int rc)
{
	const char *name = lm_codec_name((lm_codec_id)codec);

	if (rc != LM_ECODEC)
		lm__err_set(e, "codec %s: %s", name ? name : "?", lm_strerror(rc));
	else if (codec == LM_CODEC_DEFLATE && accel == LM_ACCEL_QPL)
		lm__err_set(e, "codec deflate: accelerator qpl required, but no usable IAA device "
			       "(or livemig was built without QPL)");
	else
		lm__err_set(e, "codec %s with the chosen engine is not available in this build",
			    name ? name : "?");
}

lm_engine_stats *lm__engine_stat_or(lm_engine_stats *stats, const char *name,
				    lm_engine_stats *sink)
{
	lm_engine_stats *st = lm__engine_stat(stats, name);

	return st ? st : sink;
}

void lm__count_packet(lm_engine_stats *st, uint64_t in, uint64_t out, uint32_t raw_pages)
{
	st->jobs++;
	st->raw += raw_pages;
	st->bytes_in += in;
	st->bytes_out += out;
}

lm_engine_stats *lm__engine_stat(lm_engine_stats *stats, const char *name)
{
	for (int i = 0; stats && i < LM_MAX_ENGINES; i++) {
		if (!stats[i].name[0])
			snprintf(stats[i].name, sizeof(stats[i].name), "%s", name);
		if (strcmp(stats[i].name, name) == 0)
			return &stats[i];
	}
	return NULL;
}
