/*
 * The kernel's account of what held a TCP connection back (TCP_INFO's
 * chrono counters, Linux 4.10): the time the socket had data to send, and
 * of that the time it was held by the receiver's window. Both in the
 * kernel's ticks (4 ms at HZ=250): a share of one over the other is read
 * over many of them. Codec auto reads it to tell a receiver that cannot
 * keep up (its socket buffer full, its window closed) from a full link
 * (the congestion window the limit): both make the sender's writes wait.
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
int lm__tcp_limits(int fd, uint64_t *busy_us, uint64_t *rwnd_us)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -1;
	/* An older kernel fills less of the struct. */
	if (len < offsetof(struct tcp_info, tcpi_rwnd_limited) + sizeof(ti.tcpi_rwnd_limited))
		return -1;
	*busy_us = ti.tcpi_busy_time;
	*rwnd_us = ti.tcpi_rwnd_limited;
	return 0;
}
#else
/* Headers older than the counters: not known, as on an older kernel. */
int lm__tcp_limits(int fd, uint64_t *busy_us, uint64_t *rwnd_us)
{
	(void)fd;
	(void)busy_us;
	(void)rwnd_us;
	return -1;
}
#endif
