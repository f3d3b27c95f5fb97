/*
 * Delta pages: a page sent again in a later round travels as its XOR
 * difference from the version the receiver already holds.
 *
 * Encoding (part of docs/protocol.md): a sequence of pairs, each
 *
 *   skip  unsigned LEB128 varint: bytes left unchanged
 *   len   unsigned LEB128 varint: bytes that change, len >= 1
 *   len bytes: old XOR new for those bytes
 *
 * Starting at page byte 0, each pair moves past `skip` unchanged bytes,
 * then XORs its `len` bytes into the page. The position after each pair
 * stays <= page_size; the bytes after the last run are unchanged. The
 * encoding ends where its input ends: nothing follows the last run's bytes.
 * An empty encoding (0 bytes) means the page is unchanged.
 *
 * Varints are 7 bits per byte, least significant group first, the high bit
 * set on every byte but the last. Pages are at most 64 KiB, so a varint is
 * at most 3 bytes: a 4th byte, or a value above the page size, is an
 * error. A varint need not be minimal (0x81 0x00 is 1); the encoder always
 * writes minimal ones.
 *
 * A decoder rejects (the session fails): a truncated varint, a varint
 * longer than 3 bytes or above the page size, a zero-length run, a skip or
 * a run that goes past the page end, a run whose bytes are cut short.
 *
 * The encoder sends a gap of 1 or 2 unchanged bytes between two changed
 * stretches as XOR zeros inside one run: a new pair costs at least 2 bytes
 * of header, so the merged run is never larger (up to a varint edge case
 * of one byte), and runs stay long for the XOR loops. Gaps of 3 or more
 * start a new pair. Size of an encoding: at most page_size + 8 bytes (every
 * pair but the first skips at least 3 bytes, which pays for its header);
 * callers pass a limit below page_size anyway, since a delta is only worth
 * sending when smaller.
 */
#ifndef LM_CODEC_DELTA_H
#define LM_CODEC_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h" /* lm__err */

/* lm__delta_encode's answer when the encoding would take limit bytes or more. */
#define LM_DELTA_TOO_BIG SIZE_MAX
/* No encoding is longer than this (a limit above it never gives TOO_BIG). */
#define LM_DELTA_MAX(page_size) ((size_t)(page_size) + 8u)

/* Encodes cur against old, both page_size bytes (a power of two,
 * 4096..65536), into out, which has room for limit bytes. Returns the
 * encoded length n < limit (0: the pages are equal), or LM_DELTA_TOO_BIG
 * as soon as the encoding is known to reach limit bytes; out's contents are
 * then unspecified. Never writes out[limit] or beyond. Reads each byte of
 * old and cur at most twice (compare, then XOR): cur must be stable (a
 * copy, not a page the workload is writing). Thread-safe, no state. */
size_t lm__delta_encode(const uint8_t *old, const uint8_t *cur, uint32_t page_size, uint8_t *out,
			size_t limit);

/* XORs the len-byte encoding in into page (page_size bytes, the version
 * the encoding was made against), in place, in one pass. Returns 0, or
 * LM_EFIELD with e->msg saying what and where ("delta: run of 12 bytes at
 * 4090 past the page end (4096)"; page positions are "at N", input
 * offsets "input byte N"). On error the runs before the bad pair have been
 * applied: the page is garbage, as the session fails anyway. Never reads
 * in[len] or beyond, never touches page[page_size] or beyond, whatever
 * the input. */
int lm__delta_apply(uint8_t *page, uint32_t page_size, const uint8_t *in, size_t len,
		    lm__err *e);

#endif
