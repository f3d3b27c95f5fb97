/*
 * The plain stream: a connected socket (TCP or UNIX), or under the fuzzer
 * a memfd to read and /dev/null to write. Bytes move with readv/sendmsg;
 * nothing is buffered here.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"

static ssize_t plain_readv(lm__conn *c, const struct iovec *iov, int n, short *want)
{
	for (;;) {
		ssize_t r = readv(c->rfd, iov, n);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		*want = POLLIN;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static ssize_t plain_writev(lm__conn *c, const struct iovec *iov, int n, short *want)
{
	struct msghdr m;

	memset(&m, 0, sizeof(m));
	m.msg_iov = (struct iovec *)iov;
	m.msg_iovlen = (size_t)n;
	for (;;) {
		/* MSG_NOSIGNAL: a closed peer is an error code, not SIGPIPE. */
		ssize_t r = sendmsg(c->wfd, &m, MSG_NOSIGNAL);
		if (r < 0 && errno == ENOTSOCK)
			r = writev(c->wfd, iov, n);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		*want = POLLOUT;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static int plain_write_held(const lm__conn *c)
{
	(void)c; /* the kernel took whole bytes or none */
	return 0;
}

static size_t plain_pending(const lm__conn *c)
{
	(void)c;
	return 0;
}

static int plain_readable(lm__conn *c)
{
	struct pollfd p = {c->rfd, POLLIN | POLLRDHUP, 0};

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR));
}

static void plain_shutdown(lm__conn *c)
{
	if (c->wfd >= 0 && c->wfd == c->rfd)
		shutdown(c->wfd, SHUT_WR);
}

static void plain_close(lm__conn *c)
{
	(void)c; /* the fds are lm__conn_close()'s */
}

const lm__stream_ops lm__plain_ops = {
	.name = "plain",
	.readv = plain_readv,
	.writev = plain_writev,
	.write_held = plain_write_held,
	.pending = plain_pending,
	.readable = plain_readable,
	.shutdown = plain_shutdown,
	.close = plain_close,
};
