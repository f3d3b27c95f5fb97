#ifndef LM_CHECKSUM_H
#define LM_CHECKSUM_H

#include <errno.h>
#include <stdint.h>

#include "livemig.h"

#define LM_SUM_BLOCK (1u << 20)

typedef struct lm__sum_job {
	const uint8_t *base;
	uint64_t len;
	/* NULL: read every page. Else bit i set = page i holds written data;
	 * clear bits are known-zero pages that are hashed without reading. */
	const uint64_t *written;
	uint32_t page_size;
} lm__sum_job;

int lm__checksum(const lm__sum_job *j, unsigned threads, uint64_t *out);

#endif
