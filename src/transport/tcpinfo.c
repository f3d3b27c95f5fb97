/*
 * The kernel's account of what held a TCP connection back (TCP_INFO's
 * chrono counters, Linux 4.10): the time the sender was held by the
 * receiver's window. Codec auto reads it to tell a receiver that cannot
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

#include "transport.h"

int64_t lm__tcp_rwnd_limited_us(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -1;
	/* An older kernel fills less of the struct. */
	if (len < offsetof(struct tcp_info, tcpi_rwnd_limited) + sizeof(ti.tcpi_rwnd_limited))
		return -1;
	return ti.tcpi_rwnd_limited > INT64_MAX ? INT64_MAX : (int64_t)ti.tcpi_rwnd_limited;
}
