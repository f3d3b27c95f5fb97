/*
 * Sender dispatch (src/sender/dispatch.c): unpaced, the driving thread puts
 * the next packet behind a busy channel's instead of waiting for the channel
 * to go idle, and the channel takes it as its own ends; paced, nothing
 * queues (the hand-off is where a packet is charged). Either way every page
 * lands once and the counts agree; a receiver that refuses partway ends the
 * run with its reason, queued packets and all.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "fake_receiver.h"
#include "livemig.h"
#include "sender/sender.h"

#define LEN (64ull << 20)

typedef struct recv_ctx {
	lm_receiver *r;
	int rc;
} recv_ctx;

static void *recv_thread(void *arg)
{
	recv_ctx *c = arg;

	c->rc = lm_receiver_run(c->r);
	return NULL;
}

/* Pages no codec shrinks and no two alike, so every packet is a whole
 * packet's work and none is a ref. */
static void fill(uint8_t *p, uint64_t len)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (uint64_t i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

/* The live path's callbacks for memory nothing writes. */
static int no_dirt(void *user, uint32_t region, uint64_t *bitmap, uint64_t pages)
{
	(void)user, (void)region;
	memset(bitmap, 0, (size_t)(pages + 63) / 64 * 8);
	return 0;
}

static int no_pause(void *user)
{
	(void)user;
	return 0;
}

static void no_resume(void *user)
{
	(void)user;
}

/* One migration of LEN bytes over ch channels: one-shot (rate 0), or live
 * at max_bandwidth rate (pacing is live only); the packets the driving
 * thread queued. */
static uint64_t run(uint32_t ch, uint64_t rate, const uint8_t *src)
{
	lm_receiver_config rc = LM_RECEIVER_CONFIG_INIT;
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	lm_stats ss = LM_STATS_INIT, rs = LM_STATS_INIT;
	uint8_t *dst = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	lm_receiver *r = NULL;
	lm_sender *s = NULL;
	uint64_t queued = 0;
	recv_ctx ctx = {0};
	char addr[64];
	pthread_t t;
	int src_rc;

	CHECK(dst != MAP_FAILED);
	if (dst == MAP_FAILED)
		return 0;
	rc.timeout_ms = rc.accept_timeout_ms = 20000;
	CHECK_EQ(lm_receiver_new(&r, &rc), 0);
	CHECK_EQ(lm_receiver_add_region(r, "ram", dst, LEN, 1), 0);
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", lm_receiver_port(r));
	ctx.r = r;
	pthread_create(&t, NULL, recv_thread, &ctx);
	sc.channels = ch;
	sc.codec = LM_CODEC_NONE;
	sc.timeout_ms = 20000;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", src, LEN), 0);
	src_rc = lm_sender_connect(s, addr);
	if (!src_rc && !rate)
		src_rc = lm_sender_run(s);
	if (!src_rc && rate) {
		lm_live_config lc = LM_LIVE_CONFIG_INIT;
		lc.dirty = LM_DIRTY_CALLBACK;
		lc.dirty_log = no_dirt;
		lc.pause = no_pause;
		lc.resume = no_resume;
		lc.max_bandwidth = rate;
		src_rc = lm_sender_migrate(s, &lc);
	}
	CHECK_EQ(src_rc, 0);
	pthread_join(t, NULL);
	CHECK_EQ(ctx.rc, 0);
	CHECK(memcmp(src, dst, LEN) == 0);
	lm_sender_stats(s, &ss);
	lm_receiver_stats(r, &rs);
	CHECK_EQ(ss.status, LM_STATUS_COMPLETED);
	CHECK_EQ(ss.normal_pages, LEN / 4096);
	CHECK_EQ(rs.normal_pages, LEN / 4096);
	CHECK_EQ(ss.packets, rs.packets);
	CHECK_EQ(ss.packets, LEN / 4096 / s->packet_pages); /* live: no page twice */
	queued = s->queued;
	printf("channels %u rate %llu: %llu packets, %llu queued behind a busy channel's\n", ch,
	       (unsigned long long)rate, (unsigned long long)ss.packets,
	       (unsigned long long)queued);
	lm_sender_free(s);
	lm_receiver_free(r);
	munmap(dst, LEN);
	return queued;
}

/* A receiver that refuses after a few packets while the channel, writing
 * into a small socket buffer the fake reads slowly, has the next queued:
 * the run ends with the refusal (a queued packet is dropped, not sent
 * after it), not a hang or another error. */
static void refused(const uint8_t *src)
{
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	lm_sender *s = NULL;
	char addr[64];
	pthread_t t;
	frx f;
	int rc;

	memset(&f, 0, sizeof(f));
	f.refuse_after = 6;
	frx_listen(&f, addr, sizeof(addr));
	pthread_create(&t, NULL, frx_main, &f);
	sc.channels = 1;
	sc.codec = LM_CODEC_NONE;
	sc.no_dedup = 1;
	sc.sndbuf = 64 << 10;
	sc.timeout_ms = 5000;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", src, LEN), 0);
	rc = lm_sender_connect(s, addr);
	CHECK_EQ(rc, 0);
	if (!rc)
		rc = lm_sender_run(s);
	pthread_join(t, NULL);
	printf("refused after %d packets: %d %s (%llu queued)\n", f.refuse_after, rc,
	       lm_sender_errmsg(s), (unsigned long long)s->queued);
	CHECK_EQ(rc, LM_EPEER);
	CHECK(strstr(lm_sender_errmsg(s), "test refusal after feedback") != NULL);
	CHECK(s->queued > 0);
	if (f.fd >= 0)
		close(f.fd);
	close(f.lfd);
	lm_sender_free(s);
}

int main(void)
{
	uint8_t *src = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(src != MAP_FAILED);
	if (src == MAP_FAILED)
		return 1;
	fill(src, LEN);
	/* 128 packets through one channel: the driving thread hands them out
	 * far faster than the channel writes them, so packets queue. */
	CHECK(run(1, 0, src) > 0);
	CHECK(run(4, 0, src) > 0);
	/* Paced (1 GB/s keeps the run short): never (test_control's
	 * bandwidth case bounds what pacing lets out ahead). */
	CHECK_EQ(run(1, 1000000000ull, src), 0);
	CHECK_EQ(run(4, 1000000000ull, src), 0);
	refused(src);
	munmap(src, LEN);
	TEST_DONE("test_dispatch");
}
