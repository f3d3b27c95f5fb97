#include "wire.h"
int lm__delta_apply(uint8_t *page, uint32_t page_size, const uint8_t *in, size_t len, struct lm__err *e);
int lm__delta_apply(uint8_t *page, uint32_t page_size, const uint8_t *in, size_t len, struct lm__err *e)
{
	(void)page; (void)page_size; (void)in; (void)len;
	lm__err_set(e, "delta: not built");
	return LM_EFEATURE;
}
