/* The ABI policy's size checks (include/livemig.h, "ABI policy"): one pair
 * of helpers serves every public struct that begins with `uint32_t size`. */
#ifndef LM_ABI_H
#define LM_ABI_H

#include <stddef.h>

#include "livemig.h"

/* The size of a struct as ABI 0 first had it: up to and including its
 * last field then. A field added later lies past it, so older callers
 * (smaller sizes, never below this) keep working. */
#define LM__SIZE0(type, last)     (offsetof(type, last) + sizeof(((type *)0)->last))
#define LM__SENDER_CONFIG_SIZE0   LM__SIZE0(lm_sender_config, delta_cache)
#define LM__RECEIVER_CONFIG_SIZE0 LM__SIZE0(lm_receiver_config, log)
#define LM__LIVE_CONFIG_SIZE0     LM__SIZE0(lm_live_config, verify_source)
#define LM__TLS_CONFIG_SIZE0      LM__SIZE0(lm_tls_config, pin_sha256)
#define LM__STATS_SIZE0           LM__SIZE0(lm_stats, auto_windows)

/* Copies the caller's struct at src (its size field first) into dst, the
 * library's own of dst_size bytes: the caller's size bytes, the rest zero
 * (defaults), and dst's size set to dst_size. LM_EABI for a size below min
 * or above dst_size, with the reason in msg (cap bytes) when msg is not
 * NULL ("size: ...": the caller names the struct before it). */
int lm__abi_in(void *dst, size_t dst_size, const void *src, size_t min, char *msg, size_t cap);

/* Copies the library's struct src (src_size bytes) into the caller's dst,
 * as many bytes as dst's size field says, and keeps that size. LM_EABI,
 * nothing written, for a size outside min..src_size. */
int lm__abi_out(void *dst, const void *src, size_t src_size, size_t min);

#endif
