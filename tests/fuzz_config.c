/*
 * fuzz_config: the parsers of what a user or a file hands livemig before any
 * connection: addresses ("HOST:PORT", "tcp:", "unix:", "fd:N,..."), PSK
 * files and certificate pins (hex). Byte 0 picks the parser; the rest is
 * its input. Checked: no crash, and what a parser accepts is well formed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/transport.h"

#define CHECK(c) ((c) ? (void)0 : __builtin_trap())

static void addr(const uint8_t *p, size_t n)
{
	char s[1024], why[256];
	lm__addr a;

	if (n >= sizeof(s))
		n = sizeof(s) - 1;
	memcpy(s, p, n);
	s[n] = 0;
	if (lm__addr_parse(s, &a, why, sizeof(why)) != 0) {
		CHECK(why[0]);
		return;
	}
	CHECK(a.ops == &lm__tcp_endpoint || a.ops == &lm__unix_endpoint || a.ops == &lm__fd_endpoint);
	CHECK(memchr(a.text, 0, sizeof(a.text)) && memchr(a.host, 0, sizeof(a.host)));
	CHECK(a.nfds <= LM_ADDR_MAX_FDS);
	CHECK((a.ops == &lm__fd_endpoint) == (a.nfds > 0));
	for (uint32_t i = 0; i < a.nfds; i++)
		CHECK(a.fds[i] >= 0);
	CHECK(lm_address_is_local(s) >= 0);
}

static void psk(const uint8_t *p, size_t n)
{
	lm__psk_key keys[8];
	uint32_t nkeys = 99;
	size_t line = 99;
	int rc = lm__psk_parse((const char *)p, n, keys, 8, &nkeys, &line);

	CHECK(nkeys <= 8);
	if (rc) {
		CHECK(rc == LM_EINVAL);
		return;
	}
	CHECK(nkeys > 0 && line == 0);
	for (uint32_t i = 0; i < nkeys; i++) {
		size_t l = strnlen(keys[i].id, sizeof(keys[i].id));
		CHECK(l > 0 && l < sizeof(keys[i].id));
		CHECK(n == 32 || (!strchr(keys[i].id, ':') && !strchr(keys[i].id, '\n')));
	}
}

static void hex(const uint8_t *p, size_t n)
{
	uint8_t out[33];

	out[32] = 0xee;
	if (lm__parse_hex((const char *)p, n, out, 32) == 0)
		CHECK(n >= 64);
	CHECK(out[32] == 0xee);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: addr(data + 1, size - 1); break;
	case 1: psk(data + 1, size - 1); break;
	default: hex(data + 1, size - 1); break;
	}
	return 0;
}
