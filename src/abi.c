/* Size checks of the public structs (src/abi.h). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "abi.h"

static int size_ok(uint32_t size, size_t min, size_t max)
{
	return size >= min && size <= max;
}

int lm__abi_in(void *dst, size_t dst_size, const void *src, size_t min, char *msg, size_t cap)
{
	uint32_t size;

	memcpy(&size, src, sizeof(size)); /* every such struct begins with it */
	if (!size_ok(size, min, dst_size)) {
		if (msg && cap)
			snprintf(msg, cap,
				 "size: %u is not one this library knows (%zu..%zu): initialise "
				 "the struct with its LM_*_INIT and build against this library's "
				 "livemig.h",
				 size, min, dst_size);
		return LM_EABI;
	}
	memset(dst, 0, dst_size);
	memcpy(dst, src, size);
	size = (uint32_t)dst_size;
	memcpy(dst, &size, sizeof(size));
	return 0;
}

int lm__abi_out(void *dst, const void *src, size_t src_size, size_t min)
{
	uint32_t size;

	memcpy(&size, dst, sizeof(size));
	if (!size_ok(size, min, src_size))
		return LM_EABI;
	memcpy(dst, src, size);
	memcpy(dst, &size, sizeof(size));
	return 0;
}
