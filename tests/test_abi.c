/* The version functions and the ABI policy's size checks (include/livemig.h,
 * "ABI policy"; src/abi.c): every public struct's size field is checked, a
 * size this library does not know is refused with LM_EABI and, where there
 * is a handle, a message naming the struct. */
#include <string.h>

#include "abi.h"
#include "check.h"

static void test_version(void)
{
	char want[32];

	snprintf(want, sizeof(want), "%d.%d.%d", LM_VERSION_MAJOR, LM_VERSION_MINOR,
		 LM_VERSION_PATCH);
	CHECK(strcmp(lm_version(), want) == 0);
	CHECK(strcmp(lm_version(), "0.2.0") == 0);
	CHECK_EQ(lm_version_number(), 0x000200);
	CHECK_EQ(lm_version_number(), LM_VERSION_NUMBER);
	CHECK_EQ(lm_version_number() >> 16, LM_VERSION_MAJOR);
}

static void test_sender_config(void)
{
	lm_sender_config c = LM_SENDER_CONFIG_INIT;
	/* An older caller's struct: only its first SIZE0 bytes are its own. */
	unsigned char old[sizeof(lm_sender_config) + 64];
	lm_sender *s = (lm_sender *)&c;

	CHECK_EQ(c.size, sizeof(c));
	CHECK_EQ(lm_sender_new(&s, &c), 0);
	lm_sender_free(s);
	c.size = 0; /* zero-initialised, not LM_SENDER_CONFIG_INIT */
	CHECK_EQ(lm_sender_new(&s, &c), LM_EABI);
	/* A failed handle, as for any configuration mistake: its errmsg says
	 * it, and every call fails the same way. */
	CHECK(s != NULL);
	CHECK(strstr(lm_sender_errmsg(s), "lm_sender_config: size: 0 is not one") != NULL);
	CHECK_EQ(lm_sender_run(s), LM_EABI);
	lm_sender_free(s);
	c.size = sizeof(c) + 8; /* built against a newer header */
	CHECK_EQ(lm_sender_new(&s, &c), LM_EABI);
	CHECK(strstr(lm_sender_errmsg(s), "lm_sender_config: size: ") != NULL);
	lm_sender_free(s);
	c.size = LM__SENDER_CONFIG_SIZE0 - 1;
	CHECK_EQ(lm_sender_new(&s, &c), LM_EABI);
	lm_sender_free(s);
	memset(old, 0xff, sizeof(old));
	c = (lm_sender_config)LM_SENDER_CONFIG_INIT;
	c.size = LM__SENDER_CONFIG_SIZE0;
	memcpy(old, &c, LM__SENDER_CONFIG_SIZE0);
	CHECK_EQ(lm_sender_new(&s, (const lm_sender_config *)old), 0);
	lm_sender_free(s);
	CHECK(strcmp(lm_strerror(LM_EABI), "unknown error") != 0);
}

static void test_receiver_config(void)
{
	lm_receiver_config c = LM_RECEIVER_CONFIG_INIT;
	lm_receiver *r = NULL;

	CHECK_EQ(lm_receiver_new(&r, &c), 0);
	lm_receiver_free(r);
	c.size = 0;
	CHECK_EQ(lm_receiver_new(&r, &c), LM_EABI);
	CHECK(r != NULL);
	CHECK(strstr(lm_receiver_errmsg(r), "lm_receiver_config: size: 0 is not one") != NULL);
	CHECK_EQ(lm_receiver_listen(r, "127.0.0.1:0"), LM_EABI);
	lm_receiver_free(r);
	c.size = sizeof(c) + 4;
	CHECK_EQ(lm_receiver_new(&r, &c), LM_EABI);
	lm_receiver_free(r);
	c.size = LM__RECEIVER_CONFIG_SIZE0;
	CHECK_EQ(lm_receiver_new(&r, &c), 0);
	lm_receiver_free(r);
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

static void test_live_config(void)
{
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	lm_live_config lc = LM_LIVE_CONFIG_INIT;
	lm_sender *s = NULL;

	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	lc.pause = no_pause;
	lc.resume = no_resume;
	CHECK_EQ(lm_sender_add_region(s, "ram", &lc, sizeof(lc)), 0);
	/* Known size: refused for the state (not connected), not the size. */
	CHECK_EQ(lm_sender_migrate(s, &lc), LM_ESTATE);
	lc.size = 0;
	CHECK_EQ(lm_sender_migrate(s, &lc), LM_EABI);
	CHECK(strstr(lm_sender_errmsg(s), "lm_live_config: size: 0 is not one") != NULL);
	lc.size = sizeof(lc) + 4;
	CHECK_EQ(lm_sender_migrate(s, &lc), LM_EABI);
	CHECK(strstr(lm_sender_errmsg(s), "lm_live_config: size: ") != NULL);
	/* Built before switchover_bandwidth (its sizeof then, tail padding
	 * and all), or ABI 0's first size: known, refused for the state. */
	lc.size = (uint32_t)offsetof(lm_live_config, switchover_bandwidth);
	CHECK_EQ(lm_sender_migrate(s, &lc), LM_ESTATE);
	lc.size = LM__LIVE_CONFIG_SIZE0;
	CHECK_EQ(lm_sender_migrate(s, &lc), LM_ESTATE);
	lm_sender_free(s);
}

static void test_tls_config(void)
{
	lm_tls_config tls = LM_TLS_CONFIG_INIT;
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	lm_receiver_config rc = LM_RECEIVER_CONFIG_INIT;
	lm_receiver *r = NULL;
	lm_sender *s = NULL;
	int rv;

	tls.size = 0;
	tls.psk_file = "/nonexistent/psk";
	sc.tls = &tls;
	sc.channels = 1;
	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	rv = lm_sender_connect(s, "127.0.0.1:1");
	CHECK_EQ(rv, LM_EABI);
	CHECK(strstr(lm_sender_errmsg(s), "lm_tls_config: size: 0 is not one") != NULL);
	lm_sender_free(s);
	rc.tls = &tls;
	CHECK_EQ(lm_receiver_new(&r, &rc), 0);
	rv = lm_receiver_listen(r, "127.0.0.1:0");
	CHECK_EQ(rv, LM_EABI);
	CHECK(strstr(lm_receiver_errmsg(r), "lm_tls_config: size: 0 is not one") != NULL);
	lm_receiver_free(r);
}

static void test_stats(void)
{
	lm_sender_config sc = LM_SENDER_CONFIG_INIT;
	lm_stats st = LM_STATS_INIT;
	lm_sender *s = NULL;
	char buf[4096];

	CHECK_EQ(lm_sender_new(&s, &sc), 0);
	CHECK_EQ(lm_sender_stats(s, &st), 0);
	CHECK_EQ(st.size, sizeof(st));
	CHECK_EQ(st.channels, LM_DEFAULT_CHANNELS);
	CHECK(lm_stats_format(&st, LM_STATS_JSON, buf, sizeof(buf)) > 0);
	/* An older caller's lm_stats: written up to its size, no further. */
	memset(&st, 0xee, sizeof(st));
	st.size = (uint32_t)LM__STATS_SIZE0;
	CHECK_EQ(lm_sender_stats(s, &st), 0);
	CHECK_EQ(st.size, LM__STATS_SIZE0);
	CHECK_EQ(st.channels, LM_DEFAULT_CHANNELS);
	if (LM__STATS_SIZE0 < sizeof(st))
		CHECK_EQ(((unsigned char *)&st)[sizeof(st) - 1], 0xee);
	CHECK(lm_stats_format(&st, LM_STATS_HUMAN, buf, sizeof(buf)) > 0);
	/* Unknown sizes: nothing written, LM_EABI. */
	memset(&st, 0xee, sizeof(st));
	st.size = 0;
	CHECK_EQ(lm_sender_stats(s, &st), LM_EABI);
	CHECK_EQ(st.channels, 0xeeeeeeeeu);
	CHECK_EQ(lm_stats_format(&st, LM_STATS_JSON, buf, sizeof(buf)), LM_EABI);
	CHECK_EQ(lm_stats_mix_line(&st, buf, sizeof(buf)), LM_EABI);
	st.size = sizeof(st) + 8;
	CHECK_EQ(lm_sender_stats(s, &st), LM_EABI);
	CHECK_EQ(lm_sender_stats(NULL, &st), LM_EINVAL);
	lm_sender_free(s);
}

int main(void)
{
	test_version();
	test_sender_config();
	test_receiver_config();
	test_live_config();
	test_tls_config();
	test_stats();
	printf("test_abi: %d checks, %d failed\n", lm_test_checks, lm_test_failures);
	return lm_test_failures != 0;
}
