/*
 * A channel's frame I/O over its stream (src/transport/). Every wait goes
 * through poll() with the session's timeout and the conn's deadline, so a
 * peer that stops reading or writing fails the migration instead of
 * hanging it, and a wake fd interrupts any wait.
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
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t lm__now_us(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000u;
}

uint64_t lm__now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t lm__thread_cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

double lm__thread_cpu(void)
{
	return (double)lm__thread_cpu_ns() / 1e9;
}

void lm__conn_init(lm__conn *c, int fd, int timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->ops = &lm__plain_ops;
	c->rfd = c->wfd = fd;
	c->wake_fd = -1;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : LM_DEFAULT_TIMEOUT_MS;
}

void lm__conn_close(lm__conn *c)
{
	if (c->ops)
		c->ops->close(c); /* frees a TLS stream; closes nothing */
	c->ops = &lm__plain_ops;
	if (c->rfd >= 0)
		close(c->rfd);
	if (c->wfd >= 0 && c->wfd != c->rfd)
		close(c->wfd);
	c->rfd = c->wfd = -1;
}

/* Waits until fd is ready for ev. Returns 1 when the peer has sent data
 * while we wanted to write (watch), 0 when ready, or an error. */
static int wait_fd(lm__conn *c, int fd, short ev, int watch)
{
	struct pollfd p[2];
	int n = 1, rc, ms = c->timeout_ms;

	if (c->deadline_us) {
		uint64_t now = lm__now_us();
		if (now >= c->deadline_us)
			return LM_ETIMEDOUT;
		if ((c->deadline_us - now) / 1000 + 1 < (uint64_t)ms)
			ms = (int)((c->deadline_us - now) / 1000 + 1);
	}
	p[0].fd = fd;
	p[0].events = ev | (watch ? POLLIN : 0);
	if (c->wake_fd >= 0) {
		p[1].fd = c->wake_fd;
		p[1].events = POLLIN;
		n = 2;
	}
	do
		rc = poll(p, (nfds_t)n, ms);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	if (rc == 0)
		return LM_ETIMEDOUT;
	if (n == 2 && (p[1].revents & POLLIN))
		return -ECANCELED;
	if (watch && (p[0].revents & POLLIN))
		return 1;
	return 0;
}

int lm__conn_wait(lm__conn *c, short ev)
{
	return wait_fd(c, ev == POLLOUT ? c->wfd : c->rfd, ev, 0);
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
		short want = POLLIN;
		ssize_t r = c->ops->readv(c, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt, &want);
		if (r > 0) {
			c->bytes_in += (uint64_t)r;
			iov_advance(&iov, &iovcnt, (size_t)r);
			continue;
		}
		if (r == 0)
			return LM_EEOF;
		if (r != -EAGAIN)
			return (int)r;
		int rc = wait_fd(c, want == POLLOUT ? c->wfd : c->rfd, want, 0);
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

/* How long a write cancelled mid-frame may take to finish that frame. */
#define LM__CANCEL_FINISH_MS 250

/* Writes until iov is empty or a failure; *moved: some bytes went out. */
static int write_some(lm__conn *c, struct iovec **iov, int *iovcnt, int *moved)
{
	uint64_t t_prog = lm__now_us(); /* input taken by on_input is not progress */

	while (*iovcnt > 0) {
		short want = POLLOUT;
		ssize_t r = c->ops->writev(c, *iov, *iovcnt > IOV_MAX ? IOV_MAX : *iovcnt, &want);
		if (r >= 0) {
			c->bytes_out += (uint64_t)r;
			iov_advance(iov, iovcnt, (size_t)r);
			t_prog = lm__now_us();
			*moved |= r > 0;
			continue;
		}
		if (r != -EAGAIN)
			return (int)r;
		/* Watching for input only makes sense while waiting to write:
		 * a TLS stream that wants to read first is not the peer
		 * talking. */
		uint64_t t0 = lm__now_us();
		int rc = wait_fd(c, want == POLLOUT ? c->wfd : c->rfd, want,
				 c->watch_in && want == POLLOUT);
		c->wait_out_ns += (lm__now_us() - t0) * 1000u;
		if (rc == 1 && c->on_input && c->on_input(c, c->input_arg) == 0) {
			/* FEEDBACK does not keep a stalled write alive */
			if (lm__now_us() - t_prog >= (uint64_t)c->timeout_ms * 1000u)
				return LM_ETIMEDOUT;
			continue; /* taken (the receiver's FEEDBACK): write on */
		}
		if (rc == 1)
			return LM_EPEER;
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Cancelled partway through a frame: the rest of it goes out first, for a
 * moment, deaf to the wake fd, so the peer can still read our ERROR after
 * it (every channel of a busy sender is mid-frame when the user cancels).
 * The call still reports the cancel. */
static int finish_frame(lm__conn *c, struct iovec **iov, int *iovcnt, int *moved)
{
	int wake = c->wake_fd, watch = c->watch_in;
	uint64_t deadline = c->deadline_us, end = lm__now_us() + LM__CANCEL_FINISH_MS * 1000u;

	/* Deaf to the peer's input too: its hook sees the cancel and would
	 * end the write at the first FEEDBACK. */
	c->wake_fd = -1;
	c->watch_in = 0;
	if (!deadline || end < deadline)
		c->deadline_us = end;
	(void)write_some(c, iov, iovcnt, moved);
	c->wake_fd = wake;
	c->watch_in = watch;
	c->deadline_us = deadline;
	return -ECANCELED;
}

int lm__writev_full(lm__conn *c, struct iovec *iov, int iovcnt)
{
	int moved = 0, rc;

	if (c->frame_broken)
		return -EPIPE;
	c->write_gen++;
	iov_advance(&iov, &iovcnt, 0); /* skip empty leading entries */
	rc = write_some(c, &iov, &iovcnt, &moved);
	if (rc == -ECANCELED && (moved || c->ops->write_held(c)))
		rc = finish_frame(c, &iov, &iovcnt, &moved);
	/* Failed with part of the frame out, or held by the stream to go out
	 * first: the peer's frame stream is cut here for good. */
	if (rc && (c->ops->write_held(c) || (moved && iovcnt > 0)))
		c->frame_broken = 1;
	return rc;
}

int lm__conn_readable(lm__conn *c)
{
	return c->ops->readable(c);
}

int64_t lm__conn_unsent(const lm__conn *c)
{
	int n = 0;

	if (c->wfd < 0 || ioctl(c->wfd, SIOCOUTQ, &n) < 0 || n < 0)
		return -1;
	return n;
}

int lm__conn_limits(const lm__conn *c, lm__tcp_limit *l)
{
	return lm__tcp_limits(c->wfd, l);
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
		/* A TLS alert read ahead (a readability check peeked at it)
		 * leaves only the end to the read: the kept reason names it. */
		const char *why = rc == LM_EEOF ? lm__tls_failure(c, 0) : NULL;

		if (why && !strstr(why, "the peer closed"))
			lm__err_set(e, "read: %s: %s", lm_strerror(LM_ETLS), why);
		else if (rc == LM_EEOF)
			lm__err_set(e, "peer closed the connection");
		else if (rc == LM_ETIMEDOUT && c->deadline_us && lm__now_us() >= c->deadline_us)
			lm__err_set(e, "the frame did not arrive before the deadline");
		else if (rc == LM_ETIMEDOUT)
			lm__err_set(e, "no data for %d ms", c->timeout_ms);
		else if (rc == LM_ETLS && lm__tls_failure(c, 0))
			lm__err_set(e, "read: %s: %s", lm_strerror(rc), lm__tls_failure(c, 0));
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

void lm__err_read(lm__err *e, lm__conn *c, const char *what, int rc)
{
	/* Only a read that failed as TLS has its reason there: after a
	 * failed write, an end read later is just the end. */
	const char *why = rc == LM_ETLS ? lm__tls_failure(c, 0) : NULL;

	if (why)
		lm__err_set(e, "reading %s: %s: %s", what, lm_strerror(rc), why);
	else
		lm__err_set(e, "reading %s: %s", what, lm_strerror(rc));
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

void lm__send_error(lm__conn *c, int code, uint16_t channel, const char *msg, uint64_t until_us)
{
	uint8_t buf[LM_ERROR_FRAME_BOUND];
	size_t n = lm__enc_error(buf, code, channel, msg);

	if (c->wfd < 0 || c->frame_broken)
		return;
	c->timeout_ms = 1000;
	c->watch_in = 0;
	c->wake_fd = -1;
	c->deadline_us = until_us ? until_us : lm__now_us() + LM__SEND_ERROR_US;
	if (lm__write_full(c, buf, n) == 0)
		c->ops->shutdown(c);
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
	lm__send_error(c, code, channel, msg, 0);
	lm__drain_close(&c, 1, 1000);
}
