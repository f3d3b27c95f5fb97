/*
 * LEB128 varints, as the delta encoding (codec/delta.c) and the packed DATA
 * tables (wire_packed.c) write them: 7 bits a byte, the lowest first, the
 * high bit set on every byte but the last. Each reader keeps its own
 * bounds (a delta's at most 3 bytes and the page size, a table's 10 bytes
 * and the shortest form), since what a field may hold differs.
 */
#ifndef LM_VARINT_H
#define LM_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Writes v at p (at most 10 bytes); returns the bytes written. */
static inline size_t lm__put_uv(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

#endif
