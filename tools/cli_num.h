/*
 * The command line's numbers, one grammar for `livemig send/recv` and
 * `livemig demo`. Both return 0, or -1 for text that is not such a number
 * (the caller names the option).
 */
#ifndef LM_TOOLS_CLI_NUM_H
#define LM_TOOLS_CLI_NUM_H

#include <stdint.h>

/* Decimal digits only (no sign, no space), min..max. */
int cli_parse_u32(const char *s, uint32_t *out, uint32_t min, uint32_t max);
/* A SIZE or RATE: decimal digits, then optionally K, M, G or T (binary,
 * either case; "KiB" and "KB" alike), a "B", and a "/s". 0 is a number
 * here: the options where it means nothing reject it themselves. */
int cli_parse_size(const char *s, uint64_t *out);

#endif
