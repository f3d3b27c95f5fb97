/* The codec registry: ids on the wire map to ops tables here only. */
#include <string.h>

#include "codec.h"

static const lm__codec_ops *const codecs[] = {
	&lm__codec_none,
};

const lm__codec_ops *lm__codec_get(uint16_t id)
{
	for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
		if (codecs[i]->id == id)
			return codecs[i];
	return NULL;
}

uint64_t lm__codec_payload_bound(uint32_t page_size, uint32_t pages)
{
	uint64_t max = 0;

	for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++) {
		uint64_t b = codecs[i]->payload_bound(page_size, pages);
		if (b > max)
			max = b;
	}
	return max;
}

int lm_codec_from_name(const char *name, lm_codec_id *out)
{
	for (size_t i = 0; name && i < sizeof(codecs) / sizeof(codecs[0]); i++) {
		if (strcmp(codecs[i]->name, name) == 0) {
			*out = (lm_codec_id)codecs[i]->id;
			return 0;
		}
	}
	return LM_ECODEC;
}

const char *lm_codec_name(lm_codec_id id)
{
	const lm__codec_ops *ops = lm__codec_get((uint16_t)id);
	return ops ? ops->name : NULL;
}
