/*
 * test_proxy: `livemig send` -> in-test TCP proxy -> `livemig recv`, both the
 * real CLI (argv[1]) run as child processes. Cases:
 *   pass2, pass4     pass-through: both exit 0, image identical, no temp file
 *   kill             channel 1 closed mid-stream
 *   kill-busy        channel 1 closed while channel 0's writer is blocked
 *   flip-*           one byte of one channel's sender->receiver stream xored:
 *                    hello magic (channel 0, channel 1), data header fields,
 *                    a page offset, page payload (caught by the checksum)
 *   stall2, stall8   the proxy stops forwarding; recv --timeout 1
 * Every failure case checks: both exit non-zero (neither hangs), the errors
 * name the channel/field or the checksum, the sender shows the receiver's
 * reason, no final image and no temp file. TEST_PROXY_ONLY=substring runs
 * only the matching cases.
 *
 * The source image is generated here with a fixed layout (every 4th page is
 * zero, the others pseudo-random), so with 128-page packets every data
 * packet has 96 normal and 32 zero pages and the byte position of any field
 * in a channel's stream is known in advance (docs/protocol.md, src/wire.h).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* ---- image layout ------------------------------------------------------- */

#define PAGE 4096u
#define IMAGE_PAGES 12288u /* 48 MiB: 96 full packets of 128 pages */
#define PKT_PAGES 128u
#define PKT_NORMAL 96u     /* pages i % 4 != 3 */
#define PKT_ZERO 32u
#define HELLO_BYTES (12u + 64u)              /* frame header + hello */
#define DATA_FRAME_HDR (12u + 40u)           /* frame header + data header */
#define DATA_TABLES (8u * PKT_PAGES + 4u * PKT_NORMAL)
#define DATA_FRAME_BYTES (DATA_FRAME_HDR + DATA_TABLES + PKT_NORMAL * PAGE)

/* Byte position in channel 1's sender->receiver stream (hello, then data
 * frames only) of the k-th data frame of that channel. */
static uint64_t ch1_frame(uint64_t k)
{
	return HELLO_BYTES + k * DATA_FRAME_BYTES;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

/* ---- child processes ------------------------------------------------------ */

#define MAX_CHILDREN 8
static pid_t children[MAX_CHILDREN];

static void forget_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

/* Kills and reaps every child still running (failure paths, exit). */
static void kill_children(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
	}
}

/* Starts argv with stdout/stderr in files. Only async-signal-safe calls
 * between fork and exec (the proxy's threads are running). */
static pid_t spawn(char *const argv[], const char *out, const char *err)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int o, e, n;
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* the test died: so do we */
		o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		n = open("/dev/null", O_RDONLY);
		if (o < 0 || e < 0 || n < 0)
			_exit(126);
		dup2(n, 0);
		dup2(o, 1);
		dup2(e, 2);
		if (o > 2)
			close(o);
		if (e > 2)
			close(e);
		if (n > 2)
			close(n);
		execv(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (!children[i]) {
			children[i] = pid;
			break;
		}
	}
	return pid;
}

/* Waits up to timeout_ms for pid. Returns its exit code (128+sig for a
 * signal), or -1 when it had to be killed. Always reaps. */
static int wait_child(pid_t pid, int timeout_ms, double *took)
{
	double t0 = now_s(), deadline = t0 + timeout_ms / 1000.0;
	int st = 0;

	if (pid <= 0)
		return -1;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			forget_child(pid);
			return -1;
		}
		if (now_s() > deadline) {
			fprintf(stderr, "  child %d did not exit within %d ms: killed\n", (int)pid,
				timeout_ms);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			forget_child(pid);
			if (took)
				*took = now_s() - t0;
			return -1;
		}
		sleep_ms(5);
	}
	forget_child(pid);
	if (took)
		*took = now_s() - t0;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* ---- files ------------------------------------------------------------------ */

static char root[256];
static const char *livemig;

static char *slurp(const char *path)
{
	static char buf[65536];
	FILE *f = fopen(path, "rb");
	size_t n = 0;

	buf[0] = 0;
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = 0;
	return buf;
}

static int exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/* Byte-for-byte comparison, like cmp(1). 1 when equal. */
static int files_equal(const char *a, const char *b)
{
	static char ba[1 << 16], bb[1 << 16];
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int eq = fa && fb;

	while (eq) {
		size_t na = fread(ba, 1, sizeof(ba), fa), nb = fread(bb, 1, sizeof(bb), fb);
		if (na != nb || memcmp(ba, bb, na))
			eq = 0;
		if (na == 0 || na != nb)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return eq;
}

/* Number of receiver temp files (".<name>.livemig-XXXXXX") in dir. */
static int temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".livemig-")) {
			fprintf(stderr, "  left behind: %s/%s\n", dir, de->d_name);
			n++;
		}
	closedir(d);
	return n;
}

static void rm_rf(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[512];

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat sb;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
			rm_rf(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* Every 4th page zero, the others xorshift noise with a readable stamp. */
static int make_image(const char *path)
{
	static uint8_t pg[PAGE];
	uint64_t x = 0x9E3779B97F4A7C15ull;
	FILE *f = fopen(path, "wb");

	if (!f)
		return -1;
	for (uint32_t i = 0; i < IMAGE_PAGES; i++) {
		memset(pg, 0, sizeof(pg));
		if (i % 4 != 3) {
			for (uint32_t j = 0; j < PAGE; j += 8) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				memcpy(pg + j, &x, 8);
			}
			snprintf((char *)pg, 32, "page %u", i);
		}
		if (fwrite(pg, 1, PAGE, f) != PAGE) {
			fclose(f);
			return -1;
		}
	}
	return fclose(f);
}

/* ---- proxy ------------------------------------------------------------------ */

/* What the proxy does to the sender->receiver stream of one connection:
 *  KILL  after `at` bytes: goes quiet for 0.3 s, then closes both directions
 *  FLIP  xors the byte at stream position `at` with 0x5a
 *  STALL after `at` bytes: stops forwarding on every connection, keeps all
 *        sockets open
 *  HOLD  after `at` bytes: stops forwarding this direction only */
enum { P_PASS, P_KILL, P_FLIP, P_STALL, P_HOLD };
#define MAX_CONNS 80
#define MAX_RULES 2

typedef struct rule {
	int mode;
	int conn; /* accept order: the sender connects channel 0, 1, ... in turn */
	uint64_t at;
} rule;

typedef struct proxy proxy;

typedef struct pdir {
	struct pconn *c;
	int up; /* 1: sender -> receiver */
	pthread_t tid;
	int started;
} pdir;

typedef struct pconn {
	proxy *p;
	int idx; /* accept order: the sender connects channel 0, 1, ... in turn */
	int cfd, sfd;
	pdir dir[2];
} pconn;

struct proxy {
	int lfd, port, upstream;
	rule rules[MAX_RULES];
	pthread_t acceptor;
	int stop, stalled, fired; /* atomics */
	int nconns;               /* written by the acceptor only */
	pconn conns[MAX_CONNS];
};

static int aget(int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void aset(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static int write_all(int fd, const uint8_t *b, size_t n)
{
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *pump(void *arg)
{
	pdir *d = arg;
	pconn *c = d->c;
	proxy *p = c->p;
	int src = d->up ? c->cfd : c->sfd, dst = d->up ? c->sfd : c->cfd;
	const rule *ru = NULL;
	uint64_t pos = 0;
	double quiet_since = 0;
	uint8_t *buf = malloc(1 << 16);

	for (int i = 0; i < MAX_RULES && d->up; i++)
		if (p->rules[i].mode != P_PASS && p->rules[i].conn == c->idx)
			ru = &p->rules[i];
	while (buf && !aget(&p->stop)) {
		struct pollfd pf = {src, POLLIN, 0};
		size_t want = 1 << 16;
		ssize_t n;

		if (aget(&p->stalled)) {
			sleep_ms(10); /* hold everything, keep the sockets open */
			continue;
		}
		if (ru && ru->mode != P_FLIP) {
			if (pos >= ru->at) {
				aset(&p->fired, 1);
				if (ru->mode == P_STALL)
					aset(&p->stalled, 1);
				if (ru->mode != P_KILL) {
					sleep_ms(10);
					continue;
				}
				/* Kill: the link goes quiet for a moment (the
				 * sender fills its buffers and waits), then both
				 * directions of this channel close. */
				if (!quiet_since)
					quiet_since = now_s();
				if (now_s() - quiet_since < 0.3) {
					sleep_ms(10);
					continue;
				}
				shutdown(c->cfd, SHUT_RDWR);
				shutdown(c->sfd, SHUT_RDWR);
				break;
			}
			if (ru->at - pos < want)
				want = (size_t)(ru->at - pos);
		}
		if (poll(&pf, 1, 20) <= 0)
			continue;
		n = read(src, buf, want);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == 0) {
			shutdown(dst, SHUT_WR);
			break;
		}
		if (n < 0) {
			shutdown(dst, SHUT_RDWR);
			shutdown(src, SHUT_RDWR);
			break;
		}
		if (aget(&p->stalled))
			continue; /* a stall began meanwhile: these bytes never arrive */
		if (ru && ru->mode == P_FLIP && ru->at >= pos && ru->at < pos + (uint64_t)n) {
			buf[ru->at - pos] ^= 0x5a;
			aset(&p->fired, 1);
		}
		pos += (uint64_t)n;
		if (write_all(dst, buf, (size_t)n)) {
			shutdown(dst, SHUT_RDWR);
			shutdown(src, SHUT_RDWR);
			break;
		}
	}
	free(buf);
	return NULL;
}

static int connect_upstream(int port)
{
	struct sockaddr_in a = {0};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void *acceptor(void *arg)
{
	proxy *p = arg;

	while (!aget(&p->stop)) {
		struct pollfd pf = {p->lfd, POLLIN, 0};
		int cfd, sfd, one = 1;
		pconn *c;

		if (poll(&pf, 1, 20) <= 0)
			continue;
		cfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue;
		if (p->nconns >= MAX_CONNS || (sfd = connect_upstream(p->upstream)) < 0) {
			close(cfd);
			continue;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = &p->conns[p->nconns];
		c->p = p;
		c->idx = p->nconns;
		c->cfd = cfd;
		c->sfd = sfd;
		for (int k = 0; k < 2; k++) {
			c->dir[k].c = c;
			c->dir[k].up = k == 0;
			c->dir[k].started = !pthread_create(&c->dir[k].tid, NULL, pump, &c->dir[k]);
		}
		p->nconns++;
	}
	return NULL;
}

static int proxy_start(proxy *p, int upstream, const rule *rules)
{
	struct sockaddr_in a = {0};
	socklen_t al = sizeof(a);

	memset(p, 0, sizeof(*p));
	p->upstream = upstream;
	memcpy(p->rules, rules, sizeof(p->rules));
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->lfd < 0)
		return -1;
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(p->lfd, 128) < 0 ||
	    getsockname(p->lfd, (struct sockaddr *)&a, &al) < 0 ||
	    pthread_create(&p->acceptor, NULL, acceptor, p)) {
		close(p->lfd);
		p->lfd = -1;
		return -1;
	}
	p->port = ntohs(a.sin_port);
	return 0;
}

/* Closes everything: both sides see the connections end. */
static void proxy_stop(proxy *p)
{
	if (p->lfd < 0)
		return;
	aset(&p->stop, 1);
	pthread_join(p->acceptor, NULL);
	for (int i = 0; i < p->nconns; i++) {
		shutdown(p->conns[i].cfd, SHUT_RDWR);
		shutdown(p->conns[i].sfd, SHUT_RDWR);
	}
	for (int i = 0; i < p->nconns; i++) {
		for (int k = 0; k < 2; k++)
			if (p->conns[i].dir[k].started)
				pthread_join(p->conns[i].dir[k].tid, NULL);
		close(p->conns[i].cfd);
		close(p->conns[i].sfd);
	}
	close(p->lfd);
	p->lfd = -1;
}

/* ---- one migration through the proxy ---------------------------------------- */

typedef struct run {
	const char *name;
	int channels;
	rule rules[MAX_RULES];
	const char *recv_timeout; /* --timeout for recv */
	/* results */
	int recv_rc, send_rc, fired;
	double recv_time;  /* from the sender's start to recv's exit */
	char dir[300], out[400], recv_err[400], send_err[400];
} run;

/* Waits for recv's "(port N)" line on its stderr. */
static int recv_port(pid_t pid, const char *errfile)
{
	double deadline = now_s() + 10;

	while (now_s() < deadline) {
		const char *s = strstr(slurp(errfile), "(port ");
		int st;
		if (s)
			return atoi(s + 6);
		if (waitpid(pid, &st, WNOHANG) == pid) {
			forget_child(pid);
			return -1;
		}
		sleep_ms(5);
	}
	return -1;
}

/* TEST_PROXY_ONLY=name runs just the cases whose name contains it. */
static int selected(const char *name)
{
	const char *only = getenv("TEST_PROXY_ONLY");

	return !only || !*only || strstr(name, only);
}

static int contains(const char *path, const char *what)
{
	return strstr(slurp(path), what) != NULL;
}

static void do_run(run *r, const char *in)
{
	char ports[32], to[64], chs[16], rout[400], sout[400];
	char *rargv[16], *sargv[16];
	pid_t rp, sp;
	proxy px;
	int port, n = 0;
	double t0;

	r->recv_rc = r->send_rc = -1;
	snprintf(r->dir, sizeof(r->dir), "%s/%s", root, r->name);
	mkdir(r->dir, 0755);
	snprintf(r->out, sizeof(r->out), "%s/out.img", r->dir);
	snprintf(r->recv_err, sizeof(r->recv_err), "%s/%s.recv.err", root, r->name);
	snprintf(r->send_err, sizeof(r->send_err), "%s/%s.send.err", root, r->name);
	snprintf(rout, sizeof(rout), "%s/%s.recv.out", root, r->name);
	snprintf(sout, sizeof(sout), "%s/%s.send.out", root, r->name);

	rargv[n++] = (char *)livemig;
	rargv[n++] = "recv";
	rargv[n++] = "--listen";
	rargv[n++] = "127.0.0.1:0";
	rargv[n++] = "--image";
	rargv[n++] = r->out;
	rargv[n++] = "--timeout";
	rargv[n++] = (char *)(r->recv_timeout ? r->recv_timeout : "5");
	rargv[n++] = "--accept-timeout";
	rargv[n++] = "20";
	rargv[n] = NULL;
	rp = spawn(rargv, rout, r->recv_err);
	CHECK(rp > 0);
	port = recv_port(rp, r->recv_err);
	CHECK(port > 0);
	if (port <= 0 || proxy_start(&px, port, r->rules)) {
		CHECK(!"recv or proxy did not start");
		kill_children();
		return;
	}
	snprintf(ports, sizeof(ports), "127.0.0.1:%d", px.port);
	snprintf(chs, sizeof(chs), "%d", r->channels);
	snprintf(to, sizeof(to), "%s", "5");
	n = 0;
	sargv[n++] = (char *)livemig;
	sargv[n++] = "send";
	sargv[n++] = "--image";
	sargv[n++] = (char *)in;
	sargv[n++] = "--to";
	sargv[n++] = ports;
	sargv[n++] = "--channels";
	sargv[n++] = chs;
	sargv[n++] = "--timeout";
	sargv[n++] = to;
	/* The byte positions above are codec none's (not auto's, the default). */
	sargv[n++] = "--codec";
	sargv[n++] = "none";
	sargv[n] = NULL;
	t0 = now_s();
	sp = spawn(sargv, sout, r->send_err);
	CHECK(sp > 0);
	r->recv_rc = wait_child(rp, 20000, NULL);
	r->recv_time = now_s() - t0;
	/* A stalled proxy holds the sender's connections: close them now so
	 * the sender sees the end instead of waiting for its own timeout. */
	if (r->rules[0].mode == P_STALL || r->rules[0].mode == P_HOLD)
		proxy_stop(&px);
	/* Once the receiver is gone (and, for a stall, the proxy closed every
	 * connection) a sender has nothing left to wait for: its own --timeout
	 * (5 s) only bounds waits on a live peer, so 4 s more means it hangs. */
	r->send_rc = wait_child(sp, 4000, NULL);
	r->fired = aget(&px.fired);
	proxy_stop(&px);
	kill_children();
	/* Under LM_SANITIZE the children are instrumented too: a report is a
	 * failure even when the exit code looks as expected. */
	CHECK(!contains(r->recv_err, "Sanitizer") && !contains(r->recv_err, "runtime error"));
	CHECK(!contains(r->send_err, "Sanitizer") && !contains(r->send_err, "runtime error"));
}

static void show(const run *r)
{
	char rerr[1024], serr[1024];
	char *nl;

	snprintf(rerr, sizeof(rerr), "%s", slurp(r->recv_err));
	snprintf(serr, sizeof(serr), "%s", slurp(r->send_err));
	/* The last non-empty line is the error, if any. */
	for (char *b = rerr; (nl = strrchr(b, '\n')) && nl[1] == 0;)
		*nl = 0;
	for (char *b = serr; (nl = strrchr(b, '\n')) && nl[1] == 0;)
		*nl = 0;
	printf("case %s: recv rc=%d send rc=%d, recv done after %.2f s\n", r->name, r->recv_rc,
	       r->send_rc, r->recv_time);
	printf("  recv: %s\n", strrchr(rerr, '\n') ? strrchr(rerr, '\n') + 1 : rerr);
	printf("  send: %s\n", strrchr(serr, '\n') ? strrchr(serr, '\n') + 1 : serr);
	fflush(stdout);
}

/* The checks every failed migration must pass. */
static void check_failed(const run *r)
{
	CHECK(r->fired);
	CHECK(r->recv_rc != 0 && r->recv_rc != -1); /* non-zero, not killed */
	CHECK(r->send_rc != 0 && r->send_rc != -1);
	CHECK(!exists(r->out));
	CHECK_EQ(temp_files(r->dir), 0);
}

/* ---- cases -------------------------------------------------------------------- */

static void case_pass(const char *in, int channels)
{
	char name[32];
	run r = {0};

	snprintf(name, sizeof(name), "pass%d", channels);
	if (!selected(name))
		return;
	r.name = name;
	r.channels = channels;
	do_run(&r, in);
	show(&r);
	CHECK_EQ(r.recv_rc, 0);
	CHECK_EQ(r.send_rc, 0);
	CHECK(files_equal(in, r.out));
	CHECK_EQ(temp_files(r.dir), 0);
	unlink(r.out);
}

static void case_kill(const char *in)
{
	run r = {0};

	if (!selected("kill"))
		return;
	r.name = "kill";
	r.channels = 2;
	/* The second connection (channel 1), after 1 MiB of its ~18 MiB. */
	r.rules[0] = (rule){P_KILL, 1, 1u << 20};
	do_run(&r, in);
	show(&r);
	check_failed(&r);
	CHECK(contains(r.recv_err, "channel 1"));
	CHECK(contains(r.recv_err, "closed") || contains(r.recv_err, "EOF"));
	/* The sender's reason is the closed connection, not a protocol error. */
	CHECK(contains(r.send_err, "closed") || contains(r.send_err, "reset") ||
	      contains(r.send_err, "Broken pipe"));
	CHECK(!contains(r.send_err, "unexpected frame"));
}

/* Channel 1 dies while channel 0 is busy: the proxy stops reading channel 0
 * (its sender thread blocks in a write), then kills channel 1. The sender
 * must still give up and exit, not wait forever for its busy channel. */
static void case_kill_busy(const char *in)
{
	run r = {0};

	if (!selected("kill-busy"))
		return;
	r.name = "kill-busy";
	r.channels = 2;
	r.rules[0] = (rule){P_HOLD, 0, 512u << 10};
	r.rules[1] = (rule){P_KILL, 1, 1u << 20};
	do_run(&r, in);
	show(&r);
	check_failed(&r);
	CHECK(contains(r.recv_err, "channel"));
}

/* recv_want: text the receiver's error must contain, and the channel it must
 * name (NULL: a connection whose hello is unreadable is no channel yet); the
 * sender's stderr must show the receiver's reason too (the error frame the
 * receiver sends back). */
static void case_flip(const char *in, const char *name, int target, uint64_t at,
		      const char *recv_want, const char *chan_want)
{
	run r = {0};

	if (!selected(name))
		return;
	r.name = name;
	r.channels = 2;
	r.rules[0] = (rule){P_FLIP, target, at};
	do_run(&r, in);
	show(&r);
	check_failed(&r);
	CHECK(contains(r.recv_err, recv_want));
	if (chan_want)
		CHECK(contains(r.recv_err, chan_want));
	CHECK(contains(r.send_err, "receiver"));
	CHECK(contains(r.send_err, recv_want));
}

/* Channel 1's hello magic. If channel 0's hello came first, the receiver
 * refuses that connection as a stray one; the sender learns why on channel
 * 1, gives up and reports it on its other channels. If channel 1's hello
 * came first, it fails the migration outright. Either way both sides name
 * the field, and the receiver ends at once instead of waiting for channel 1
 * to time out. */
static void case_flip_hello1(const char *in)
{
	run r = {0};

	if (!selected("flip-magic-ch1"))
		return;
	r.name = "flip-magic-ch1";
	r.channels = 2;
	r.rules[0] = (rule){P_FLIP, 1, 0};
	r.recv_timeout = "3";
	do_run(&r, in);
	show(&r);
	check_failed(&r);
	CHECK(contains(r.recv_err, "frame.magic"));
	CHECK(contains(r.send_err, "frame.magic"));
	CHECK(r.recv_time < 2.0);
}

/* A stall with --timeout 1: the receiver must give up within a few seconds,
 * whatever the number of channels. */
static void case_stall(const char *in, int channels)
{
	char name[32];
	run r = {0};

	snprintf(name, sizeof(name), "stall%d", channels);
	if (!selected(name))
		return;
	r.name = name;
	r.channels = channels;
	/* Just past channel 1's first packet: with 8 channels under load, a
	 * channel may carry only a few packets of the image. */
	r.rules[0] = (rule){P_STALL, 1, 600u << 10};
	r.recv_timeout = "1";
	do_run(&r, in);
	show(&r);
	check_failed(&r);
	CHECK(r.recv_time < 5.0);
	CHECK(contains(r.recv_err, "timeout") || contains(r.recv_err, "stalled"));
}

int main(int argc, char **argv)
{
	char in[300];
	double t0 = now_s();

	if (argc != 2) {
		fprintf(stderr, "usage: %s path/to/livemig\n", argv[0]);
		return 2;
	}
	livemig = argv[1];
	signal(SIGPIPE, SIG_IGN);
	atexit(kill_children);
	snprintf(root, sizeof(root), "%s/test_proxy.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(in, sizeof(in), "%s/in.img", root);
	CHECK_EQ(make_image(in), 0);

	case_pass(in, 2);
	case_pass(in, 4);
	case_kill(in);
	case_kill_busy(in);
	/* Channel 0's first byte: the hello's frame magic. */
	case_flip(in, "flip-magic", 0, 0, "frame.magic", NULL);
	case_flip_hello1(in);
	/* Channel 1, first data frame: low byte of data.region (0 -> 90). */
	case_flip(in, "flip-region", 1, ch1_frame(0) + 12 + 11, "data.region", "channel 1");
	/* Channel 1, first data frame: data.pages (128 -> 128 ^ 0x5a). */
	case_flip(in, "flip-pages", 1, ch1_frame(0) + 12 + 19, "data.pages", "channel 1");
	/* Channel 1, offset[0] bits 16..23 (page 128 at 0x80000 -> 0x520000):
	 * a valid, aligned, in-range offset of another non-zero page, which
	 * round 0 also sends in its own packet. Whichever copy comes second,
	 * on either channel, is refused before it is written. */
	case_flip(in, "flip-offset", 1, ch1_frame(0) + DATA_FRAME_HDR + 5, "sent twice", NULL);
	/* Channel 1, first data frame, deep inside page payload (a later
	 * frame may never reach channel 1 when the channels run unevenly). */
	case_flip(in, "flip-payload", 1, ch1_frame(0) + DATA_FRAME_HDR + DATA_TABLES + 100000,
		  "checksum", "channel 0");
	case_stall(in, 2);
	case_stall(in, 8);

	kill_children();
	unlink(in);
	if (lm_test_failures == 0)
		rm_rf(root);
	else
		printf("logs kept in %s\n", root);
	printf("test_proxy: %.1f s\n", now_s() - t0);
	TEST_DONE("test_proxy");
}
