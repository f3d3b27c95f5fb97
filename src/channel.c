/*
 * Socket I/O for the channels. Every wait goes through poll() with the
 * session's timeout, so a peer that stops reading or writing fails the
 * migration instead of hanging it.
 */
#include "channel.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t lm__now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

double lm__thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void lm__conn_init(lm__conn *c, int fd, int timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->rfd = c->wfd = fd;
	c->wake_fd = -1;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : LM_DEFAULT_TIMEOUT_MS;
}

void lm__conn_close(lm__conn *c)
{
	if (c->rfd >= 0)
		close(c->rfd);
	if (c->wfd >= 0 && c->wfd != c->rfd)
		close(c->wfd);
	c->rfd = c->wfd = -1;
}

/* Waits until fd is ready for ev. Returns 1 when the peer has sent data
 * while we wanted to write (watch_in), 0 when ready, or an error. */
static int wait_fd(lm__conn *c, int fd, short ev)
{
	struct pollfd p[2];
	int n = 1, rc;

	p[0].fd = fd;
	p[0].events = ev | (c->watch_in && ev == POLLOUT ? POLLIN : 0);
	if (c->wake_fd >= 0) {
		p[1].fd = c->wake_fd;
		p[1].events = POLLIN;
		n = 2;
	}
	do
		rc = poll(p, (nfds_t)n, c->timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	if (rc == 0)
		return LM_ETIMEDOUT;
	if (n == 2 && (p[1].revents & POLLIN))
		return -ECANCELED;
	if (ev == POLLOUT && (p[0].revents & POLLIN))
		return 1;
	return 0;
}

/* Consumes n bytes from the front of an iovec array. */
static void iov_advance(struct iovec **iov, int *iovcnt, size_t n)
{
	while (*iovcnt > 0 && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*iovcnt)--;
	}
	if (*iovcnt > 0) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

int lm__readv_full(lm__conn *c, struct iovec *iov, int iovcnt)
{
	iov_advance(&iov, &iovcnt, 0); /* a 0-byte read would look like EOF */
	while (iovcnt > 0) {
		ssize_t r = readv(c->rfd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
		if (r > 0) {
			c->bytes_in += (uint64_t)r;
			iov_advance(&iov, &iovcnt, (size_t)r);
			continue;
		}
		if (r == 0)
			return LM_EEOF;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int rc = wait_fd(c, c->rfd, POLLIN);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int lm__read_full(lm__conn *c, void *buf, size_t n)
{
	struct iovec v = {buf, n};

	return n ? lm__readv_full(c, &v, 1) : 0;
}

static ssize_t send_iov(int fd, struct iovec *iov, int iovcnt)
{
	struct msghdr m;
	ssize_t r;

	memset(&m, 0, sizeof(m));
	m.msg_iov = iov;
	m.msg_iovlen = (size_t)(iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
	/* MSG_NOSIGNAL: a closed peer is an error code, not SIGPIPE. */
	r = sendmsg(fd, &m, MSG_NOSIGNAL);
	if (r < 0 && errno == ENOTSOCK)
		r = writev(fd, iov, (int)m.msg_iovlen);
	return r;
}

int lm__writev_full(lm__conn *c, struct iovec *iov, int iovcnt)
{
	iov_advance(&iov, &iovcnt, 0); /* skip empty leading entries */
	while (iovcnt > 0) {
		ssize_t r = send_iov(c->wfd, iov, iovcnt);
		if (r >= 0) {
			c->bytes_out += (uint64_t)r;
			iov_advance(&iov, &iovcnt, (size_t)r);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int rc = wait_fd(c, c->wfd, POLLOUT);
		if (rc == 1)
			return LM_EPEER;
		if (rc < 0)
			return rc;
	}
	return 0;
}

int lm__write_full(lm__conn *c, const void *buf, size_t n)
{
	struct iovec v = {(void *)buf, n};

	return lm__writev_full(c, &v, 1);
}

int lm__read_frame(lm__conn *c, lm__frame *f, uint32_t page_size, uint32_t packet_pages,
		   lm__err *e)
{
	uint8_t hdr[LM_FRAME_HDR];
	uint64_t max;
	int rc = lm__read_full(c, hdr, sizeof(hdr));

	if (rc) {
		if (rc == LM_EEOF)
			lm__err_set(e, "peer closed the connection");
		else if (rc == LM_ETIMEDOUT)
			lm__err_set(e, "no data for %d ms", c->timeout_ms);
		else
			lm__err_set(e, "read: %s", lm_strerror(rc));
		return rc;
	}
	rc = lm__dec_frame(hdr, f, e);
	if (rc)
		return rc;
	max = lm__max_body(f->kind, page_size, packet_pages);
	if (f->len > max) {
		lm__err_set(e, "%s.length %u above the maximum %llu", lm__kind_name(f->kind), f->len,
			    (unsigned long long)max);
		return LM_EFIELD;
	}
	return 0;
}

int lm__read_error_body(lm__conn *c, const lm__frame *f, lm__error_msg *m, lm__err *e)
{
	uint8_t buf[LM_ERROR_FIXED + LM_ERROR_MAX_MSG] = {0};
	int rc;

	if (f->len > sizeof(buf))
		return lm__dec_error(buf, f->len, m, e); /* reports the bad length */
	rc = lm__read_full(c, buf, f->len);
	if (rc) {
		lm__err_set(e, "reading the peer's error: %s", lm_strerror(rc));
		return rc;
	}
	return lm__dec_error(buf, f->len, m, e);
}

void lm__send_error(lm__conn *c, int code, uint16_t channel, const char *msg)
{
	uint8_t buf[LM_ERROR_FRAME_BOUND];
	size_t n = lm__enc_error(buf, code, channel, msg);

	if (c->wfd < 0)
		return;
	c->timeout_ms = 1000;
	c->watch_in = 0;
	c->wake_fd = -1;
	if (lm__write_full(c, buf, n) == 0 && c->wfd == c->rfd)
		shutdown(c->wfd, SHUT_WR);
}

void lm__drain_close(lm__conn *const *cs, int n, int ms)
{
	struct pollfd p[LM_MAX_CHANNELS + 16];
	char sink[4096];
	uint64_t end = lm__now_us() + (uint64_t)ms * 1000u;
	int open = 0;

	for (int i = 0; i < n && i < (int)(sizeof(p) / sizeof(p[0])); i++) {
		p[i].fd = cs[i]->rfd;
		p[i].events = POLLIN;
		open += p[i].fd >= 0;
	}
	/* Read what the peers still send until each closes or time is up:
	 * closing with unread data would reset the connection and could
	 * discard the error frame before the peer reads it. */
	while (open > 0 && lm__now_us() < end) {
		int left = (int)((end - lm__now_us()) / 1000u) + 1;
		if (poll(p, (nfds_t)n, left) <= 0)
			break;
		for (int i = 0; i < n; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			ssize_t r = read(p[i].fd, sink, sizeof(sink));
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				p[i].fd = -1;
				open--;
			}
		}
	}
	for (int i = 0; i < n; i++)
		lm__conn_close(cs[i]);
}

void lm__send_error_and_close(lm__conn *c, int code, uint16_t channel, const char *msg)
{
	lm__send_error(c, code, channel, msg);
	lm__drain_close(&c, 1, 1000);
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

static int set_nonblock(int fd)
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
	 * kernel), below what autotuning reaches (tcp_wmem's 4 MiB). */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (sndbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
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

int lm__tcp_connect(const char *addr, int timeout_ms, int sndbuf, int *out_fd)
{
	struct addrinfo *ai, *a;
	int rc = resolve(addr, 0, &ai), fd = -1;

	if (rc)
		return rc;
	rc = -ECONNREFUSED;
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		lm__tune_socket(fd, sndbuf, sndbuf);
		set_nonblock(fd);
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
			struct pollfd p = {fd, POLLOUT, 0};
			int err = 0;
			socklen_t len = sizeof(err);
			int pr = poll(&p, 1, timeout_ms > 0 ? timeout_ms : LM_DEFAULT_TIMEOUT_MS);
			if (pr == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && !err) {
				*out_fd = fd;
				freeaddrinfo(ai);
				return 0;
			}
			rc = pr == 0 ? LM_ETIMEDOUT : -(err ? err : errno);
		} else {
			rc = -errno;
		}
		close(fd);
	}
	freeaddrinfo(ai);
	return rc;
}

int lm__tcp_listen(const char *addr, int rcvbuf, int *out_fd, int *out_port)
{
	struct addrinfo *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1, fd, rc = resolve(addr, 1, &ai);

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
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 || (rc = set_nonblock(fd)) < 0) {
		rc = rc ? rc : -errno;
		close(fd);
		goto out;
	}
	*out_fd = fd;
	*out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						    : ((struct sockaddr_in *)&ss)->sin_port);
	rc = 0;
out:
	freeaddrinfo(ai);
	return rc;
}
