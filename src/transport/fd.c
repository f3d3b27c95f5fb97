/*
 * Pre-connected descriptors: "fd:N[,N...]", one connected stream socket per
 * channel, as libvirt hands QEMU a migration (fd:). On the receiver a single
 * listening socket (systemd socket activation) is accepted on instead. The
 * descriptors belong to the sender or receiver from then on.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

#include "transport/transport.h"

static int fd_family(int fd)
{
	/* = {0}: clang-tidy's analyzer does not see getsockname fill it
	 * (glibc's transparent-union sockaddr argument) */
	struct sockaddr_storage ss = {0};
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -1;
	return ss.ss_family;
}

/* A connected stream socket; a pipe or file would not carry both ways. */
static int check_stream(int fd)
{
	int type = 0;
	socklen_t sl = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0)
		return errno == ENOTSOCK ? LM_EINVAL : -errno;
	return type == SOCK_STREAM ? 0 : LM_EINVAL;
}

static int fd_connect(const lm__addr *a, uint32_t idx, int timeout_ms, int sndbuf, int *out_fd)
{
	int fd, rc;

	(void)timeout_ms;
	if (idx >= a->nfds)
		return LM_EINVAL;
	fd = a->fds[idx];
	if ((rc = check_stream(fd)) || (rc = lm__set_nonblock(fd)))
		return rc;
	if (fd_family(fd) != AF_UNIX)
		lm__tune_socket(fd, sndbuf, sndbuf);
	*out_fd = fd;
	return 0;
}

/* Only a listening socket can be listened on; connected ones are the
 * receiver's (lm_receiver_accept_fds). */
static int fd_listen(const lm__addr *a, int rcvbuf, int *out_fd, int *port)
{
	int acc = 0, rc;
	socklen_t sl = sizeof(acc);

	(void)rcvbuf;
	if (a->nfds != 1)
		return LM_EINVAL;
	if ((rc = check_stream(a->fds[0])))
		return rc;
	if (getsockopt(a->fds[0], SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) < 0 || !acc)
		return LM_EINVAL;
	if ((rc = lm__set_nonblock(a->fds[0])))
		return rc;
	*out_fd = a->fds[0];
	*port = 0;
	return 0;
}

static int fd_accept(int listen_fd, int rcvbuf, int *out_fd)
{
	const lm__endpoint_ops *e = fd_family(listen_fd) == AF_UNIX ? &lm__unix_endpoint
								     : &lm__tcp_endpoint;

	return e->accept(listen_fd, rcvbuf, out_fd);
}

static void fd_peer(int fd, char *name, size_t ncap, char *host, size_t hcap)
{
	const lm__endpoint_ops *e = fd_family(fd) == AF_UNIX ? &lm__unix_endpoint
							      : &lm__tcp_endpoint;

	e->peer(fd, name, ncap, host, hcap);
}

const lm__endpoint_ops lm__fd_endpoint = {
	.name = "fd",
	.connect = fd_connect,
	.listen = fd_listen,
	.accept = fd_accept,
	.peer = fd_peer,
};
