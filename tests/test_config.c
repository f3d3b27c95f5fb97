/*
 * Every configuration mistake has its message (issue 11, item 2): a table
 * of bad sender, receiver and live configs, each with the substring
 * lm_*_errmsg() must hold, the handle lm_*_new() gives on LM_EINVAL failing
 * every later call the same way; bad regions, addresses, fds and call
 * orders; a failed connect that leaves the handle failed with its reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "livemig.h"

/* A live config that is right, with callbacks that count their calls:
 * none may be called for a config refused. */
static int calls;

static int cb_pause(void *user)
{
	(void)user;
	return ++calls, 0;
}

static void cb_resume(void *user)
{
	(void)user;
	calls++;
}

static int cb_dirty(void *user, uint32_t region, uint64_t *bitmap, uint64_t pages)
{
	(void)user, (void)region, (void)bitmap, (void)pages;
	return ++calls, 0;
}

static lm_live_config good_live(void)
{
	lm_live_config c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.dirty = LM_DIRTY_CALLBACK;
	c.dirty_log = cb_dirty;
	c.pause = cb_pause;
	c.resume = cb_resume;
	return c;
}

typedef struct bad_sender {
	lm_sender_config c;
	const char *want;
} bad_sender;

typedef struct bad_receiver {
	lm_receiver_config c;
	const char *want;
} bad_receiver;

static void sender_configs(void)
{
	static const bad_sender bad[] = {
		{{.channels = 65}, "channels: 65 is out of range 1..64"},
		{{.page_size = 5000}, "page_size: 5000 is not a power of two in 4096..65536"},
		{{.page_size = 2048}, "page_size: 2048"},
		{{.page_size = 131072}, "page_size: 131072"},
		{{.packet_pages = 2000}, "packet_pages: 2000 is out of range 1..1024"},
		{{.codec = (lm_codec_id)9}, "codec: 9 is not a codec"},
		{{.accel = (lm_accel)7}, "accel: 7 is not an lm_accel"},
		{{.engine = (lm_engine_id)9}, "engine: 9 is not an lm_engine_id"},
		{{.sndbuf = -1}, "sndbuf: -1 is negative"},
	};
	uint8_t mem[4096];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lm_sender *s = NULL;
		lm_sender_config c = bad[i].c;
		c.size = sizeof(c); /* the table's entries name only the mistake */
		CHECK_EQ(lm_sender_new(&s, &c), LM_EINVAL);
		CHECK(s != NULL);
		if (!s)
			continue;
		check_contains("sender config", lm_sender_errmsg(s), bad[i].want);
		check_contains("sender config", lm_sender_errmsg(s), "lm_sender_config: ");
		/* The handle is failed: every call says the same. */
		CHECK_EQ(lm_sender_add_region(s, "ram", mem, sizeof(mem)), LM_EINVAL);
		CHECK_EQ(lm_sender_connect(s, "127.0.0.1:1"), LM_EINVAL);
		CHECK_EQ(lm_sender_run(s), LM_EINVAL);
		check_contains("sender config, later", lm_sender_errmsg(s), bad[i].want);
		lm_sender_free(s);
	}
}

static void receiver_configs(void)
{
	static const bad_receiver bad[] = {
		{{.max_channels = 65}, "max_channels: 65 is out of range 1..64"},
		{{.accel = (lm_accel)5}, "accel: 5 is not an lm_accel"},
		{{.engine = (lm_engine_id)8}, "engine: 8 is not an lm_engine_id"},
		{{.rcvbuf = -2}, "rcvbuf: -2 is negative"},
		{{.accept_timeout_ms = -1}, "accept_timeout_ms: -1 is negative"},
		{{.session_timeout_ms = -5}, "session_timeout_ms: -5 is negative"},
		{{.huge_pages = 1}, "huge_pages: applies to the memory alloc_regions maps"},
	};
	uint8_t mem[4096];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lm_receiver *r = NULL;
		lm_receiver_config c = bad[i].c;
		c.size = sizeof(c); /* the table's entries name only the mistake */
		CHECK_EQ(lm_receiver_new(&r, &c), LM_EINVAL);
		CHECK(r != NULL);
		if (!r)
			continue;
		check_contains("receiver config", lm_receiver_errmsg(r), bad[i].want);
		check_contains("receiver config", lm_receiver_errmsg(r), "lm_receiver_config: ");
		CHECK_EQ(lm_receiver_add_region(r, "ram", mem, sizeof(mem), 0), LM_EINVAL);
		CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), LM_EINVAL);
		CHECK_EQ(lm_receiver_run(r), LM_EINVAL);
		check_contains("receiver config, later", lm_receiver_errmsg(r), bad[i].want);
		lm_receiver_free(r);
	}
}

static void live_configs(void)
{
	lm_sender *s = NULL;
	lm_live_config c;
	uint8_t mem[4096];

	CHECK_EQ(lm_sender_new(&s, NULL), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", mem, sizeof(mem)), 0);
#define LIVE_BAD(stmt, want)                                                          \
	do {                                                                          \
		c = good_live();                                                      \
		stmt;                                                                 \
		CHECK_EQ(lm_sender_migrate(s, &c), LM_EINVAL);                        \
		check_contains("live config", lm_sender_errmsg(s), "lm_live_config: " want); \
	} while (0)
	LIVE_BAD(c.pause = NULL, "pause: required");
	LIVE_BAD(c.resume = NULL, "resume: required");
	LIVE_BAD(c.dirty = (lm_dirty_source)7, "dirty: 7 is not an lm_dirty_source");
	LIVE_BAD(c.on_limit = (lm_limit_action)2, "on_limit: 2 is not an lm_limit_action");
	LIVE_BAD(c.throttle_mode = (lm_throttle_mode)5, "throttle_mode: 5 is not an lm_throttle_mode");
	LIVE_BAD(c.dirty_log = NULL, "dirty_log: required");
	LIVE_BAD(c.throttle_max = 100, "throttle_max: 100 is out of range 1..99");
	LIVE_BAD((c.throttle_initial = 60, c.throttle_max = 50),
		 "throttle_initial: 60 is over throttle_max 50");
#undef LIVE_BAD
	CHECK_EQ(lm_sender_migrate(s, NULL), LM_EINVAL);
	check_contains("live config", lm_sender_errmsg(s), "lm_live_config: cfg is NULL");
	c = good_live();
	CHECK_EQ(lm_sender_migrate(s, &c), LM_ESTATE);
	check_contains("migrate unconnected", lm_sender_errmsg(s), "migrate: not connected");
	CHECK_EQ(calls, 0);
	lm_sender_free(s);
}

static void call_mistakes(void)
{
	char longname[LM_MAX_REGION_NAME + 2];
	uint8_t mem[4096];
	lm_sender *s = NULL;
	lm_receiver *r = NULL;
	int fds[1] = {-1};

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	CHECK_EQ(lm_sender_new(&s, NULL), 0);
	CHECK_EQ(lm_sender_add_region(s, "", mem, sizeof(mem)), LM_EINVAL);
	check_contains("add_region", lm_sender_errmsg(s), "add_region: name is 0 bytes, not 1..255");
	CHECK_EQ(lm_sender_add_region(s, longname, mem, sizeof(mem)), LM_EINVAL);
	check_contains("add_region", lm_sender_errmsg(s), "name is 256 bytes");
	CHECK_EQ(lm_sender_add_region(s, "ram", NULL, 4096), LM_EINVAL);
	check_contains("add_region", lm_sender_errmsg(s), "add_region \"ram\": base is NULL, len 4096");
	CHECK_EQ(lm_sender_add_region(s, "ram", mem, UINT64_MAX), LM_EINVAL);
	check_contains("add_region", lm_sender_errmsg(s), "is over 2^63");
	CHECK_EQ(lm_sender_add_region(s, "ram", mem, sizeof(mem)), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", mem, sizeof(mem)), LM_EREGION);
	check_contains("add_region", lm_sender_errmsg(s), "a region of that name was added already");
	CHECK_EQ(lm_sender_run(s), LM_ESTATE);
	check_contains("run", lm_sender_errmsg(s), "run: not connected");
	CHECK_EQ(lm_sender_connect(s, NULL), LM_EINVAL);
	check_contains("connect", lm_sender_errmsg(s), "connect: addr is NULL");
	CHECK_EQ(lm_sender_connect_fds(s, fds, 0), LM_EINVAL);
	check_contains("connect_fds", lm_sender_errmsg(s), "connect_fds: 0 fds");
	CHECK_EQ(lm_sender_set_downtime_limit(s, 0), LM_EINVAL);
	CHECK_EQ(lm_sender_set_downtime_limit(NULL, 5), LM_EINVAL);
	CHECK_EQ(lm_sender_set_max_bandwidth(NULL, 5), LM_EINVAL);
	CHECK_EQ(lm_sender_switchover(NULL), LM_EINVAL);
	/* A failed connect: later calls fail and say why it failed. */
	CHECK(lm_sender_connect(s, "no-such-transport:x") != 0);
	{
		char first[512];
		snprintf(first, sizeof(first), "%s", lm_sender_errmsg(s));
		CHECK(first[0] != 0);
		CHECK_EQ(lm_sender_connect(s, "127.0.0.1:1"), LM_ESTATE);
		CHECK_EQ(lm_sender_run(s), LM_ESTATE);
		CHECK(strcmp(lm_sender_errmsg(s), first) == 0);
	}
	lm_sender_free(s);

	/* A connect refused (nobody listens on port 1): the same. */
	CHECK_EQ(lm_sender_new(&s, NULL), 0);
	CHECK_EQ(lm_sender_add_region(s, "ram", mem, sizeof(mem)), 0);
	CHECK(lm_sender_connect(s, "127.0.0.1:1") != 0);
	check_contains("connect refused", lm_sender_errmsg(s), "connect to tcp:127.0.0.1:1");
	CHECK_EQ(lm_sender_run(s), LM_ESTATE);
	check_contains("run after a failed connect", lm_sender_errmsg(s), "connect to tcp:127.0.0.1:1");
	lm_sender_free(s);

	CHECK_EQ(lm_receiver_new(&r, NULL), 0);
	CHECK_EQ(lm_receiver_add_region(r, "", mem, sizeof(mem), 0), LM_EINVAL);
	check_contains("rx add_region", lm_receiver_errmsg(r), "add_region: name is 0 bytes");
	CHECK_EQ(lm_receiver_add_region(r, "ram", NULL, 4096, 0), LM_EINVAL);
	check_contains("rx add_region", lm_receiver_errmsg(r), "base is NULL, len 4096");
	CHECK_EQ(lm_receiver_add_region(r, "ram", mem, sizeof(mem), 0), 0);
	CHECK_EQ(lm_receiver_add_region(r, "ram", mem, sizeof(mem), 0), LM_EREGION);
	check_contains("rx add_region", lm_receiver_errmsg(r), "was added already");
	CHECK_EQ(lm_receiver_run(r), LM_ESTATE);
	check_contains("rx run", lm_receiver_errmsg(r), "run: neither listening nor given fds");
	CHECK_EQ(lm_receiver_listen(r, NULL), LM_EINVAL);
	check_contains("rx listen", lm_receiver_errmsg(r), "listen: addr is NULL");
	CHECK_EQ(lm_receiver_accept_fds(r, fds, 0), LM_EINVAL);
	check_contains("rx accept_fds", lm_receiver_errmsg(r), "accept_fds: 0 fds");
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), 0);
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), LM_ESTATE);
	check_contains("rx listen twice", lm_receiver_errmsg(r), "listen: the receiver listens");
	lm_receiver_free(r);
	printf("configuration mistakes: messages checked\n");
}

int main(void)
{
	sender_configs();
	receiver_configs();
	live_configs();
	call_mistakes();
	TEST_DONE("test_config");
}
