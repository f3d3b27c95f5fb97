/*
 * Wire protocol v2: frame layouts, encoders and checked decoders.
 * docs/protocol.md is the specification; tests/test_wire.c checks this file
 * against it. Everything is big-endian. Decoders never trust a value: each
 * returns 0 or an LM_E* code and writes the offending field's name into err.
 */
#ifndef LM_WIRE_H
#define LM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "livemig.h"

#define LM_MAGIC 0x4C4D4947u /* "LMIG" */

enum lm__kind {
	LM_KIND_HELLO = 1,
	LM_KIND_REGION = 2,
	LM_KIND_DATA = 3,
	LM_KIND_SYNC = 4,
	LM_KIND_COMPLETE = 5,
	LM_KIND_ERROR = 6,
	LM_KIND_ACK = 7,
	LM_KIND_FEEDBACK = 8,
	LM_KIND_DEVSTATE = 9,     /* a piece of the device state (LM_FEAT_DEVSTATE) */
	LM_KIND_DEVSTATE_END = 10,/* its size and checksum, before COMPLETE */
	LM_KIND_MAX = 10,
};

/* Fixed sizes of the frame header and of each kind's fixed body part. */
#define LM_FRAME_HDR 12u
#define LM_HELLO_LEN 64u
#define LM_REGION_FIXED 20u
#define LM_DATA_HDR 40u
#define LM_SYNC_LEN 16u
#define LM_COMPLETE_FIXED 8u
#define LM_COMPLETE_ENTRY 24u
#define LM_ACK_LEN 32u
#define LM_ERROR_FIXED 12u
#define LM_ERROR_MAX_MSG 1024u
#define LM_FEEDBACK_CODECS 8u /* codec ids 0..7 */
#define LM_FEEDBACK_LEN (24u + 16u * LM_FEEDBACK_CODECS)
#define LM_DEVSTATE_FIXED 16u
#define LM_DEVSTATE_MAX_PIECE (1u << 20) /* data bytes in one DEVSTATE frame */
#define LM_DEVSTATE_END_LEN 16u

/* Feature bits (hello.features / hello.required). The receiver refuses any
 * required bit it does not know and ignores unknown optional ones.
 * ROUND_ACK: once every channel synced round r, the receiver answers on
 * channel 0 with ACK(SYNC) carrying r: the sender then knows the round was
 * applied, not only written (live pre-copy measures rounds with it). */
#define LM_FEAT_ROUND_ACK (1ull << 0)
/* REF: DATA may carry ref pages ("same content as that page", 16-byte ref
 * table); DELTA: DATA may carry delta pages (XOR runs against the version
 * the receiver holds), see docs/protocol.md, "Ref and delta pages". */
#define LM_FEAT_REF (1ull << 1)
#define LM_FEAT_DELTA (1ull << 2)
/* MIXED: each DATA packet may carry any codec the receiver knows
 * (hello.codec is then LM_CODEC_AUTO), and every receiver channel reports
 * its decode costs in FEEDBACK frames (codec auto, docs/protocol.md).
 * hello.codec is 255 exactly when hello.required has it; offered without
 * being required (with another codec) it is not accepted. */
#define LM_FEAT_MIXED (1ull << 3)
/* DEVSTATE: the session carries the application's device state, in
 * DEVSTATE pieces before the last round's SYNC and a DEVSTATE_END before
 * COMPLETE (docs/protocol.md). A sender with device state requires it, so
 * a receiver that does not know it refuses the session. */
#define LM_FEAT_DEVSTATE (1ull << 4)
/* SEALED: under TLS, once a channel's hello was acknowledged, its frames
 * travel in livemig's sealed records keyed from the channel's TLS exporter
 * instead of TLS records (src/transport/seal.c, docs/protocol.md). Required
 * by a TLS sender, refused in plaintext. */
#define LM_FEAT_SEALED (1ull << 5)
/* PACKED: a DATA packet's tables are varints (docs/protocol.md, "Packed
 * tables"): a page's offset as the step from the page before, a ref's
 * source as the step from its own page, lengths only where the codec has
 * them. The fixed tables spend 8 bytes on every offset and 16 on a ref:
 * 3.5% of what zstd moves of a guest's memory. */
#define LM_FEAT_PACKED (1ull << 6)
#define LM_FEAT_KNOWN (LM_FEAT_ROUND_ACK | LM_FEAT_REF | LM_FEAT_DELTA | LM_FEAT_MIXED | \
		       LM_FEAT_DEVSTATE | LM_FEAT_SEALED | LM_FEAT_PACKED)
/* Fixed sizes of a ref and a delta table entry. */
#define LM_REF_ENTRY 16u
#define LM_DELTA_ENTRY 8u
/* Bytes a page may take in either format's tables: at most an offset and a
 * ref entry (fixed 8 + 16; packed at most 8 + 2 + 5 + 8 for a ref page).
 * The receiver's table buffer and the sender's header buffer hold this per
 * page, and a packed table longer than this per page is refused. */
#define LM_DATA_PAGE_TABLES 28u

/* data.codec_flags: low 8 bits = codec of this packet's payload (the
 * session's codec, or none when the sender fell back to raw for the whole
 * packet; under MIXED any codec the receiver knows); high 8 bits are
 * per-packet codec flags, none defined in v1. */
#define LM_PKT_CODEC_MASK 0x00ffu
#define LM_PKT_FLAGS_KNOWN 0x0000u

/* Error text buffer used by all checked decoders. */
typedef struct lm__err {
	char msg[256];
	uint32_t page; /* per-page decoders: index + 1 of the bad page, 0 = none */
} lm__err;

void lm__err_set(lm__err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A string from the peer (region name, error text), made safe to print:
 * printable ASCII except backslash is kept, every other byte becomes \xNN,
 * so no peer can end a line, fake one or send a terminal control. Writes at
 * most cap bytes, always NUL-terminated (cap > 0); text that does not fit
 * ends in "..." and no escape is cut. Returns the length written. */
size_t lm__escape(char *dst, size_t cap, const char *src, size_t len);

typedef struct lm__frame {
	uint8_t kind;
	uint8_t flags;
	uint32_t len; /* body bytes that follow the 12-byte header */
} lm__frame;

typedef struct lm__hello {
	uint16_t version;
	uint8_t session[16];
	uint16_t channel;
	uint16_t channels;
	uint32_t page_size;
	uint16_t codec;
	uint32_t packet_pages;
	uint32_t region_count;
	uint64_t features;
	uint64_t required;
} lm__hello;

typedef struct lm__region_msg {
	uint32_t id;
	uint64_t len;
	uint16_t name_len;
	char name[LM_MAX_REGION_NAME + 1]; /* NUL-terminated copy */
} lm__region_msg;

typedef struct lm__data_hdr {
	uint64_t packet_num;
	uint32_t region;
	uint32_t round;
	uint32_t pages;   /* normal + zero + ref + delta */
	uint32_t normal;
	uint32_t zero;
	uint32_t ref;     /* "same content as that page" (LM_FEAT_REF) */
	uint32_t payload; /* sum of the normal pages' encoded lengths */
	uint16_t codec_flags;
	uint16_t delta;   /* XOR runs against the receiver's version (LM_FEAT_DELTA) */
	/* Not on the wire: the delta area's pages (its encodings, zero-padded
	 * to whole pages, travel after the normal pages through the codec).
	 * The decoder derives it from the frame length (fixed tables) or from
	 * the delta entries (packed); the sender sets it. */
	uint32_t area;
	/* Not on the wire either: the tables' bytes after the header. Fixed
	 * tables: lm__data_tables_len(); packed: what the frame length leaves
	 * after the header and the payload. Set by lm__dec_data_hdr(). */
	uint32_t tables;
} lm__data_hdr;

/* A ref page: the destination copies its content from the page at
 * src_offset of region src_region, as that page landed in round src_round
 * (the packet's round: it lands in this round; an earlier one: it has not
 * landed since). */
typedef struct lm__ref {
	uint32_t src_region;
	uint32_t src_round;
	uint64_t src_offset;
} lm__ref;

/* A delta page: len bytes of XOR runs (src/codec/delta.h) to apply to the
 * version that landed in base_round. */
typedef struct lm__delta {
	uint32_t base_round;
	uint32_t len;
} lm__delta;

typedef struct lm__sync {
	uint32_t round;
	uint64_t packets;
} lm__sync;

typedef struct lm__region_sum {
	uint32_t id;
	uint64_t len;
	uint64_t checksum;
} lm__region_sum;

typedef struct lm__ack {
	uint8_t kind;   /* the kind acknowledged: HELLO, SYNC or COMPLETE */
	int32_t status; /* 0 */
	uint64_t features; /* ACK(HELLO): accepted; ACK(SYNC): the round */
	uint8_t session[16];
} lm__ack;

typedef struct lm__error_msg {
	int32_t code;
	uint16_t channel;
	uint16_t msg_len; /* bytes on the wire */
	char msg[4 * LM_ERROR_MAX_MSG + 1]; /* escaped (lm__escape): safe to print */
} lm__error_msg;

/* FEEDBACK (receiver -> sender, on each channel, LM_FEAT_MIXED only): what
 * the receiver's channel spent, cumulative since the channel's hello, so a
 * lost or late frame loses nothing. The sender's codec auto reads the
 * decode speed per codec and how busy the receiver is from it. */
typedef struct lm__feedback {
	uint32_t round;   /* the channel's current round */
	uint64_t cpu_ns;  /* the channel thread's busy time: CPU, and waiting for a CPU */
	uint64_t wall_ns; /* wall time since the channel's hello */
	struct {
		uint64_t pages; /* pages decoded (normal + delta area) */
		uint64_t ns;    /* wall time spent decoding them */
	} codec[LM_FEEDBACK_CODECS];  /* by codec id */
} lm__feedback;
_Static_assert(LM_FEEDBACK_CODECS == LM_MAX_CODECS, "FEEDBACK carries one entry per codec id");

/* DEVSTATE: len bytes of device state at byte offset off follow the
 * 16-byte fixed part. DEVSTATE_END: the state's size and its checksum
 * (the region checksum of docs/protocol.md over its bytes). */
typedef struct lm__devstate {
	uint64_t off;
	uint32_t len;
} lm__devstate;

typedef struct lm__devstate_end {
	uint64_t total;
	uint64_t checksum;
} lm__devstate_end;

/* A receiver channel sends FEEDBACK after a DATA when this long passed
 * since its last one (LM__FEEDBACK_FIRST_US in its first 200 ms of data,
 * as the sender decides every 10-25 ms then), and after every SYNC
 * (docs/protocol.md). */
#define LM__FEEDBACK_US 100000u
#define LM__FEEDBACK_FIRST_US 20000u

/* The features a hello asks for: offered or required (a required bit is
 * offered too), known to this build, MIXED only with codec auto. */
uint64_t lm__hello_features(const lm__hello *h);

/* Session-wide limits a data header is checked against. */
typedef struct lm__limits {
	uint32_t page_size;
	uint32_t packet_pages;
	uint16_t codec;         /* LM_CODEC_AUTO: any known codec (MIXED) */
	uint32_t round;         /* the channel's current round */
	uint32_t region_count;  /* ids are 0..region_count-1 */
	const uint64_t *region_len; /* bytes per region */
	uint64_t features;      /* the session's LM_FEAT_* */
} lm__limits;

/* Byte-order helpers. */
static inline void lm__put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void lm__put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void lm__put64(uint8_t *p, uint64_t v) { lm__put32(p, (uint32_t)(v >> 32)); lm__put32(p + 4, (uint32_t)v); }
static inline uint16_t lm__get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t lm__get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t lm__get64(const uint8_t *p) { return ((uint64_t)lm__get32(p) << 32) | lm__get32(p + 4); }

/* Encoders write a whole frame (header + fixed body) and return its length.
 * Buffers must hold at least the size the *_bound/constant gives. */
size_t lm__enc_frame(uint8_t *p, uint8_t kind, uint8_t flags, uint32_t len);
size_t lm__enc_hello(uint8_t *p, const lm__hello *h);
size_t lm__enc_region(uint8_t *p, const lm__region_msg *r); /* LM_FRAME_HDR + LM_REGION_FIXED + 255 */
/* Data: header only; offsets/lengths/payload follow (see lm__data_body_len). */
size_t lm__enc_data_hdr(uint8_t *p, const lm__data_hdr *d, uint32_t body_len);
size_t lm__enc_sync(uint8_t *p, const lm__sync *s);
size_t lm__enc_complete(uint8_t *p, const lm__region_sum *sums, uint32_t n);
size_t lm__complete_bound(uint32_t n);
size_t lm__enc_ack(uint8_t *p, const lm__ack *a);
size_t lm__enc_error(uint8_t *p, int32_t code, uint16_t channel, const char *msg);
size_t lm__enc_feedback(uint8_t *p, const lm__feedback *f); /* LM_FRAME_HDR + LM_FEEDBACK_LEN */
/* DEVSTATE: header and fixed part only, the len data bytes follow. */
size_t lm__enc_devstate(uint8_t *p, const lm__devstate *d); /* LM_FRAME_HDR + LM_DEVSTATE_FIXED */
size_t lm__enc_devstate_end(uint8_t *p, const lm__devstate_end *d);
#define LM_ERROR_FRAME_BOUND (LM_FRAME_HDR + LM_ERROR_FIXED + LM_ERROR_MAX_MSG)

/* Body length a data packet with these counts must announce (64-bit: the
 * 32-bit counts cannot overflow it). */
uint64_t lm__data_body_len(const lm__data_hdr *d);

/* Checked decoders. Each takes exactly the bytes of its part. */
int lm__dec_frame(const uint8_t *p, lm__frame *f, lm__err *e);
int lm__dec_hello(const uint8_t *p, uint32_t len, lm__hello *h, lm__err *e);
int lm__dec_region(const uint8_t *p, uint32_t len, lm__region_msg *r, lm__err *e);
int lm__dec_data_hdr(const uint8_t *p, uint32_t body_len, const lm__limits *lim, lm__data_hdr *d,
		     lm__err *e);
/* Validates the offset and length tables that follow a data header:
 * offsets (normal + zero) x be64, then normal x be32 lengths. Decoded into
 * off[] and plen[] (capacity d->pages and d->normal). */
/* The ref and delta tables (at p, right after the offsets) into refs[] and
 * deltas[]: fields in range, no ref to itself, the delta area's size. */
int lm__dec_data_kinds(const uint8_t *p, const lm__data_hdr *d, const lm__limits *lim,
		       const uint64_t *off, lm__ref *refs, lm__delta *deltas, lm__err *e);
/* Bytes of the tables after the data header (offsets, refs, deltas, lengths). */
uint64_t lm__data_tables_len(const lm__data_hdr *d);
int lm__dec_data_tables(const uint8_t *p, const lm__data_hdr *d, const lm__limits *lim,
			uint64_t *off, uint32_t *plen, lm__err *e);
/* The checks of a table entry both formats share (wire.c), each naming
 * entry i's field in e: a length for the codec, the payload against the
 * lengths' sum or the codec's bound, a ref or delta entry of the page at
 * offset own. */
struct lm__codec_ops;
int lm__data_check_length(uint32_t i, uint32_t len, const struct lm__codec_ops *ops,
			  const lm__limits *lim, lm__err *e);
int lm__data_check_payload_sum(const lm__data_hdr *d, const struct lm__codec_ops *ops,
			       uint64_t sum, lm__err *e);
/* The payload within the codec's bound for that many pages. */
int lm__data_check_payload_bound(const lm__data_hdr *d, const struct lm__codec_ops *ops,
				 const lm__limits *lim, uint32_t pages, lm__err *e);
int lm__data_check_ref(uint32_t i, const lm__data_hdr *d, const lm__limits *lim, uint64_t own,
		       const lm__ref *r, lm__err *e);
int lm__data_check_delta(uint32_t i, const lm__data_hdr *d, const lm__limits *lim, uint64_t own,
			 const lm__delta *dl, lm__err *e);
/* Packed tables (LM_FEAT_PACKED, wire_packed.c): the offsets of the normal, zero, ref and
 * delta pages (off[k] holds d's count of each), the ref and delta entries,
 * and with_lens the normal and delta area pages' lengths (a codec with
 * per-page lengths: lens[] has normal + area entries). Writes at most
 * LM_DATA_PAGE_TABLES bytes a page; returns the bytes written. */
size_t lm__enc_data_packed(uint8_t *p, const lm__data_hdr *d, uint32_t page_size,
			   const uint64_t *const off[4], const lm__ref *refs, const lm__delta *deltas,
			   const uint32_t *lens, int with_lens);
/* The d->tables bytes at p of a packed packet, checked as the fixed tables
 * are (lm__dec_data_tables and lm__dec_data_kinds) and canonical (every
 * varint in its shortest form, no byte left over), into off[] (d->pages),
 * refs[], deltas[] and plen[] (d->normal + d->area: the page size where the
 * codec has no lengths); sets d->area from the delta lengths. */
int lm__dec_data_packed(const uint8_t *p, lm__data_hdr *d, const lm__limits *lim, uint64_t *off,
			uint32_t *plen, lm__ref *refs, lm__delta *deltas, lm__err *e);
int lm__dec_sync(const uint8_t *p, uint32_t len, lm__sync *s, lm__err *e);
int lm__dec_complete(const uint8_t *p, uint32_t len, lm__region_sum *sums, uint32_t cap,
		     uint32_t *n, lm__err *e);
int lm__dec_ack(const uint8_t *p, uint32_t len, lm__ack *a, lm__err *e);
int lm__dec_feedback(const uint8_t *p, uint32_t len, lm__feedback *f, lm__err *e);
int lm__dec_error(const uint8_t *p, uint32_t len, lm__error_msg *m, lm__err *e);
/* p: the 16-byte fixed part of a DEVSTATE frame whose body is len bytes. */
int lm__dec_devstate(const uint8_t *p, uint32_t len, lm__devstate *d, lm__err *e);
int lm__dec_devstate_end(const uint8_t *p, uint32_t len, lm__devstate_end *d, lm__err *e);

/* Largest body a frame of this kind may announce for this page/packet size. */
uint64_t lm__max_body(uint8_t kind, uint32_t page_size, uint32_t packet_pages);

const char *lm__kind_name(uint8_t kind);

#endif
