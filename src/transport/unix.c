/*
 * UNIX-domain endpoint: "unix:PATH", or "unix:@NAME" in the abstract
 * namespace. For migrations on one host (a VMM's live upgrade, as Cloud
 * Hypervisor's local=on). The listening socket file is made 0600: the
 * file mode is the first gate, TLS (if asked) the second.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport/transport.h"

static int unix_sockaddr(const lm__addr *a, struct sockaddr_un *sun, socklen_t *len)
{
	size_t n = strlen(a->text);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (!n || n >= sizeof(sun->sun_path))
		return LM_EINVAL;
	memcpy(sun->sun_path, a->text, n);
	if (a->text[0] == '@')
		sun->sun_path[0] = 0; /* abstract: no file, no stale socket */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	return 0;
}

static int unix_connect(const lm__addr *a, uint32_t idx, int timeout_ms, int sndbuf, int *out_fd)
{
	struct sockaddr_un sun;
	socklen_t len;
	int fd, rc = unix_sockaddr(a, &sun, &len);

	(void)idx;
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	lm__tune_socket(fd, sndbuf, sndbuf);
	if (connect(fd, (struct sockaddr *)&sun, len) == 0)
		rc = 0;
	else if (errno == EINPROGRESS || errno == EAGAIN)
		rc = lm__connect_wait(fd, timeout_ms, a);
	else
		rc = -errno;
	if (rc) {
		close(fd);
		return rc;
	}
	*out_fd = fd;
	return 0;
}

static int unix_listen(const lm__addr *a, int rcvbuf, int *out_fd, int *port)
{
	struct sockaddr_un sun;
	struct stat st;
	socklen_t len;
	mode_t um;
	int fd, rc = unix_sockaddr(a, &sun, &len);

	if (rc)
		return rc;
	/* A socket file left by an earlier receiver would make bind fail;
	 * only a socket is replaced, never another kind of file. */
	if (a->text[0] != '@' && lstat(a->text, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(a->text);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	um = umask(0177); /* sockets are born 0777 & ~umask: 0600, no window for others */
	rc = bind(fd, (struct sockaddr *)&sun, len) < 0 ? -errno : 0;
	umask(um);
	if (!rc && listen(fd, LM_MAX_CHANNELS * 2) < 0)
		rc = -errno;
	if (rc) {
		close(fd);
		return rc;
	}
	*out_fd = fd;
	*port = 0;
	return 0;
}

static int unix_accept(int listen_fd, int rcvbuf, int *out_fd)
{
	int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	*out_fd = fd;
	return 0;
}

/* The peer's credentials, which the kernel vouches for. */
static void unix_peer(int fd, char *name, size_t ncap, char *host, size_t hcap)
{
	struct ucred uc;
	socklen_t sl = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &sl) == 0) {
		snprintf(name, ncap, "unix:uid=%u,pid=%d", (unsigned)uc.uid, (int)uc.pid);
		snprintf(host, hcap, "uid=%u", (unsigned)uc.uid);
	} else {
		snprintf(name, ncap, "unix:?");
		snprintf(host, hcap, "unix");
	}
}

const lm__endpoint_ops lm__unix_endpoint = {
	.name = "unix",
	.connect = unix_connect,
	.listen = unix_listen,
	.accept = unix_accept,
	.peer = unix_peer,
};
