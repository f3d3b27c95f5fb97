/*
 * TCP endpoint: "HOST:PORT" (IPv4, "[v6]", or a name). Also the socket
 * helpers the other endpoints share.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/transport.h"

int lm__set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

void lm__tune_socket(int fd, int sndbuf, int rcvbuf)
{
	int one = 1;

	/* Frames go out as whole writev calls; Nagle would only delay the
	 * small control frames (sync, complete) that end a round. Buffer
	 * sizes are left to autotuning unless asked: a fixed SO_SNDBUF turns
	 * autotuning off and is capped by wmem_max (208 KiB on a stock
	 * kernel), below what autotuning reaches (tcp_wmem's 4 MiB). Fails
	 * harmlessly on a UNIX socket. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (sndbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
}

int lm__split_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon, *h = addr;
	size_t hl;

	if (!addr || !*addr)
		return LM_EINVAL;
	if (*addr == '[') {
		const char *end = strchr(addr, ']');
		if (!end || end[1] != ':')
			return LM_EINVAL;
		h = addr + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return LM_EINVAL;
		hl = (size_t)(colon - addr);
	}
	if (hl >= hcap || strlen(colon + 1) >= pcap || !colon[1])
		return LM_EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	strcpy(port, colon + 1);
	return 0;
}

int lm__connect_wait(int fd, int timeout_ms)
{
	struct pollfd p = {fd, POLLOUT, 0};
	int err = 0, pr;
	socklen_t len = sizeof(err);

	do
		pr = poll(&p, 1, timeout_ms > 0 ? timeout_ms : LM_DEFAULT_TIMEOUT_MS);
	while (pr < 0 && errno == EINTR);
	if (pr == 0)
		return LM_ETIMEDOUT;
	if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return err ? -err : 0;
}

static int resolve(const char *addr, int passive, struct addrinfo **out)
{
	char host[256], port[32];
	struct addrinfo hints;
	int rc = lm__split_addr(addr, host, sizeof(host), port, sizeof(port));

	if (rc)
		return rc;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, out);
	if (rc)
		return rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	return 0;
}

static int tcp_connect(const lm__addr *a, uint32_t idx, int timeout_ms, int sndbuf, int *out_fd)
{
	struct addrinfo *ai, *p;
	int rc = resolve(a->text, 0, &ai), fd;

	(void)idx;
	if (rc)
		return rc;
	rc = -ECONNREFUSED;
	for (p = ai; p; p = p->ai_next) {
		fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, p->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		lm__tune_socket(fd, sndbuf, sndbuf);
		if (connect(fd, p->ai_addr, p->ai_addrlen) == 0 || errno == EINPROGRESS)
			rc = lm__connect_wait(fd, timeout_ms);
		else
			rc = -errno;
		if (rc == 0) {
			*out_fd = fd;
			break;
		}
		close(fd);
	}
	freeaddrinfo(ai);
	return rc;
}

static int tcp_listen(const lm__addr *a, int rcvbuf, int *out_fd, int *out_port)
{
	struct addrinfo *ai;
	/* = {0}: clang-tidy's analyzer does not see getsockname fill it
	 * (glibc's transparent-union sockaddr argument) */
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	int one = 1, fd, rc = resolve(a->text, 1, &ai);

	if (rc)
		return rc;
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Set before listen so accepted sockets inherit a large window. */
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LM_MAX_CHANNELS * 2) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 || (rc = lm__set_nonblock(fd)) < 0) {
		rc = rc ? rc : -errno;
		close(fd);
		goto out;
	}
	*out_fd = fd;
	/* getsockname filled ss (the analyzer cannot follow the casts). */
	/* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage) */
	*out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						    : ((struct sockaddr_in *)&ss)->sin_port);
	rc = 0;
out:
	freeaddrinfo(ai);
	return rc;
}

static int tcp_accept(int listen_fd, int rcvbuf, int *out_fd)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	lm__tune_socket(fd, 0, rcvbuf);
	*out_fd = fd;
	return 0;
}

static void tcp_peer(int fd, char *name, size_t ncap, char *host, size_t hcap)
{
	/* = {0}: clang-tidy's analyzer does not see getsockname fill it
	 * (glibc's transparent-union sockaddr argument) */
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);
	char h[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &s6->sin6_addr, h, sizeof(h));
			port = ntohs(s6->sin6_port);
		} else if (ss.ss_family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &s4->sin_addr, h, sizeof(h));
			port = ntohs(s4->sin_port);
		}
	}
	snprintf(name, ncap, strchr(h, ':') ? "[%s]:%u" : "%s:%u", h, port);
	snprintf(host, hcap, "%s", h);
}

const lm__endpoint_ops lm__tcp_endpoint = {
	.name = "tcp",
	.connect = tcp_connect,
	.listen = tcp_listen,
	.accept = tcp_accept,
	.peer = tcp_peer,
};
