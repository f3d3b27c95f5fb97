/*
 * The receiver against a hand-written sender's DEVSTATE and DEVSTATE_END
 * frames (docs/protocol.md §10b): each bad frame fails the session with the
 * field named, an ERROR to the sender, and the application's end call
 * never made; pieces that arrive out of order on two channels are handed
 * over in order. Uses the fake sender of tests/fake_peer.h.
 */
#include "fake_peer.h"

static pthread_mutex_t got_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t st_got[256];
static uint64_t got_next, ends, bad_order;

static int load(void *user, uint64_t off, const void *buf, size_t len)
{
	(void)user;
	pthread_mutex_lock(&got_lock);
	if (!buf)
		ends++;
	else if (off != got_next || off + len > sizeof(st_got))
		bad_order++;
	else {
		memcpy(st_got + off, buf, len);
		got_next = off + len;
	}
	pthread_mutex_unlock(&got_lock);
	return 0;
}

static void reset(void)
{
	pthread_mutex_lock(&got_lock);
	memset(st_got, 0, sizeof(st_got));
	got_next = ends = bad_order = 0;
	pthread_mutex_unlock(&got_lock);
}

/* A piece: off, the frame's len field, data bytes, reserved. */
static void send_piece_x(int fd, uint64_t off, uint32_t len, const void *data, size_t n, uint32_t rsv)
{
	uint8_t b[LM_FRAME_HDR + LM_DEVSTATE_FIXED];

	lm__enc_frame(b, LM_KIND_DEVSTATE, 0, (uint32_t)(LM_DEVSTATE_FIXED + n));
	lm__put64(b + LM_FRAME_HDR, off);
	lm__put32(b + LM_FRAME_HDR + 8, len);
	lm__put32(b + LM_FRAME_HDR + 12, rsv);
	put(fd, b, sizeof(b));
	if (n)
		put(fd, data, n);
}

static void send_piece(int fd, uint64_t off, const char *data)
{
	send_piece_x(fd, off, (uint32_t)strlen(data), data, strlen(data), 0);
}

static void send_end(int fd, uint64_t total, const void *state)
{
	uint8_t b[LM_FRAME_HDR + LM_DEVSTATE_END_LEN];
	lm__devstate_end d = {total, 0};

	CHECK_EQ(lm_region_checksum(state, total, &d.checksum), 0);
	put(fd, b, lm__enc_devstate_end(b, &d));
}

static void complete(sess *s)
{
	lm__region_sum sum = {0, s->x.len, 0};

	CHECK_EQ(lm_region_checksum(s->x.base, s->x.len, &sum.checksum), 0);
	send_complete(s->fd[0], &sum, 1);
}

static int open_ds(sess *s, int nch, uint64_t max)
{
	rxopt o = {.device_state = load, .device_state_max = max, .timeout_ms = 2000};
	uint64_t offer[4] = {LM_FEAT_DEVSTATE, LM_FEAT_DEVSTATE, LM_FEAT_DEVSTATE, LM_FEAT_DEVSTATE};

	reset();
	return sess_open_x(s, &o, nch, offer, LM_FEAT_DEVSTATE, -1, NULL);
}

static void fails(const char *name, sess *s, int code, int chan, const char *field)
{
	int f0 = lm_test_failures;
	want w = {.code = code, .chan = chan, .field = field, .err_fd = chan >= 0 ? chan : 0};

	outcome(name, &s->x, s->fd, s->n, &w);
	CHECK_EQ(ends, 0);
	report(name, f0, &s->x);
	rx_free(&s->x);
}

int main(void)
{
	sess s;

	signal(SIGPIPE, SIG_IGN);
	/* One channel: a piece that is not next can never become next. */
	if (!open_ds(&s, 1, 0)) {
		send_piece(s.fd[0], 5, "later");
		fails("devstate_gap", &s, LM_EFIELD, 0, "devstate.offset 5: the piece at offset 0 did not come");
	}
	if (!open_ds(&s, 1, 0)) {
		send_piece(s.fd[0], 0, "abcd");
		send_piece(s.fd[0], 0, "abcd");
		fails("devstate_twice", &s, LM_EFIELD, 0, "a piece sent twice");
	}
	if (!open_ds(&s, 1, 0)) {
		send_piece_x(s.fd[0], 0, 0, NULL, 0, 0);
		fails("devstate_empty_piece", &s, LM_EFIELD, 0, "devstate.length");
	}
	if (!open_ds(&s, 1, 0)) {
		send_piece_x(s.fd[0], 0, 4, "abcd", 4, 1);
		fails("devstate_reserved", &s, LM_EFIELD, 0, "devstate.reserved");
	}
	if (!open_ds(&s, 1, 0)) {
		send_piece_x(s.fd[0], 0, 5, "abcd", 4, 0);
		fails("devstate_len_mismatch", &s, LM_EFIELD, 0, "devstate.len");
	}
	if (!open_ds(&s, 1, 0)) {
		send_piece_x(s.fd[0], UINT64_MAX - 1, 4, "abcd", 4, 0);
		fails("devstate_offset_huge", &s, LM_EFIELD, 0, "devstate.offset");
	}
	if (!open_ds(&s, 1, 6)) { /* the receiver's cap: 6 bytes */
		send_piece(s.fd[0], 0, "abcd");
		send_piece(s.fd[0], 4, "efg");
		fails("devstate_over_cap", &s, LM_ELIMIT, 0, "device_state_max");
		CHECK_EQ(got_next, 4);
	}
	if (!open_ds(&s, 1, 0)) {
		send_piece(s.fd[0], 0, "abcd");
		send_sync(s.fd[0], 0, 0);
		complete(&s);
		fails("devstate_no_end", &s, LM_EKIND, 0, "complete before devstate_end");
	}
	if (!open_ds(&s, 1, 0)) {
		send_piece(s.fd[0], 0, "abcd");
		send_sync(s.fd[0], 0, 0);
		send_end(s.fd[0], 8, "abcdefgh");
		complete(&s);
		fails("devstate_end_total", &s, LM_EFIELD, 0, "devstate_end.total 8, but 4 bytes");
	}
	if (!open_ds(&s, 1, 0)) {
		send_piece(s.fd[0], 0, "abcd");
		send_sync(s.fd[0], 0, 0);
		send_end(s.fd[0], 4, "abce");
		complete(&s);
		fails("devstate_end_checksum", &s, LM_ECHECKSUM, 0, "device state: checksum");
	}
	if (!open_ds(&s, 1, 0)) {
		send_piece(s.fd[0], 0, "abcd");
		send_end(s.fd[0], 4, "abcd"); /* before the sync */
		fails("devstate_end_before_sync", &s, LM_EKIND, 0, "devstate_end on channel 0");
	}
	if (!open_ds(&s, 1, 0)) {
		send_sync(s.fd[0], 0, 0);
		send_piece(s.fd[0], 0, "abcd"); /* after the last sync */
		send_end(s.fd[0], 4, "abcd");
		complete(&s);
		fails("devstate_after_sync", &s, LM_EKIND, 0, "after its last sync");
	}
	if (!open_ds(&s, 2, 0)) {
		send_sync(s.fd[0], 0, 0);
		send_sync(s.fd[1], 0, 0);
		send_end(s.fd[1], 0, "");
		fails("devstate_end_channel_1", &s, LM_EKIND, 1, "devstate_end on channel 1");
	}
	/* Two channels: channel 0 holds a later piece while channel 1 ends the
	 * round without the one before it. */
	if (!open_ds(&s, 2, 0)) {
		send_piece(s.fd[0], 4, "efgh");
		sleep_ms(50);
		send_sync(s.fd[1], 0, 0);
		fails("devstate_missing_piece", &s, LM_EFIELD, 0, "the piece at offset 0 did not come");
	}
	/* A session without the feature. */
	{
		rxopt o = {.timeout_ms = 2000};
		int f0 = lm_test_failures;
		want w = {.code = LM_EKIND, .chan = 0, .field = "did not agree the devstate feature", .err_fd = 0};
		if (!sess_open(&s, &o, 1)) {
			send_piece(s.fd[0], 0, "abcd");
			outcome("devstate_not_agreed", &s.x, s.fd, s.n, &w);
			report("devstate_not_agreed", f0, &s.x);
			rx_free(&s.x);
		}
	}
	/* Pieces out of arrival order over two channels: handed over in order. */
	if (!open_ds(&s, 2, 0)) {
		int f0 = lm_test_failures;
		send_piece(s.fd[1], 4, "efgh");
		sleep_ms(50); /* channel 1's piece waits */
		send_piece(s.fd[0], 0, "abcd");
		send_piece(s.fd[1], 8, "ij");
		send_sync(s.fd[0], 0, 0);
		send_sync(s.fd[1], 0, 0);
		send_end(s.fd[0], 10, "abcdefghij");
		complete(&s);
		CHECK_EQ(expect_ack(s.fd[0], LM_KIND_COMPLETE), 0);
		close(s.fd[0]);
		close(s.fd[1]);
		rx_join(&s.x);
		CHECK_EQ(s.x.rc, 0);
		CHECK_EQ(bad_order, 0);
		CHECK_EQ(ends, 1);
		CHECK(memcmp(st_got, "abcdefghij", 10) == 0);
		report("devstate_reordered", f0, &s.x);
		rx_free(&s.x);
	}
	TEST_DONE("test_devstate_reject");
}
