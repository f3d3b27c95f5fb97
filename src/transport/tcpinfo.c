/*
 * The kernel's account of what held a TCP connection back (TCP_INFO's
 * chrono counters, Linux 4.10): the time the socket had data to send, and
 * of that the time it was held by the receiver's window. Both in the
 * kernel's ticks (4 ms at HZ=250): a share of one over the other is read
 * over many of them. And the smallest round trip seen, the path's without
 * the queues' (the smoothed one grew to 2-9 ms at 1gbit with the shaper's
 * and the socket's queues): a window can hold a path whose delay times
 * rate exceeds it, with a receiver that keeps up. Codec auto reads it to
 * tell a receiver that cannot keep up (its socket buffer full, its window
 * closed) from a full link (the congestion window the limit): both make
 * the sender's writes wait.
 *
 * A file of its own: <linux/tcp.h> has the fields, glibc's <netinet/tcp.h>
 * does not, and the two cannot be included together.
 */
#include <stddef.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/tcp.h>

#include "lm_config.h"
#include "transport.h"

#ifdef LM_HAVE_TCPI_RWND_LIMITED
int lm__tcp_limits(int fd, lm__tcp_limit *l)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -1;
	/* An older kernel fills less of the struct. */
	if (len < offsetof(struct tcp_info, tcpi_rwnd_limited) + sizeof(ti.tcpi_rwnd_limited))
		return -1;
	l->busy_us = ti.tcpi_busy_time;
	l->rwnd_us = ti.tcpi_rwnd_limited;
	l->rtt_us = ti.tcpi_min_rtt; /* the path's, without the queues' */
	return 0;
}
#else
/* Headers older than the counters: not known, as on an older kernel. */
int lm__tcp_limits(int fd, lm__tcp_limit *l)
{
	(void)fd;
	(void)l;
	return -1;
}
#endif
