/*
 * livemig demo: live migration of a writing workload, verified.
 *
 * The destination is a forked child (forked first, before any thread, so it
 * inherits no lock held by a thread that does not exist in it). It runs an
 * lm_receiver that maps the region itself, and reports its port, then its
 * outcome, the checksum of what it received and its statistics over a pipe.
 * The parent builds a workload (tools/workload.c) that keeps writing its
 * memory, migrates that memory live with lm_sender_migrate(), and compares
 * the source's checksum at the pause with the destination's.
 *
 * With --netns the source runs in network namespace lmA and the destination
 * in lmB (10.77.0.2), as made by ../shared/peer/netns.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"
#include "livemig.h"
#include "signals.h"
#include "workload.h"

int livemig_demo(int argc, char **argv); /* called by tools/livemig.c */

#define REGION "ram"
#define NS_DIR "/var/run/netns"
#define NETNS_CMD "../shared/peer/netns.sh up 1gbit"
#define ACCEPT_TIMEOUT_MS 120000 /* the parent fills its memory meanwhile */
#define PORT_WAIT_MS 30000
#define RESULT_WAIT_MS 30000     /* destination's verdict after the sender's */
#define FAIL_WAIT_MS 5000        /* its reason, after a failed migration */
#define MAX_TEXT 65536

/* What the destination reports over the pipe: a header, then text_len
 * bytes of statistics and err_len bytes of error detail. */
enum { MSG_PORT = 1, MSG_RESULT = 2 };
typedef struct msg {
	int32_t kind, rc;
	uint64_t value; /* the port, or the received region's checksum */
	/* MSG_RESULT: the device state's bytes and the pages written that
	 * the writers' state in it says (dest_state). */
	uint64_t state_bytes, state_pages;
	uint32_t text_len, err_len;
} msg;

/* Pages the sender sent, of every kind. */
uint64_t demo_pages_sent(const lm_stats *st)
{
	return st->normal_pages + st->duplicate_pages + st->ref_pages + st->delta_pages;
}

/* ---- pipe messages ------------------------------------------------------- */

static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int64_t demo_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads exactly len bytes before deadline (CLOCK_MONOTONIC ms): 0,
 * -ETIMEDOUT, or LM_EEOF when the child closed the pipe (it died). */
static int read_full(int fd, void *buf, size_t len, int64_t deadline)
{
	char *p = buf;

	while (len) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - demo_now_ms();
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pf, 1, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR)
			return -errno;
		if (!pf.revents)
			continue;
		n = read(fd, p, len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return n < 0 ? -errno : LM_EEOF;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The destination's view of the device state (the writers' state), filled
 * by dest_load_state in the child, sent with its result. */
static struct {
	uint8_t buf[4096];
	uint64_t bytes, pages;
	const demo_opts *o;
} dest_state;

static int send_msg(int fd, int kind, int rc, uint64_t value, const char *text, const char *err)
{
	msg m = {.kind = kind, .rc = rc, .value = value, .state_bytes = dest_state.bytes,
		 .state_pages = dest_state.pages};
	int r;

	m.text_len = text ? (uint32_t)strnlen(text, MAX_TEXT) : 0;
	m.err_len = err ? (uint32_t)strnlen(err, MAX_TEXT) : 0;
	if ((r = write_full(fd, &m, sizeof(m))) || (r = write_full(fd, text, m.text_len)))
		return r;
	return write_full(fd, err, m.err_len);
}

/* Reads one message of the expected kind; its strings are malloc'd. */
static int recv_msg(int fd, int kind, msg *m, char **text, char **err, int64_t deadline)
{
	int rc;

	*text = *err = NULL;
	if ((rc = read_full(fd, m, sizeof(*m), deadline)))
		return rc;
	/* read_full returned 0: it filled m (the analyzer cannot tell that
	 * errno is never 0 after a failed poll or read). */
	/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
	if (m->kind != kind || m->text_len > MAX_TEXT || m->err_len > MAX_TEXT)
		return LM_EFIELD;
	*text = calloc(1, m->text_len + 1u);
	*err = calloc(1, m->err_len + 1u);
	if (!*text || !*err)
		rc = -ENOMEM;
	else if (!(rc = read_full(fd, *text, m->text_len, deadline)))
		rc = read_full(fd, *err, m->err_len, deadline);
	if (rc) {
		free(*text);
		free(*err);
		*text = *err = NULL;
	}
	return rc;
}

/* ---- network namespaces -------------------------------------------------- */

static int join_netns(const char *name)
{
	char path[64];
	int fd, rc = 0;

	snprintf(path, sizeof(path), NS_DIR "/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Exit status 2 with the command that creates them when one is missing. */
static int check_netns(void)
{
	const char *names[] = {NS_SRC, NS_DST};

	for (int i = 0; i < 2; i++) {
		char path[64];

		snprintf(path, sizeof(path), NS_DIR "/%s", names[i]);
		if (access(path, F_OK) == 0)
			continue;
		fprintf(stderr,
			"%s: --netns needs the network namespaces " NS_SRC " and " NS_DST
			", and %s is missing. Create them (as root, from the livemig source directory) with:\n"
			"  " NETNS_CMD "\n"
			"(the rate may be any tc rate such as 10gbit, or none; `netns.sh down` removes them)\n",
			PROG, path);
		return -1;
	}
	return 0;
}

/* ---- destination (the child) --------------------------------------------- */

/* The receiver's statistics, in the format the parent prints. */
static char *stats_text(const lm_stats *st, int json)
{
	int fmt = json ? LM_STATS_JSON : LM_STATS_HUMAN;
	char sizer[1]; /* measures; (NULL, 0) would do pointer arithmetic on NULL */
	int n = lm_stats_format(st, fmt, sizer, sizeof(sizer));
	char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;

	if (buf)
		lm_stats_format(st, fmt, buf, (size_t)n + 1);
	return buf;
}

static int dest_receive(lm_receiver *r, uint64_t *sum)
{
	void *base;
	uint64_t len;
	int rc = lm_receiver_run(r);

	if (!rc)
		rc = lm_receiver_region(r, REGION, &base, &len);
	if (!rc)
		rc = lm_region_checksum(base, len, sum);
	return rc;
}

/* The device state is the writers' state, then --device-state-pad bytes
 * of padding (the receiver's cap is the buffer and the padding): the
 * head is kept (the writers' state is at most the buffer) and checked at
 * the end call, before the destination acknowledges, so a state that does
 * not continue this workload fails the migration. The padding is the
 * library's to verify (its checksum), not kept. */
static int dest_load_state(void *user, uint64_t off, const void *buf, size_t len)
{
	char why[256];
	uint64_t pages;

	(void)user;
	if (buf) { /* the writers' state comes first: keep the head */
		if (off < sizeof(dest_state.buf))
			memcpy(dest_state.buf + off, buf,
			       len < sizeof(dest_state.buf) - off ? len : sizeof(dest_state.buf) - off);
		return 0;
	}
	if (off < dest_state.o->state_pad || off - dest_state.o->state_pad > sizeof(dest_state.buf)) {
		fprintf(stderr, "%s: destination: device state: %llu bytes, not the writers' state and %llu of padding\n",
			PROG, (unsigned long long)off, (unsigned long long)dest_state.o->state_pad);
		return -EINVAL;
	}
	off -= dest_state.o->state_pad;
	if (wl_check_state(dest_state.buf, (size_t)off, dest_state.o->seed, dest_state.o->threads,
			   &pages, why, sizeof(why))) {
		fprintf(stderr, "%s: destination: device state: %s\n", PROG, why);
		return -EINVAL;
	}
	dest_state.bytes = off;
	dest_state.pages = pages;
	return 0;
}

static int dest_main(const demo_opts *o, int fd)
{
	lm_tls_config tls = {.size = sizeof(lm_tls_config), .psk = o->psk, .psk_len = sizeof(o->psk)};
	lm_receiver_config cfg = {.size = sizeof(lm_receiver_config),
				  .accept_timeout_ms = ACCEPT_TIMEOUT_MS,
				  .alloc_regions = 1,
				  .tls = o->plaintext ? NULL : &tls,
				  .device_state = dest_load_state,
				  .device_state_max = sizeof(dest_state.buf) + o->state_pad};
	lm_receiver *r = NULL;
	uint64_t sum = 0;
	lm_stats st = LM_STATS_INIT;
	char *text;
	int rc;

	dest_state.o = o;
	if (o->netns && (rc = join_netns(NS_DST))) {
		send_msg(fd, MSG_PORT, rc, 0, NULL, "cannot join netns " NS_DST);
		goto out;
	}
	rc = lm_receiver_new(&r, &cfg);
	/* Inherited handlers: a Ctrl-C reaches this child too (one process
	 * group) and cancels its receiver, which tells the sender. */
	sig_watch_receiver(r);
	if (rc || (rc = lm_receiver_listen(r, o->netns ? NS_DST_ADDR ":0" : "127.0.0.1:0"))) {
		send_msg(fd, MSG_PORT, rc, 0, NULL, r ? lm_receiver_errmsg(r) : "");
		goto out;
	}
	if ((rc = send_msg(fd, MSG_PORT, 0, (uint64_t)lm_receiver_port(r), NULL, NULL)))
		goto out; /* the parent is gone */
	rc = dest_receive(r, &sum);
	lm_receiver_stats(r, &st);
	text = stats_text(&st, o->json);
	send_msg(fd, MSG_RESULT, rc, sum, text, lm_receiver_errmsg(r));
	free(text);
out:
	lm_receiver_free(r);
	return rc ? 1 : 0;
}

/* Forks the destination; in the child this never returns. */
static int fork_dest(demo *d)
{
	pid_t parent = getpid();
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL); /* the child must not write the parent's buffers again */
	d->child = fork();
	if (d->child < 0) {
		int rc = -errno;
		close(p[0]);
		close(p[1]);
		return rc;
	}
	if (d->child == 0) {
		close(p[0]);
		/* Die with the parent, even if it is killed; it may already be. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(1);
		_exit(dest_main(&d->o, p[1]));
	}
	close(p[1]);
	d->fd = p[0];
	return 0;
}

/* Waits up to ms for the child to exit, then kills it; never leaves a
 * zombie. */
static void reap_child(demo *d, int ms)
{
	int64_t end = demo_now_ms() + ms;
	int status;

	if (d->child <= 0)
		return;
	while (waitpid(d->child, &status, WNOHANG) == 0) {
		if (demo_now_ms() >= end) {
			kill(d->child, SIGKILL);
			while (waitpid(d->child, &status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		usleep(10000);
	}
	d->child = 0;
}

static void read_result(demo *d, dest_result *res, int ms)
{
	msg m;

	if (res->have)
		return;
	res->rc = recv_msg(d->fd, MSG_RESULT, &m, &res->text, &res->err, demo_now_ms() + ms);
	if (res->rc)
		return; /* no report: res->rc says why */
	res->have = 1;
	res->rc = m.rc;
	res->sum = m.value;
	res->state_bytes = m.state_bytes;
	res->state_pages = m.state_pages;
}

/* ---- source (the parent) ------------------------------------------------- */

static int cb_pause(void *u)
{
	return wl_pause(((demo *)u)->w);
}

static void cb_resume(void *u)
{
	wl_resume(((demo *)u)->w);
}

static void cb_throttle(void *u, uint32_t pct)
{
	wl_throttle(((demo *)u)->w, pct);
}

/* The KVM_GET_DIRTY_LOG of this demo: the workload's own log, at the
 * sender's page size (the default, LM_MIN_PAGE_SIZE: the demo sets none). */
static int cb_dirty_log(void *u, uint32_t region, uint64_t *bitmap, uint64_t pages)
{
	if (region != 0)
		return LM_EREGION;
	return wl_dirty_log(((demo *)u)->w, bitmap, pages, LM_MIN_PAGE_SIZE);
}

/* Which source the migration will use, and whether the workload must keep
 * its log for it. -1 when uffd is required but unavailable. */
static int choose_dirty(demo *d)
{
	d->probe_rc = lm_dirty_probe(d->probe_why, sizeof(d->probe_why));
	switch (d->o.dirty) {
	case LM_DIRTY_UFFD_WP:
		if (d->probe_rc) {
			fprintf(stderr, "%s: --dirty uffd: userfaultfd write-protect is unavailable: %s\n",
				PROG, d->probe_why);
			return -1;
		}
		d->dirty_name = "uffd-wp (userfaultfd write-protect, PAGEMAP_SCAN)";
		d->dirty_id = "uffd-wp";
		return 0;
	case LM_DIRTY_CALLBACK:
		d->use_log = 1;
		d->dirty_name = "callback (the workload's dirty log, as KVM_GET_DIRTY_LOG)";
		d->dirty_id = "callback";
		return 0;
	default:
		d->use_log = d->probe_rc != 0;
		d->dirty_name = d->use_log ? "callback (the workload's dirty log, chosen by --dirty auto)"
					   : "uffd-wp (userfaultfd write-protect, chosen by --dirty auto)";
		d->dirty_id = d->use_log ? "callback" : "uffd-wp";
		return 0;
	}
}

static int make_workload(demo *d)
{
	wl_config c = {.size = d->o.size, .working_set = d->o.working_set, .dirty_rate = d->o.dirty_rate,
		       .threads = d->o.threads, .seed = d->o.seed, .dirty_log = d->use_log,
		       .write_bytes = d->o.write_bytes, .image = d->o.image};
	int rc = wl_new(&d->w, &c);

	if (rc && d->o.image) {
		fprintf(stderr, "%s: cannot load --from-image %s: %s\n", PROG, d->o.image, strerror(-rc));
		return -1;
	}
	if (rc) {
		fprintf(stderr, "%s: cannot create the workload (%s of memory): %s\n", PROG,
			d->o.size >= (1ull << 30) ? "several GiB" : "some", strerror(-rc));
		return -1;
	}
	demo_fill_line(d);
	return 0;
}

/* At the switchover, after the pause: the writers' state is the device
 * state (the workload's "vCPUs"). */
static int cb_device_state(void *u, lm_devstate_writer *w)
{
	demo *d = u;
	uint8_t buf[4096];
	int n = wl_save_state(d->w, buf, sizeof(buf)), rc;

	if (n < 0 || (rc = lm_devstate_write(w, buf, (size_t)n)))
		return n < 0 ? n : rc;
	for (uint64_t off = 0; off < d->o.state_pad; off += sizeof(buf)) {
		uint64_t k = d->o.state_pad - off < sizeof(buf) ? d->o.state_pad - off : sizeof(buf);
		memset(buf, (int)(off / sizeof(buf) * 37 + 1), sizeof(buf));
		if ((rc = lm_devstate_write(w, buf, (size_t)k)))
			return rc;
	}
	return 0;
}

/* The device state's size as a VMM would know it: the padding and at most
 * a page of writers' state. */
static uint64_t cb_state_size(void *u)
{
	const demo *d = u;

	return d->o.state_pad + WL_PAGE_SIZE;
}

static void live_config(demo *d, lm_live_config *lc)
{
	*lc = (lm_live_config){
		.size = sizeof(lm_live_config),
		.dirty = d->o.dirty,
		.dirty_log = d->use_log ? cb_dirty_log : NULL,
		.pause = cb_pause,
		.resume = cb_resume,
		.throttle = cb_throttle,
		.progress = demo_on_progress,
		.user = d,
		.downtime_limit_ms = d->o.downtime_ms,
		.max_rounds = d->o.max_rounds,
		.max_time_ms = d->o.max_time_ms,
		.max_bandwidth = d->o.max_bandwidth,
		.switchover_bandwidth = d->o.switchover_bandwidth,
		.on_limit = d->o.on_limit,
		.no_auto_converge = d->o.no_auto_converge,
		.throttle_mode = d->o.throttle_mode,
		.verify_source = d->o.verify_source,
	};
}

/* Connects to the destination's port and migrates; *s is the sender,
 * kept for its statistics. */
static int migrate(demo *d, int port, lm_sender **s, const char **what)
{
	lm_tls_config tls = {.size = sizeof(lm_tls_config), .psk = d->o.psk, .psk_len = sizeof(d->o.psk)};
	lm_sender_config sc = {.size = sizeof(lm_sender_config), .channels = d->o.channels, .codec = d->o.codec, .level = d->o.level,
			       .tls = d->o.plaintext ? NULL : &tls, .no_dedup = d->o.no_dedup,
			       .no_delta = d->o.no_delta, .delta_cache = d->o.delta_cache,
			       .device_state = cb_device_state, .device_state_user = d,
			       .device_state_max = WL_PAGE_SIZE + d->o.state_pad,
			       .device_state_size = d->o.state_pad && !d->o.state_unsaid ? cb_state_size : NULL};
	lm_live_config lc;
	char addr[64];
	int rc;

	snprintf(addr, sizeof(addr), "%s:%d", d->o.netns ? NS_DST_ADDR : "127.0.0.1", port);
	*what = "sender";
	if ((rc = lm_sender_new(s, &sc)))
		return rc;
	sig_watch_sender(*s); /* SIGINT/SIGTERM: fail, the workload resumes */
	*what = "region";
	if ((rc = lm_sender_add_region(*s, REGION, wl_base(d->w), wl_size(d->w))))
		return rc;
	*what = "connect";
	if ((rc = lm_sender_connect(*s, addr)))
		return rc;
	*what = "workload";
	if ((rc = wl_start(d->w)))
		return rc;
	live_config(d, &lc);
	if (!d->o.quiet && d->tty)
		demo_show(d, "round 1 sent [....................]: copying all memory while it is written");
	else if (!d->o.quiet)
		demo_show(d, "round 1: copying all memory while it is written");
	*what = "migration failed";
	d->t_migrate = demo_now_ms();
	return lm_sender_migrate(*s, &lc);
}

static int wait_port(demo *d, int *port)
{
	char *text, *err;
	msg m;
	int rc = recv_msg(d->fd, MSG_PORT, &m, &text, &err, demo_now_ms() + PORT_WAIT_MS);

	if (!rc && m.rc)
		fprintf(stderr, "%s: destination: %s%s%s\n", PROG, lm_strerror(m.rc), *err ? ": " : "", err);
	else if (rc)
		fprintf(stderr, "%s: destination did not report its port: %s\n", PROG, lm_strerror(rc));
	if (!rc)
		rc = m.rc;
	*port = rc ? 0 : (int)m.value;
	free(text);
	free(err);
	return rc;
}

/* What the destination said, when it did not verify. */
static void dest_failure(const dest_result *res)
{
	if (!res->have)
		fprintf(stderr, "%s: the destination sent no result: %s\n", PROG, lm_strerror(res->rc));
	else if (res->rc)
		fprintf(stderr, "%s: destination: %s%s%s\n", PROG, lm_strerror(res->rc),
			*res->err ? ": " : "", res->err);
}

/* After success the source is paused: its memory must equal what the
 * destination received. Returns 1 verified, 0 not (reported). */
static int verify(demo *d, const dest_result *res, uint64_t *src_sum)
{
	int rc = lm_region_checksum(wl_base(d->w), wl_size(d->w), src_sum);

	if (rc) {
		fprintf(stderr, "%s: checksum of the source: %s\n", PROG, lm_strerror(rc));
		return 0;
	}
	if (!res->have || res->rc) {
		dest_failure(res);
		return 0;
	}
	if (res->sum != *src_sum) {
		fprintf(d->txt, "demo: MISMATCH: destination checksum 0x%016" PRIx64
			" differs from the source's 0x%016" PRIx64 " at the pause\n", res->sum, *src_sum);
		return 0;
	}
	fprintf(d->txt, "demo: verified: destination memory equals the source at the pause (checksum 0x%016" PRIx64 ")\n",
		*src_sum);
	/* Paused: the count the writers' state carried is still the source's. */
	if (res->state_pages != wl_pages_written(d->w)) {
		fprintf(d->txt, "demo: MISMATCH: the device state says %" PRIu64 " pages written, the source %" PRIu64 "\n",
			res->state_pages, wl_pages_written(d->w));
		return 0;
	}
	fprintf(d->txt, "demo: device state: %" PRIu64 " bytes (the writers' state: %u generator%s, %" PRIu64 " pages written) continues the source",
		res->state_bytes, d->o.threads, d->o.threads > 1 ? "s" : "", res->state_pages);
	if (d->o.state_pad)
		fprintf(d->txt, ", then %" PRIu64 " bytes of padding", d->o.state_pad);
	fprintf(d->txt, "\n");
	return 1;
}

static char *sender_text(demo *d, const lm_sender *s)
{
	lm_stats st = LM_STATS_INIT;

	if (!s)
		return NULL;
	lm_sender_stats(s, &st);
	d->end_bytes = st.transferred;
	d->end_pages = demo_pages_sent(&st);
	return stats_text(&st, d->o.json);
}

/* The parent's part once the child runs: 0 verified, 1 failed. */
static int run_source(demo *d)
{
	dest_result res = {0};
	lm_sender *s = NULL;
	const char *what = "";
	char error[1024] = "", *src;
	uint64_t src_sum = 0;
	int port, rc, verified = 0;

	if (d->o.netns && (rc = join_netns(NS_SRC))) {
		fprintf(stderr, "%s: cannot join netns " NS_SRC ": %s\n", PROG, lm_strerror(rc));
		return 1;
	}
	demo_header(d);
	if (make_workload(d) || wait_port(d, &port))
		return 1;
	rc = migrate(d, port, &s, &what);
	demo_end_line(d);
	src = sender_text(d, s);
	if (rc) {
		snprintf(error, sizeof(error), "%s: %s%s%s", what, lm_strerror(rc),
			 s && *lm_sender_errmsg(s) ? ": " : "", s ? lm_sender_errmsg(s) : "");
		fprintf(stderr, "%s: %s\n", PROG, error);
		if (!strcmp(what, "migration failed"))
			fprintf(d->txt, "demo: migration failed; the workload resumed on the source\n");
		wl_stop(d->w); /* it was resumed: the guest runs on here */
	}
	sig_watch_sender(NULL);
	/* Closing the channels also ends a failed session at the destination,
	 * which then reports why. */
	lm_sender_free(s);
	read_result(d, &res, rc ? FAIL_WAIT_MS : RESULT_WAIT_MS);
	if (!d->o.json && !d->o.quiet) {
		demo_print_human(d, "source", src);
		demo_print_human(d, "destination", res.have ? res.text : NULL);
		fputc('\n', d->txt);
	}
	if (rc)
		dest_failure(&res);
	else if (!(verified = verify(d, &res, &src_sum)))
		snprintf(error, sizeof(error), "verification failed");
	if (d->o.json)
		demo_print_json(d, src, &res, verified, src_sum, verified ? NULL : error);
	free(src);
	free(res.text);
	free(res.err);
	return verified ? 0 : 1;
}

static int probe(void)
{
	char why[256];

	if (lm_dirty_probe(why, sizeof(why))) {
		printf("uffd-wp: unavailable: %s\n", why);
		return 1;
	}
	printf("uffd-wp: available\n");
	return 0;
}

int livemig_demo(int argc, char **argv)
{
	demo d = {.fd = -1};
	int rc;

	if ((rc = demo_parse_opts(argc, argv, &d.o)))
		return rc > 0 ? 0 : 2;
	if (d.o.probe)
		return probe();
	if (demo_check_image(&d.o))
		return 1;
	if (d.o.netns && check_netns())
		return 2;
	if (!d.o.plaintext && getrandom(d.o.psk, sizeof(d.o.psk), 0) != (ssize_t)sizeof(d.o.psk)) {
		fprintf(stderr, "%s: no random bytes for the PSK: %s\n", PROG, strerror(errno));
		return 1;
	}
	/* Lines, not blocks, even into a pipe: the progress and error lines
	 * on stderr must come out in the order they happened. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	d.txt = d.o.json ? stderr : stdout;
	d.tty = isatty(fileno(d.txt));
	if (choose_dirty(&d))
		return 1;
	if ((rc = fork_dest(&d))) {
		fprintf(stderr, "%s: cannot start the destination: %s\n", PROG, strerror(-rc));
		return 1;
	}
	rc = run_source(&d);
	/* Success: the child already sent its verdict and exits by itself. */
	reap_child(&d, rc ? 0 : 5000);
	wl_free(d.w);
	free(d.log);
	close(d.fd);
	return sig_status(rc);
}
