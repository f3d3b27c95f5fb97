/*
 * Addresses: which endpoint an address names, and whether it stays on this
 * host (the CLI warns about plaintext that does not).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/transport.h"

static int parse_fds(const char *s, lm__addr *a, char *why, size_t cap)
{
	while (*s) {
		char *end;
		long v;
		errno = 0;
		v = strtol(s, &end, 10);
		if (errno || end == s || v < 0 || v > 1 << 30 || (*end && *end != ',')) {
			snprintf(why, cap, "fd: wants N[,N...] (descriptor numbers)");
			return LM_EINVAL;
		}
		if (a->nfds >= LM_ADDR_MAX_FDS) {
			snprintf(why, cap, "fd: more than %d descriptors", LM_ADDR_MAX_FDS);
			return LM_EINVAL;
		}
		a->fds[a->nfds++] = (int)v;
		s = *end ? end + 1 : end;
	}
	if (!a->nfds) {
		snprintf(why, cap, "fd: names no descriptor");
		return LM_EINVAL;
	}
	return 0;
}

int lm__addr_parse(const char *addr, lm__addr *a, char *why, size_t cap)
{
	const char *rest = addr;
	char port[32];

	memset(a, 0, sizeof(*a));
	if (!addr || !*addr) {
		snprintf(why, cap, "empty address");
		return LM_EINVAL;
	}
	a->ops = &lm__tcp_endpoint;
	if (!strncmp(addr, "tcp:", 4)) {
		rest = addr + 4;
	} else if (!strncmp(addr, "unix:", 5)) {
		a->ops = &lm__unix_endpoint;
		rest = addr + 5;
	} else if (!strncmp(addr, "fd:", 3)) {
		a->ops = &lm__fd_endpoint;
		return parse_fds(addr + 3, a, why, cap);
	}
	if (strlen(rest) >= sizeof(a->text)) {
		snprintf(why, cap, "address too long");
		return LM_EINVAL;
	}
	snprintf(a->text, sizeof(a->text), "%s", rest);
	if (a->ops == &lm__unix_endpoint) {
		if (!a->text[0] || strlen(a->text) >= 108) {
			snprintf(why, cap, "unix: wants a path of 1..107 bytes");
			return LM_EINVAL;
		}
		return 0;
	}
	if (lm__split_addr(a->text, a->host, sizeof(a->host), port, sizeof(port))) {
		snprintf(why, cap, "'%s' is not HOST:PORT (IPv6 as [ADDR]:PORT)", rest);
		return LM_EINVAL;
	}
	return 0;
}

int lm__addr_is_local(const lm__addr *a)
{
	struct in_addr v4;
	struct in6_addr v6;

	if (a->ops != &lm__tcp_endpoint)
		return 1;
	if (!strcmp(a->host, "localhost"))
		return 1;
	if (inet_pton(AF_INET, a->host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, a->host, &v6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&v6);
	return 0; /* a name, or "" (all addresses) */
}

int lm_address_is_local(const char *addr)
{
	lm__addr a;
	char why[128];

	if (lm__addr_parse(addr, &a, why, sizeof(why)))
		return LM_EINVAL;
	return lm__addr_is_local(&a);
}
