/*
 * mini_vmm: how a VMM embeds livemig, in one readable file.
 *
 * The "guest" has RAM in two regions (low and high memory, as a PC's below
 * and above the 4 GiB hole) and NVCPU vCPU threads that keep writing into
 * it. Each vCPU has one register, its write counter, and keeps a copy of
 * it in a slot of guest RAM. Like KVM, the VMM keeps a dirty bitmap per
 * region, set by every write (KVM sets it from the EPT/PML hardware); the
 * migration reads and clears it through a KVM_GET_DIRTY_LOG-style
 * callback.
 *
 *   mini_vmm dest   --listen ADDR --psk FILE [--out FILE]
 *   mini_vmm source --to ADDR     --psk FILE [--mib N] [--seconds S] [--max-bandwidth M]
 *   mini_vmm local                --psk FILE [...]   (both, over socketpairs)
 *
 * The source runs the guest for a moment, then migrates it live: pause,
 * resume and throttle callbacks stop, restart and slow the vCPUs; at the
 * switchover the vCPU registers travel as device state, on the migration's
 * own authenticated channels. The destination checks that every vCPU's
 * slot in RAM holds the register value that came with the device state:
 * memory and device state were taken at the same instant. SIGINT cancels
 * the migration on either side (the source's guest then resumes).
 *
 * Build against an installed livemig:
 *   cc -o mini_vmm mini_vmm.c $(pkg-config --cflags --libs livemig)
 * or with CMake: find_package(livemig) and target_link_libraries(... livemig::livemig).
 */
#define _DEFAULT_SOURCE /* usleep, MAP_ANONYMOUS under -std=c11 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <livemig.h>

#define NVCPU 2
#define NCHAN 2 /* migration channels */
#define PAGE 4096u
#define LOW_MIB 16u /* region 0: "ram-low"; region 1, "ram-high", is the rest */
#define HOT_MIB 4u  /* each vCPU's working set */

/* ---- the guest ---------------------------------------------------------- */

typedef struct region {
	const char *name;
	uint8_t *mem;
	uint64_t len;
	_Atomic uint64_t *dirty; /* one bit per page, set by the vCPUs */
} region;

typedef struct guest {
	region r[2];
	pthread_t vcpu[NVCPU];
	uint64_t reg[NVCPU];   /* each vCPU's register: its write counter (owner: the vCPU) */
	pthread_mutex_t lock;  /* guards the four fields below */
	pthread_cond_t cond;
	int paused, parked, stop;
	uint32_t throttle;     /* percent of time the vCPUs sleep */
} guest;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The slot where vCPU i mirrors its register: the first 8 bytes of its
 * own page at the start of ram-low. */
static uint64_t *slot(guest *g, int i)
{
	return (uint64_t *)(g->r[0].mem + (uint64_t)i * PAGE);
}

static void mark_dirty(region *r, uint64_t off)
{
	uint64_t page = off / PAGE;

	atomic_fetch_or_explicit(&r->dirty[page / 64], 1ull << (page % 64), memory_order_relaxed);
}

/* Waits while paused (parked: the pause callback returns once all are);
 * sleeps its share of the time while throttled. 0: go on, 1: stop. */
static int vcpu_gate(guest *g, uint64_t *ran_since)
{
	int stop;

	pthread_mutex_lock(&g->lock);
	if (g->throttle && now_ns() - *ran_since > 1000000u) { /* after each ms of work */
		uint32_t pct = g->throttle;
		pthread_mutex_unlock(&g->lock);
		usleep(pct * 1000u / (100u - pct));
		pthread_mutex_lock(&g->lock);
		*ran_since = now_ns();
	}
	if (g->paused) {
		g->parked++;
		pthread_cond_broadcast(&g->cond);
		while (g->paused && !g->stop)
			pthread_cond_wait(&g->cond, &g->lock);
		g->parked--;
	}
	stop = g->stop;
	pthread_mutex_unlock(&g->lock);
	return stop;
}

/* A vCPU: writes its counter, mostly into its own hot working set in
 * ram-high (HOT_MIB) and now and then anywhere in either region, then
 * "computes" for a while; and mirrors the counter in its slot. */
typedef struct vcpu_arg {
	guest *g;
	int i;
} vcpu_arg;

static void *vcpu_main(void *arg)
{
	guest *g = ((vcpu_arg *)arg)->g;
	int i = ((vcpu_arg *)arg)->i;
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1), ran = now_ns();

	while (!vcpu_gate(g, &ran)) {
		for (int k = 0; k < 64; k++) {
			region *r = &g->r[1];
			uint64_t off, hot = (uint64_t)HOT_MIB << 20;
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			if (x % 100 == 0) { /* 1 write in 100: anywhere */
				r = &g->r[x >> 7 & 1];
				off = (x >> 8) % (r->len / 8) * 8;
			} else {
				off = ((uint64_t)i * hot + (x >> 8) % hot) % r->len / 8 * 8;
			}
			if (r == &g->r[0] && off < NVCPU * PAGE)
				continue; /* the slots are written below only */
			g->reg[i]++;
			memcpy(r->mem + off, &g->reg[i], 8);
			mark_dirty(r, off);
		}
		*slot(g, i) = g->reg[i];
		mark_dirty(&g->r[0], (uint64_t)i * PAGE);
		usleep(100); /* the guest computes */
	}
	return NULL;
}

static int guest_map(guest *g, uint64_t mib)
{
	uint64_t len[2] = {(uint64_t)LOW_MIB << 20, (mib - LOW_MIB) << 20};
	const char *names[2] = {"ram-low", "ram-high"};

	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	for (int i = 0; i < 2; i++) {
		region *r = &g->r[i];
		r->name = names[i];
		r->len = len[i];
		r->mem = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		r->dirty = calloc(r->len / PAGE / 64 + 1, sizeof(*r->dirty));
		if (r->mem == MAP_FAILED || !r->dirty)
			return -ENOMEM;
	}
	return 0;
}

/* What booting leaves in RAM: every other page holds data (here: random
 * bytes, the worst case for compression), the rest is still zero. */
static void guest_boot(guest *g)
{
	uint64_t x = 0x243f6a8885a308d3ull;

	for (int i = 0; i < 2; i++)
		for (uint64_t off = 0; off + PAGE <= g->r[i].len; off += 2 * PAGE)
			for (uint64_t k = 0; k < PAGE; k += 8) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				memcpy(g->r[i].mem + off + k, &x, 8);
			}
}

/* ---- the callbacks livemig calls (on the thread in lm_sender_migrate) --- */

static int cb_dirty_log(void *user, uint32_t id, uint64_t *bitmap, uint64_t pages)
{
	region *r = &((guest *)user)->r[id];

	for (uint64_t w = 0; w < (pages + 63) / 64; w++)
		bitmap[w] = atomic_exchange_explicit(&r->dirty[w], 0, memory_order_acq_rel);
	return 0;
}

static int cb_pause(void *user)
{
	guest *g = user;

	pthread_mutex_lock(&g->lock);
	g->paused = 1;
	while (g->parked < NVCPU)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

static void cb_resume(void *user)
{
	guest *g = user;

	pthread_mutex_lock(&g->lock);
	g->paused = 0;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void cb_throttle(void *user, uint32_t pct)
{
	guest *g = user;

	pthread_mutex_lock(&g->lock);
	g->throttle = pct;
	pthread_mutex_unlock(&g->lock);
}

static void cb_progress(void *user, const lm_stats *st)
{
	(void)user;
	fprintf(stderr, "mini_vmm: round %" PRIu32 ": %" PRIu64 " bytes left, expected downtime %" PRIu64
		" ms, throttle %" PRIu32 "%%\n", st->rounds, st->remaining_bytes, st->expected_downtime_ms,
		st->throttle_now_pct);
}

/* ---- device state: the vCPU registers ------------------------------------ */

/* Source, after the pause (on the thread in lm_sender_migrate): what a VMM
 * reads with KVM_GET_REGS and its device models' save functions. */
static int cb_save_devices(void *user, lm_devstate_writer *w)
{
	guest *g = user;

	return lm_devstate_write(w, g->reg, sizeof(g->reg));
}

/* Destination, on a receiver channel thread: the pieces in order, then
 * buf == NULL once all of it verified. Refusing (non-zero) fails the
 * migration on both sides and the source resumes. */
static int cb_load_devices(void *user, uint64_t off, const void *buf, size_t len)
{
	guest *g = user;

	if (!buf) /* the end: off is the total */
		return off == sizeof(g->reg) ? 0 : -EINVAL;
	if (off + len > sizeof(g->reg))
		return -EINVAL;
	memcpy((uint8_t *)g->reg + off, buf, len);
	return 0;
}

/* ---- source and destination --------------------------------------------- */

static lm_sender *volatile the_sender;
static lm_receiver *volatile the_receiver;

/* lm_*_cancel are async-signal-safe: a signal handler may call them. */
static void on_sigint(int sig)
{
	(void)sig;
	if (the_sender)
		lm_sender_cancel(the_sender);
	if (the_receiver)
		lm_receiver_cancel(the_receiver);
}

/* to: an address, or NULL for the connected sockets fds[NCHAN]. */
static int source(const char *to, const int *fds, const lm_tls_config *tls, uint64_t mib,
		  double seconds, uint64_t bandwidth)
{
	/* LM_*_INIT: each struct carries its size (the ABI policy), the rest 0. */
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	lm_live_config lc = LM_LIVE_CONFIG_INIT;
	lm_sender *s = NULL;
	vcpu_arg va[NVCPU];
	guest g;
	int rc;

	sc.channels = NCHAN;
	sc.codec = LM_CODEC_AUTO;
	sc.tls = tls;
	sc.device_state = cb_save_devices; /* the vCPU registers at the switchover */
	lc.dirty = LM_DIRTY_CALLBACK;      /* a KVM-style dirty log */
	lc.dirty_log = cb_dirty_log;
	lc.pause = cb_pause;
	lc.resume = cb_resume;
	lc.throttle = cb_throttle;         /* auto-converge slows the vCPUs */
	lc.progress = cb_progress;
	lc.downtime_limit_ms = 300;
	lc.on_limit = LM_LIMIT_SWITCHOVER;
	lc.max_bandwidth = bandwidth;
	if ((rc = guest_map(&g, mib)))
		return rc;
	guest_boot(&g);
	lc.user = &g;
	sc.device_state_user = &g;
	for (int i = 0; i < NVCPU; i++) {
		va[i] = (vcpu_arg){&g, i};
		pthread_create(&g.vcpu[i], NULL, vcpu_main, &va[i]);
	}
	usleep((useconds_t)(seconds * 1e6)); /* the guest runs a while */

	if ((rc = lm_sender_new(&s, &sc)))
		goto out;
	the_sender = s;
	for (int i = 0; i < 2 && !rc; i++)
		rc = lm_sender_add_region(s, g.r[i].name, g.r[i].mem, g.r[i].len);
	if (!rc)
		rc = to ? lm_sender_connect(s, to) : lm_sender_connect_fds(s, fds, NCHAN);
	if (!rc)
		rc = lm_sender_migrate(s, &lc);
	if (rc) {
		uint64_t before = __atomic_load_n(&g.reg[0], __ATOMIC_RELAXED);
		usleep(50000);
		fprintf(stderr, "mini_vmm: migration failed: %s: %s; the guest runs on here (%s)\n",
			lm_strerror(rc), lm_sender_errmsg(s),
			__atomic_load_n(&g.reg[0], __ATOMIC_RELAXED) != before ? "resumed"
										: "NOT running");
	} else {
		lm_stats st = LM_STATS_INIT;

		lm_sender_stats(s, &st);
		printf("source: migrated in %" PRIu32 " rounds, downtime %" PRIu64 " ms; vCPU registers",
		       st.rounds, st.downtime_ms);
		for (int i = 0; i < NVCPU; i++)
			printf(" %" PRIu64, g.reg[i]);
		printf("\n");
	}
out:
	the_sender = NULL;
	/* On success the guest stays paused (it now runs on the destination);
	 * on failure livemig resumed it. Either way this process ends it. */
	pthread_mutex_lock(&g.lock);
	g.stop = 1;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	for (int i = 0; i < NVCPU; i++)
		pthread_join(g.vcpu[i], NULL);
	lm_sender_free(s);
	return rc;
}

/* listen: an address, or NULL for the connected sockets fds[NCHAN]. */
static int dest(const char *listen, const int *fds, const lm_tls_config *tls, uint64_t mib)
{
	lm_receiver_config rc_cfg = LM_RECEIVER_CONFIG_INIT;
	lm_receiver *r = NULL;
	guest g;
	int rc;

	rc_cfg.tls = tls;
	rc_cfg.max_bytes = mib << 20;          /* a stranger cannot announce more */
	rc_cfg.device_state = cb_load_devices;
	if ((rc = guest_map(&g, mib)))
		return rc;
	rc_cfg.user = &g;
	if ((rc = lm_receiver_new(&r, &rc_cfg)))
		return rc;
	the_receiver = r;
	for (int i = 0; i < 2 && !rc; i++) /* fresh mappings: zero pages need no write */
		rc = lm_receiver_add_region(r, g.r[i].name, g.r[i].mem, g.r[i].len, 1);
	if (!rc)
		rc = listen ? lm_receiver_listen(r, listen) : lm_receiver_accept_fds(r, fds, NCHAN);
	if (!rc)
		rc = lm_receiver_run(r);
	if (rc) {
		fprintf(stderr, "mini_vmm: receive failed: %s: %s\n", lm_strerror(rc),
			lm_receiver_errmsg(r));
	} else {
		/* Memory and device state of one instant: each vCPU's slot
		 * in RAM holds the register that came as device state. */
		printf("dest: guest received; vCPU registers");
		for (int i = 0; i < NVCPU; i++) {
			printf(" %" PRIu64, g.reg[i]);
			if (*slot(&g, i) != g.reg[i])
				rc = LM_ECHECKSUM;
		}
		printf(rc ? ": RAM does not match them\n" : ", RAM matches\n");
	}
	the_receiver = NULL;
	lm_receiver_free(r);
	return rc;
}

/* Both sides in one run, over socketpairs (as libvirt hands a migration
 * its sockets, or a local live upgrade): the destination in a child
 * process, the source here. */
static int local(const lm_tls_config *tls, uint64_t mib, double seconds, uint64_t bandwidth)
{
	int sfd[NCHAN], rfd[NCHAN], status = 0, rc;
	pid_t pid;

	for (int i = 0; i < NCHAN; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			return -errno;
		sfd[i] = sv[0];
		rfd[i] = sv[1];
	}
	if ((pid = fork()) < 0)
		return -errno;
	if (pid == 0) {
		for (int i = 0; i < NCHAN; i++)
			close(sfd[i]);
		rc = dest(NULL, rfd, tls, mib);
		fflush(stdout);
		_exit(rc ? 1 : 0);
	}
	for (int i = 0; i < NCHAN; i++)
		close(rfd[i]);
	rc = source(NULL, sfd, tls, mib, seconds, bandwidth);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!rc && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		rc = LM_EPEER;
	return rc;
}

static int usage(void)
{
	fprintf(stderr, "usage: mini_vmm source --to ADDR --psk FILE [--mib N] [--seconds S]\n"
			"                       [--max-bandwidth MIB_PER_S]\n"
			"       mini_vmm dest --listen ADDR --psk FILE [--mib N]\n"
			"       mini_vmm local --psk FILE [--mib N] [--seconds S] [--max-bandwidth M]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "", *addr = NULL, *psk = NULL;
	uint64_t mib = 64, bandwidth = 0;
	double seconds = 0.5;
	struct sigaction sa = {.sa_handler = on_sigint};
	lm_tls_config tls = LM_TLS_CONFIG_INIT;
	int rc;

	if (strcmp(mode, "source") && strcmp(mode, "dest") && strcmp(mode, "local"))
		return usage();
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--to") || !strcmp(argv[i], "--listen"))
			addr = argv[i + 1];
		else if (!strcmp(argv[i], "--psk"))
			psk = argv[i + 1];
		else if (!strcmp(argv[i], "--mib"))
			mib = strtoull(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--max-bandwidth")) /* MiB/s before the pause */
			bandwidth = strtoull(argv[i + 1], NULL, 10) << 20;
		else
			return usage();
	}
	if ((!addr && strcmp(mode, "local")) || !psk || mib <= LOW_MIB + 2 * HOT_MIB)
		return usage();
	tls.psk_file = psk; /* mutual authentication and encryption on every channel */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("mini_vmm: livemig %s\n", lm_version());
	fflush(stdout); /* before a fork */
	if (!strcmp(mode, "local"))
		rc = local(&tls, mib, seconds, bandwidth);
	else if (!strcmp(mode, "source"))
		rc = source(addr, NULL, &tls, mib, seconds, bandwidth);
	else
		rc = dest(addr, NULL, &tls, mib);
	return rc ? 1 : 0;
}
