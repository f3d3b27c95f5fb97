/*
 * livemig: the migration data plane.
 *
 * Moves memory regions (a VM's guest RAM, a process's heap, a memory image)
 * from one host to another over several parallel channels (TCP, UNIX-domain
 * sockets or pre-connected fds), each under mutually authenticated TLS 1.3
 * when an lm_tls_config is given (docs/security.md).
 *
 * Conventions (as in libuv and zstd):
 *  - every function returns 0 or a negative errno-style code (LM_E*);
 *    lm_strerror() names a code; the handle's lm_*_errmsg() gives the detail
 *    of its last failure (channel, packet, field). There is no global state.
 *  - handles are opaque; every lm_x_new() has an lm_x_free() that accepts NULL.
 *  - thread safety is stated on each type, and for each callback the
 *    thread it runs on.
 *  - a configuration mistake is LM_EINVAL with a message naming the field
 *    ("lm_sender_config: channels: 65 is out of range 1..64"): lm_*_new()
 *    then still gives a handle (in the failed state: every other call
 *    fails with LM_EINVAL) so that lm_*_errmsg() can say it; free it with
 *    lm_*_free() as any other. Only -ENOMEM (and a NULL out) leave *out NULL.
 */
#ifndef LIVEMIG_H
#define LIVEMIG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every function of the API is exported from the shared library; nothing
 * else is (the library is built with -fvisibility=hidden). Default
 * visibility on a declaration costs a program using the header nothing. */
#if defined(__GNUC__) || defined(__clang__)
#define LM_API __attribute__((visibility("default")))
#else
#define LM_API
#endif

/* ---- version and ABI policy --------------------------------------------- */

/* The version of this header. lm_version() and lm_version_number() give the
 * library's, which a program linked to the shared library may find newer. */
#define LM_VERSION_MAJOR 0
#define LM_VERSION_MINOR 2
#define LM_VERSION_PATCH 0
#define LM_VERSION_NUMBER ((LM_VERSION_MAJOR << 16) | (LM_VERSION_MINOR << 8) | LM_VERSION_PATCH)
#define LM_PROTOCOL_VERSION 2

/* ABI policy.
 *  - The shared library's SONAME is liblivemig.so.MAJOR (liblivemig.so.0
 *    -> liblivemig.so.0.2.0): MAJOR changes only when a program built
 *    against an older header of the same MAJOR could break: a function
 *    removed or changed, a field moved or retyped, an enum value renumbered.
 *    MINOR grows with additions (functions, fields at the end of a struct,
 *    enum values, error codes); PATCH with fixes.
 *  - The structs the application allocates (lm_sender_config,
 *    lm_receiver_config, lm_live_config, lm_tls_config, lm_stats) grow only
 *    at their end, and each begins with `uint32_t size`: the sizeof of the
 *    struct as the application was compiled. Initialise each with its
 *    LM_*_INIT macro (which sets size and zeroes the rest, so every field
 *    not set takes its default), e.g.
 *        lm_sender_config cfg = LM_SENDER_CONFIG_INIT;
 *        cfg.channels = 4;
 *    The library reads only the caller's size bytes (fields past them take
 *    their defaults) and writes only that many into an lm_stats. A size
 *    below this ABI's first one (0 included: a struct not initialised so)
 *    or above the library's own (a program built against a newer header
 *    than the library it runs with) is refused with LM_EABI, and the
 *    handle's errmsg, where there is one, names the struct and both sizes.
 *  - lm_stats handed to a callback (progress) is the library's: its size
 *    is at least the caller's, fields past the caller's are to be ignored. */
#ifdef __cplusplus /* C++11: value-initialised, no missing-initializer warning */
#define LM__SIZED_INIT(type) ([] { type v_{}; v_.size = sizeof(type); return v_; }())
#else /* designated: no -Wmissing-field-initializers */
#define LM__SIZED_INIT(type) {.size = sizeof(type)}
#endif
#define LM_SENDER_CONFIG_INIT LM__SIZED_INIT(lm_sender_config)
#define LM_RECEIVER_CONFIG_INIT LM__SIZED_INIT(lm_receiver_config)
#define LM_LIVE_CONFIG_INIT LM__SIZED_INIT(lm_live_config)
#define LM_TLS_CONFIG_INIT LM__SIZED_INIT(lm_tls_config)
#define LM_STATS_INIT LM__SIZED_INIT(lm_stats)

/* The library's version, "0.2.0", and the same as MAJOR<<16 | MINOR<<8 |
 * PATCH (0x000200). Thread-safe. */
LM_API const char *lm_version(void);
LM_API uint32_t lm_version_number(void);

/* ---- limits ------------------------------------------------------------ */

#define LM_MAX_CHANNELS 64
#define LM_DEFAULT_CHANNELS 2
#define LM_MAX_PACKET_PAGES 1024 /* receiver's hard cap on pages per packet */
#define LM_DEFAULT_PACKET_PAGES 128 /* 512 KiB of 4 KiB pages, as QEMU */
#define LM_MIN_PAGE_SIZE 4096u
#define LM_MAX_PAGE_SIZE 65536u
#define LM_MAX_REGIONS 256
#define LM_MAX_REGION_NAME 255
#define LM_DEFAULT_TIMEOUT_MS 30000
#define LM_DEFAULT_DELTA_CACHE (64ull << 20) /* bytes, as QEMU's xbzrle-cache-size */
#define LM_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000
#define LM_DEFAULT_MAX_HANDSHAKES 16
#define LM_DEFAULT_MAX_HANDSHAKES_PER_HOST 4
#define LM_DEFAULT_DEVICE_STATE_MAX (1ull << 30) /* bytes of device state, both sides */

/* ---- errors ------------------------------------------------------------ */

/* System errors are returned as -errno (e.g. -ECONNRESET). livemig's own
 * codes live above the errno range. */
enum {
	LM_EPROTO_BASE = -4000,
	LM_EBADMAGIC = -4001,     /* frame magic wrong */
	LM_EVERSION = -4002,      /* unsupported protocol version */
	LM_ESESSION = -4003,      /* session id does not match */
	LM_EFIELD = -4004,        /* a field's value is invalid (see errmsg) */
	LM_ECODEC = -4005,        /* unknown or unsupported codec */
	LM_EFEATURE = -4006,      /* required feature not supported */
	LM_EKIND = -4007,         /* unknown or unexpected packet kind */
	LM_ECHECKSUM = -4008,     /* region checksum mismatch */
	LM_EPEER = -4009,         /* the peer reported an error (see errmsg) */
	LM_ETIMEDOUT = -4010,     /* the peer stalled longer than the timeout */
	LM_EEOF = -4011,          /* the peer closed the connection mid-stream */
	LM_EREGION = -4012,       /* region missing, mismatched or too many */
	LM_ESTATE = -4013,        /* call not valid in the handle's state */
	LM_EDECODE = -4014,       /* a page did not decode to exactly one page */
	LM_ECONVERGE = -4015,     /* live: the limits came before convergence */
	LM_ETLS = -4016,          /* TLS handshake or record failure (see errmsg) */
	LM_EAUTH = -4017,         /* the peer is not the one we accept (see errmsg) */
	LM_ELIMIT = -4018,        /* a limit was exceeded (see errmsg): a receiver's,
				     or device_state_max on either side */
	LM_EABI = -4030,          /* a struct's size field is not one this library
				     knows (ABI policy above; see errmsg) */
	LM_ECANCELED = -125,      /* lm_*_cancel() (== -ECANCELED) */
	LM_EINVAL = -22,          /* an argument is invalid (== -EINVAL) */
};

/* Name of an error code: never NULL, also for system codes (-errno). */
LM_API const char *lm_strerror(int err);

/* ---- codecs ------------------------------------------------------------ */

typedef enum lm_codec_id {
	LM_CODEC_NONE = 0,    /* pages travel raw */
	LM_CODEC_DEFLATE = 1, /* per page, raw DEFLATE (IAA's format), accelerator first */
	LM_CODEC_ZSTD = 2,    /* per packet */
	LM_CODEC_LZ4 = 3,     /* per packet */
	LM_CODEC_ZLIB = 4,    /* per packet, zlib stream */
	/* Sender only: chooses per packet among the codecs above from what
	 * it measures (link rate, compress speed and ratio, the receiver's
	 * decode speed, spare CPU); the CLI's default. Never on the wire as
	 * a packet's codec. */
	LM_CODEC_AUTO = 255,
} lm_codec_id;
#define LM_MAX_CODECS 8 /* codec ids 0..7: the size of lm_stats.codec_mix */

/* "none", "deflate", "zstd", "lz4", "zlib", "auto"; returns 0 or LM_ECODEC. */
LM_API int lm_codec_from_name(const char *name, lm_codec_id *out);
LM_API const char *lm_codec_name(lm_codec_id id); /* NULL for unknown ids */

/* Accelerator use for deflate: auto = use one when its device is usable. */
typedef enum lm_accel {
	LM_ACCEL_AUTO = 0,
	LM_ACCEL_QPL = 1, /* require Intel IAA through QPL: fail if unusable */
	LM_ACCEL_OFF = 2,
} lm_accel;

/* Software engine for deflate (after the accelerator, before raw). */
typedef enum lm_engine_id {
	LM_ENGINE_DEFAULT = 0, /* isal */
	LM_ENGINE_ISAL = 1,    /* ISA-L igzip */
	LM_ENGINE_ZLIB = 2,    /* zlib, the reference implementation */
	LM_ENGINE_QPL_SW = 3,  /* QPL's software path (when built with QPL) */
} lm_engine_id;

LM_API int lm_accel_from_name(const char *name, lm_accel *out);   /* auto|qpl|off */
LM_API int lm_engine_from_name(const char *name, lm_engine_id *out); /* isal|zlib|qpl-sw */

/* ---- statistics (QEMU `info migrate` style) ----------------------------- */

typedef enum lm_status {
	LM_STATUS_NONE = 0,
	LM_STATUS_SETUP,
	LM_STATUS_ACTIVE,
	LM_STATUS_COMPLETED,
	LM_STATUS_FAILED,
} lm_status;

/* Per engine (accelerator, software engine, per-packet codec library). */
#define LM_MAX_ENGINES 4
typedef struct lm_engine_stats {
	char name[16];          /* "qpl", "isal", "zlib", "qpl-sw", "zstd", "lz4" */
	uint64_t jobs;          /* pages (per-page codecs) or packets given to it */
	uint64_t busy_retries;  /* submissions refused as busy and tried again */
	uint64_t fallbacks;     /* jobs handed on to software (busy after the
				   retries, or the job failed) */
	uint64_t raw;           /* pages sent raw: output did not fit, or failed */
	uint64_t bytes_in, bytes_out;
} lm_engine_stats;

/* Data packets of one codec: how many, their page bytes before encoding
 * (normal pages and delta areas), their payload bytes on the wire. */
typedef struct lm_codec_mix {
	uint64_t packets, bytes_in, bytes_out;
} lm_codec_mix;

typedef struct lm_stats {
	uint32_t size;          /* sizeof as compiled: set by its LM_*_INIT (ABI policy) */
	lm_status status;
	int is_receiver;
	uint32_t channels;
	uint32_t page_size;
	lm_codec_id codec;
	uint64_t total_time_us;  /* from start to completion (or failure) */
	uint64_t setup_time_us;  /* connect + handshake until the first data packet */
	uint64_t transferred;    /* bytes on the wire, all frames both ways */
	uint64_t total_ram;      /* sum of region lengths */
	uint64_t duplicate_pages;/* zero pages (QEMU's "duplicate") */
	uint64_t normal_pages;   /* pages whose content travelled */
	uint64_t normal_bytes;   /* normal_pages * page_size (before encoding) */
	uint64_t payload_bytes;  /* encoded page bytes on the wire */
	uint64_t packets;        /* data packets */
	double throughput_mbps;  /* transferred * 8 / (total - setup) / 1e6 */
	double pages_per_second; /* (duplicate + normal) / total time */
	double compression_ratio;/* normal_bytes / payload_bytes (1.0 for none) */
	double cpu_seconds;      /* CPU time of this side's threads */
	uint32_t rounds;         /* dirty sync count (1 for a one-pass copy) */
	/* Live migration (lm_sender_migrate); zero for a one-pass copy. */
	int live;                /* 1 when the stats are a live migration's */
	uint64_t dirty_pages;    /* pages dirty at the last sync: what is left */
	uint64_t remaining_bytes;/* dirty_pages * page_size */
	double dirty_pages_rate; /* pages dirtied per second, last round */
	double bandwidth_mbps;   /* page bytes moved per second, last round (Mbit/s) */
	uint64_t expected_downtime_ms; /* at the last sync: the switchover's fixed
				    costs + remaining / bandwidth, with a margin */
	uint64_t downtime_ms;    /* pause to the destination's verified reply */
	uint64_t precopy_bytes;  /* transferred before the pause */
	uint64_t downtime_bytes; /* transferred while paused */
	uint32_t throttle_pct;   /* highest auto-converge throttle applied */
	uint32_t throttle_now_pct; /* the throttle in effect now (0 once migrated) */
	/* The switchover model (src/sender/converge.c): the expected downtime
	 * made when the switchover was decided (0 if none was), and the part
	 * of the last estimate that does not depend on the link's rate: the
	 * last dirty scan, the SYNC and COMPLETE round trips, hashing what is
	 * left on both sides. */
	uint64_t downtime_expected_ms;
	uint64_t downtime_fixed_ms;
	uint64_t skipped_pages;  /* left for the next round: written again before
				    their turn in this one (uffd-wp only) */
	char dirty_source[16];   /* "uffd-wp" or "callback": the one in use */
	char dirty_note[256];    /* LM_DIRTY_AUTO fell back: why uffd-wp was not used */
	/* Security. */
	char tls[64];            /* "TLSv1.3 TLS_AES_128_GCM_SHA256", "" = plaintext */
	char peer[128];          /* the authenticated peer: certificate subject
				    (RFC 2253, the CN first, "CN=...,O=...",
				    ending "..." if cut)
				    or "psk:IDENTITY"; "" in plaintext */
	uint32_t tls_resumed;    /* channels that resumed channel 0's TLS session */
	uint64_t refused;        /* receiver: connections refused (strangers,
				    failed handshakes, over the limits) */
	/* Ref and delta pages (docs/protocol.md, "Ref and delta pages"). */
	uint64_t ref_pages;      /* sent (received) as a ref to a page the
				    destination holds: no content travelled */
	uint64_t ref_saved_bytes;/* ref_pages * page_size - their 16-byte entries */
	uint64_t delta_pages;    /* sent (received) as XOR runs against the
				    destination's earlier version */
	uint64_t delta_bytes;    /* their encodings' bytes (before the codec) */
	uint64_t delta_saved_bytes; /* delta_pages * page_size - delta_bytes */
	uint64_t dedup_index_bytes; /* sender: memory of the content index */
	uint64_t dedup_entries;  /* sender: distinct contents indexed */
	uint64_t dedup_collisions; /* sender: hash matched, bytes differed */
	uint64_t delta_cache_bytes; /* sender: memory of the delta cache */
	uint64_t delta_cache_hits;  /* sender: dirty pages found in the cache */
	uint64_t delta_cache_misses;/* sender: re-sent pages not in it */
	double delta_cache_hit_rate;/* hits / (hits + misses), 0 if none */
	uint32_t n_engines;
	lm_engine_stats engines[LM_MAX_ENGINES];
	/* The codec mix, by codec id (codec auto mixes them; a pinned codec
	 * shows it and none for the packets that did not shrink). */
	lm_codec_mix codec_mix[LM_MAX_CODECS];
	/* Sender, codec auto: its last decision (compress auto_fraction of the
	 * packets with auto_codec, the rest with auto_rest below), the link rate it
	 * estimated, and how many times it decided (every 100 ms of sending).
	 * Zero for a pinned codec and on the receiver. */
	lm_codec_id auto_codec;
	double auto_fraction;
	double auto_link_mbps;
	uint64_t auto_windows;
	/* Device state (lm_sender_config.device_state): bytes sent (received
	 * and handed to the application), and on the sender the time from
	 * the device state callback's start until its last piece was written
	 * to a socket: a live migration's share of the downtime it cost (the
	 * last round's pages, still being written while the callback runs,
	 * are in it too: they share the channels). */
	uint64_t device_state_bytes;
	uint64_t device_state_us;
	/* Sender, codec auto: the codec of the rest of the packets in its
	 * last decision (LM_CODEC_NONE: raw; or a second codec that packs
	 * less than auto_codec, e.g. zstd on a share, lz4 on the rest). */
	lm_codec_id auto_rest;
	/* Live: the device state's bytes the expected downtime counted at the
	 * last sync (lm_sender_config.device_state_size; 0 without it), beside
	 * device_state_bytes, what went. */
	uint64_t device_state_expected_bytes;
} lm_stats;

#define LM_STATS_HUMAN 0
#define LM_STATS_JSON 1
/* Formats st into buf (always NUL-terminated when cap > 0); returns the
 * length the full text needs, like snprintf. */
/* LM_EABI for an lm_stats whose size this library does not know. */
LM_API int lm_stats_format(const lm_stats *st, int format, char *buf, size_t cap);
LM_API const char *lm_status_name(lm_status s);
/* The codec mix of st in one short line, by decreasing share of the page
 * bytes: "lz4 71% none 29%" ("" when no packet went). snprintf semantics,
 * as lm_stats_format(). */
LM_API int lm_stats_mix_line(const lm_stats *st, char *buf, size_t cap);

/* ---- security: TLS 1.3 ---------------------------------------------------- */

/* Mutual authentication, always: with certificates both sides present one
 * and verify the peer's against ca_file; with a PSK both prove they hold
 * the key (TLS 1.3 external PSK with (EC)DHE, so traffic keys stay secret
 * even if the PSK leaks later). Give either cert_file + key_file + ca_file
 * or a PSK. Every channel of a session is bound to channel 0's handshake
 * and channels 1..N resume its TLS session (docs/protocol.md). The struct
 * and its strings are read by lm_sender_connect*() / lm_receiver_listen()
 * or lm_receiver_accept_fds() and need not outlive that call. */
typedef struct lm_tls_config {
	uint32_t size;          /* sizeof as compiled: set by its LM_*_INIT (ABI policy) */
	const char *cert_file;   /* PEM: our certificate (chain) */
	const char *key_file;    /* PEM: its private key */
	const char *ca_file;     /* PEM: the CA(s) the peer's certificate must chain to */
	/* PSK: a file of lines "IDENTITY:HEXKEY" (a 32-byte key as 64 hex
	 * digits, QEMU's keys.psk format) or of exactly 32 raw bytes (identity
	 * "livemig"); or the key in memory (psk, psk_len == 32). */
	const char *psk_file;
	const uint8_t *psk;
	size_t psk_len;
	const char *psk_identity;/* sender: the identity to use (default the
				    file's first); receiver: only this one (default any) */
	/* Sender: the name the receiver's certificate must carry (DNS or IP
	 * subjectAltName, else CN); default the host part of the address
	 * (required for unix: and fd: addresses with certificates). */
	const char *peer_name;
	/* Receiver: client certificate names accepted (CN or DNS SAN), a
	 * NULL-terminated list; NULL = any certificate ca_file vouches for
	 * (like QEMU's tls-authz). */
	const char *const *allow;
	/* Optional: the peer certificate's SHA-256 fingerprint, 64 hex digits
	 * (colons allowed); a different certificate is refused. */
	const char *pin_sha256;
} lm_tls_config;

/* ---- device state --------------------------------------------------------- */

/* The application's own state at the switchover (a VMM's vCPU registers and
 * device models): it travels after the last pages, inside the downtime, on
 * the migration's channels, under the same TLS, and is covered by the
 * verification (a checksum of all of it, checked before the destination
 * acknowledges). Its size need not be known in advance; it is written and
 * received in pieces, so neither side holds all of it (docs/protocol.md,
 * "DEVSTATE"). */
typedef struct lm_devstate_writer lm_devstate_writer;

/* Sender: writes the device state with lm_devstate_write(), in as many calls
 * as it likes, and returns 0; a non-zero return fails the migration (a live
 * workload is resumed). Called once, on the thread that called
 * lm_sender_run() or lm_sender_migrate(): after every page was queued, and
 * in a live migration after the pause callback returned, so the state is
 * the paused workload's. What it writes is in flight when it returns. */
typedef int (*lm_device_state_cb)(void *user, lm_devstate_writer *w);

/* Within the device state callback only, on its thread: appends len bytes
 * (buf may be reused once this returns; len 0 is a no-op). Returns 0, or
 * LM_ELIMIT past device_state_max, or the migration's failure (the receiver
 * refused, a channel broke, lm_sender_cancel()): the callback should then
 * return that code; the migration fails with it whatever it returns. */
LM_API int lm_devstate_write(lm_devstate_writer *w, const void *buf, size_t len);

/* Receiver: the device state, in order, in pieces as they arrive: off is the
 * number of bytes before this piece (0, then the sum of the earlier lens).
 * The end is one more call with buf NULL, len 0 and off = the total size
 * (0 for an empty state), made once the checksum of all of it verified and
 * before the receiver acknowledges the migration; pieces are not verified
 * when they are handed over, so apply the state only at the end call.
 * Return 0, or non-zero to refuse it: the migration fails on both sides (the
 * sender is told "device state refused by the destination", a live source
 * resumes). Called on the receiver's channel threads, one call at a time, in
 * order, not under a lock of the receiver (do not call into it). */
typedef int (*lm_device_state_load_cb)(void *user, uint64_t off, const void *buf, size_t len);

/* ---- sender ------------------------------------------------------------ */

/* Configuration; LM_SENDER_CONFIG_INIT, then set what you need (0 = default). */
typedef struct lm_sender_config {
	uint32_t size;          /* sizeof as compiled: set by its LM_*_INIT (ABI policy) */
	uint32_t channels;     /* 1..LM_MAX_CHANNELS, default 2 */
	uint32_t page_size;    /* power of two 4096..65536, default 4096 */
	uint32_t packet_pages; /* pages per packet 1..LM_MAX_PACKET_PAGES, default 128 */
	lm_codec_id codec;     /* default none; the CLI's default is LM_CODEC_AUTO */
	int level;             /* codec level, 0 = codec default */
	lm_accel accel;        /* deflate: default auto */
	lm_engine_id engine;   /* deflate's software engine: default isal */
	uint32_t busy_retries; /* deflate: tries of a busy accelerator, default 3 */
	int timeout_ms;        /* a stalled peer fails the migration, default 30000 */
	int sndbuf;            /* SO_SNDBUF bytes; 0 = kernel autotuning (up to tcp_wmem's max) */
	const lm_tls_config *tls; /* NULL: plaintext (nothing authenticated) */
	/* A page whose content the destination already holds travels as a
	 * 16-byte ref (found by hash, confirmed by comparing the bytes). */
	int no_dedup;          /* 1: send every copy of a page in full */
	/* Live migration: a page sent again travels as its difference from
	 * the version the destination holds, when that is smaller, from a
	 * cache of the last-sent versions (QEMU's xbzrle-cache-size). */
	int no_delta;          /* 1: send re-sent pages in full */
	uint64_t delta_cache;  /* cache bytes, default 64 MiB */
	/* Device state (above): NULL sends none. A receiver that takes none
	 * refuses a sender that sends some, and the reverse. */
	lm_device_state_cb device_state;
	void *device_state_user;
	uint64_t device_state_max; /* bytes, default LM_DEFAULT_DEVICE_STATE_MAX:
				      more fails the migration with LM_ELIMIT */
	/* Optional, live (lm_sender_migrate): the bytes device_state will
	 * write at the switchover, as the application expects them now (QEMU
	 * asks a VFIO device for its stop-copy size the same way). Called with
	 * device_state_user after every round's dirty sync, on the thread
	 * driving the sender. The expected downtime sends them at the wire rate
	 * of the last round, so a state of many MB is in the decision to switch
	 * over; more than device_state_max counts as device_state_max (so an
	 * "unknown" of UINT64_MAX would hold the switchover back: say 0).
	 * 0, NULL, or no device_state: nothing counted (a few bytes cost
	 * nothing measurable). */
	uint64_t (*device_state_size)(void *user);
} lm_sender_config;

/* A sender moves the regions added to it. Thread safety: one thread drives a
 * sender at a time (new, add_region, connect, run, migrate, errmsg, free);
 * it runs its own channel threads internally. From any thread, also while
 * the driving thread is in a call: lm_sender_cancel(), lm_sender_stats(),
 * lm_sender_switchover(), lm_sender_set_downtime_limit() and
 * lm_sender_set_max_bandwidth() (the cancel and the three controls are
 * async-signal-safe too). The regions' memory must stay mapped and
 * readable until lm_sender_free(). */
typedef struct lm_sender lm_sender;

/* LM_EINVAL: *out is a handle whose lm_sender_errmsg() names the field
 * (see the conventions above); free it. */
LM_API int lm_sender_new(lm_sender **out, const lm_sender_config *cfg);
LM_API void lm_sender_free(lm_sender *s);

/* Adds a region of len bytes at base. name identifies it to the receiver
 * (1..255 bytes, unique). len need not be a multiple of the page size, but
 * the memory up to the next page boundary must be readable (any mmap is). */
LM_API int lm_sender_add_region(lm_sender *s, const char *name, const void *base, uint64_t len);

/* Connects all channels to addr and performs the handshake. addr is
 * "HOST:PORT" or "tcp:HOST:PORT" (IPv4, IPv6 in brackets, or a name),
 * "unix:PATH" (a UNIX-domain socket; "unix:@NAME" for the abstract
 * namespace) or "fd:N[,N...]" (pre-connected sockets, one per channel, as
 * lm_sender_connect_fds()). */
LM_API int lm_sender_connect(lm_sender *s, const char *addr);
/* As lm_sender_connect() over n pre-connected stream sockets (n must equal
 * the channels), channel i on fds[i] (what libvirt hands QEMU's fd:). The
 * sender owns the fds from this call on, also on failure, and closes them. */
LM_API int lm_sender_connect_fds(lm_sender *s, const int *fds, uint32_t n);
/* Async-signal-safe, any thread (only an atomic store and a write(2) to an
 * eventfd): makes a running connect, run or migrate fail soon with
 * LM_ECANCELED and errmsg "cancelled by the application", in every phase
 * (connecting, the handshake, the rounds, the live loop, the switchover,
 * the wait for the verified reply): the receiver is told (ERROR, best
 * effort: a packet half written is finished first, for 250 ms at most, so
 * that the ERROR after it can be read), a live workload is resumed and its throttle set back to 0.
 * Called before connect, run or migrate, that call fails with it. A call
 * that failed (a connect, a run, a migration; also by a cancel) leaves the
 * handle failed: later connect, run and migrate return LM_ESTATE and
 * errmsg still says why the first one failed. */
LM_API int lm_sender_cancel(lm_sender *s);

/* One-pass migration: sends every page, syncs the channels, sends the region
 * checksums and waits for the receiver's verified reply. */
LM_API int lm_sender_run(lm_sender *s);

/* Any thread, any time (also during run or migrate, from a progress
 * thread): a consistent snapshot. While a run goes on it is each channel's
 * counters as of its last packet and the rest as of the last packet handed
 * out or round ended; exact once the run returned. out->size must be set
 * (LM_STATS_INIT): 0, or LM_EABI for a size this library does not know
 * (nothing written), LM_EINVAL for a NULL s or out. */
LM_API int lm_sender_stats(const lm_sender *s, lm_stats *out);
/* Detail of the last failure or mistaken call, "" if none. The driving
 * thread's; valid until its next call. */
LM_API const char *lm_sender_errmsg(const lm_sender *s);

/* Where round one is (lm_sender_run(), or lm_sender_migrate()'s first
 * round), which walks the regions in the order they were added, each from
 * its start: with the regions taken one after another as one range of
 * bytes, every byte below *done was sent (the channel that held its page
 * finished with it) and every byte below *handed was given to a channel
 * (done <= handed). Both are 0 before round one and the regions' total
 * length once it is over. For an application that streams its regions
 * from disk: read ahead of handed, drop what is below done (the CLI's
 * send, tools/stream.c). Any thread, at any time (two relaxed atomic
 * loads, async-signal-safe); either pointer may be NULL. */
LM_API void lm_sender_cursor(const lm_sender *s, uint64_t *done, uint64_t *handed);

/* ---- live migration (pre-copy) -------------------------------------------- */

/* How the sender learns which pages the workload wrote. */
typedef enum lm_dirty_source {
	LM_DIRTY_AUTO = 0,     /* userfaultfd write-protect if the kernel has it,
				  else the callback if one is given, else fail */
	LM_DIRTY_UFFD_WP = 1,  /* userfaultfd WP async + PAGEMAP_SCAN (Linux >= 6.7);
				  any mapping, but only writes through this
				  process's mappings are seen (not pwrite(2) to a
				  file, not another process writing shared memory) */
	LM_DIRTY_CALLBACK = 2, /* the application's dirty_log (KVM_GET_DIRTY_LOG style) */
} lm_dirty_source;

/* Fills bitmap (pages bits, zeroed by the caller, bit i = page i of region
 * `region` at the migration's page size) with the pages written since the
 * previous call and restarts the log from now, like KVM_GET_DIRTY_LOG with
 * clearing. The first call arms the log; its bits are ignored (round one
 * sends every page). Called from the thread running lm_sender_migrate().
 * Return 0 or a negative code, which fails the migration. */
typedef int (*lm_dirty_log_cb)(void *user, uint32_t region, uint64_t *bitmap, uint64_t pages);

/* What to do when max_rounds or max_time_ms is reached before the expected
 * downtime fits the limit. */
typedef enum lm_limit_action {
	LM_LIMIT_FAIL = 0,       /* fail with LM_ECONVERGE, workload resumed (as
				    Cloud Hypervisor's default) */
	LM_LIMIT_SWITCHOVER = 1, /* pause and finish anyway, downtime as it comes */
} lm_limit_action;

/* How auto-converge picks the throttle (src/sender/converge.c). */
typedef enum lm_throttle_mode {
	/* From the measured dirty and drain rates: once the rounds would not
	 * reach a dirty set that fits the downtime limit within the rounds
	 * and time left, the least throttle that makes the set fit within
	 * two rounds, applied at once and recomputed every round (up and
	 * down, 0 once the rounds converge on their own). */
	LM_THROTTLE_COMPUTED = 0,
	/* QEMU's cpu-throttle: after two rounds that dirtied over half of
	 * what they sent, throttle_initial, then + throttle_increment. */
	LM_THROTTLE_STEP = 1,
} lm_throttle_mode;

/* Live migration of memory the calling process owns. LM_LIVE_CONFIG_INIT,
 * then set what you need (0 = default). Every callback here (dirty_log, pause,
 * resume, throttle, progress) runs on the thread that called
 * lm_sender_migrate(), one at a time, never on a channel thread; the
 * migration waits for each, so they must not block long (pause: until no
 * writer writes). They may call lm_sender_stats() and the any-thread
 * controls, not the driving calls. A bad value is LM_EINVAL with errmsg
 * "lm_live_config: FIELD: ...". */
typedef struct lm_live_config {
	uint32_t size;          /* sizeof as compiled: set by its LM_*_INIT (ABI policy) */
	lm_dirty_source dirty;       /* default auto */
	lm_dirty_log_cb dirty_log;   /* required for LM_DIRTY_CALLBACK */
	/* Stop the workload's writers (vCPUs, threads) and return once none
	 * writes; required. Return 0 or a negative code (fails, resumes). */
	int (*pause)(void *user);
	/* Restart them: called on failure after a pause; required. */
	void (*resume)(void *user);
	/* Slow the writers to (100 - pct)% of their speed, pct 0..99: they
	 * run (100 - pct)% of the time, as QEMU's cpu-throttle, so they dirty
	 * pages about (100 - pct)% as fast (the computed mode relies on it).
	 * NULL disables auto-converge. Set back to 0 before
	 * lm_sender_migrate() returns, whatever the outcome. */
	void (*throttle)(void *user, uint32_t pct);
	/* After every round's dirty sync, with the live stats; may be NULL. */
	void (*progress)(void *user, const lm_stats *st);
	void *user;
	uint32_t downtime_limit_ms;  /* default 300, as QEMU */
	uint32_t max_rounds;         /* default 30 (rounds including the first) */
	uint32_t max_time_ms;        /* pre-copy time limit, checked after each
					round (round one is never cut); 0 = none */
	uint64_t max_bandwidth;      /* bytes per second on the wire before the
					pause, 0 = unlimited (lifted while paused) */
	lm_limit_action on_limit;    /* default LM_LIMIT_FAIL */
	int no_auto_converge;        /* 1: never throttle even with a callback */
	lm_throttle_mode throttle_mode; /* default LM_THROTTLE_COMPUTED */
	uint32_t throttle_initial;   /* step mode: default 20, as QEMU's cpu-throttle-initial */
	uint32_t throttle_increment; /* step mode: default 10, as cpu-throttle-increment */
	uint32_t throttle_max;       /* both modes: default 99, as max-cpu-throttle */
	/* 0 (default): the checksums sent at the switchover are built from the
	 * pages as they were sent, so they prove the transfer but trust the
	 * dirty source: a write it missed leaves the destination different.
	 * 1: they are computed over all of the paused source memory, so such a
	 * miss fails the migration (LM_ECHECKSUM) and the workload resumes;
	 * costs hashing every region in the downtime (about 55 ms per GiB on
	 * two cores here, docs/benchmarks.md). */
	int verify_source;
	/* Wire bytes per second the switchover's copy may count on (QEMU's
	 * avail-switchover-bandwidth): the pages and the device state left at
	 * the pause go unlimited, while the rounds that measure the rate may
	 * be paced by max_bandwidth or share the link. Used for the expected
	 * downtime, and so for when to switch over and the computed throttle;
	 * it paces nothing. The pages' share is the last measured round's page
	 * bytes per wire byte (its compression; the pages as they are before a
	 * wire rate is known), at most what the channels compress at that
	 * round's CPU per byte on their cores (one each, up to the online
	 * CPUs). A figure beyond what the link can do makes the downtime
	 * overshoot; one below it throttles more, up to throttle_max and
	 * LM_ECONVERGE. 0 (default): the rounds' measured rate. */
	uint64_t switchover_bandwidth;
} lm_live_config;

/* Live pre-copy on a connected sender, as QEMU does it: arms dirty tracking,
 * round one sends every page, each later round sends the pages dirtied
 * since the previous sync, until the expected downtime (the switchover's
 * fixed costs measured in this migration, the device state's expected
 * size if device_state_size tells it, + remaining bytes / measured
 * bandwidth, with a margin) is under the limit. Then it pauses the workload, sends
 * the rest, sends the region checksums and waits for the destination's
 * verified reply; downtime is measured from the pause to that reply. On
 * success the workload stays paused (it now runs on the destination). On any
 * failure the workload is resumed, the source memory is untouched and the
 * error returned. Use instead of lm_sender_run(). */
LM_API int lm_sender_migrate(lm_sender *s, const lm_live_config *cfg);

/* Control of a running lm_sender_migrate() from any thread (QEMU's
 * migrate-set-parameters): each is one atomic store, async-signal-safe,
 * taken by the migration at its next decision or packet; 0 or LM_EINVAL.
 * A request made before lm_sender_migrate() applies from its start,
 * over the config; one made after it returned changes nothing.
 *  - switchover: at the next round's end, pause and complete whatever the
 *    expected downtime (as raising downtime_limit_ms to anything);
 *  - set_downtime_limit: a new downtime_limit_ms (> 0) for the next
 *    decision (after the round being sent) and the throttle's model;
 *  - set_max_bandwidth: a new max_bandwidth (bytes/s, 0 = unlimited) from
 *    the next packet on; ignored once the workload is paused (the last
 *    copy always goes unlimited). */
LM_API int lm_sender_switchover(lm_sender *s);
LM_API int lm_sender_set_downtime_limit(lm_sender *s, uint32_t ms);
LM_API int lm_sender_set_max_bandwidth(lm_sender *s, uint64_t bytes_per_s);

/* 0 when this kernel supports LM_DIRTY_UFFD_WP, else a negative code and, if
 * why is not NULL, the reason in why (cap bytes). Thread-safe. */
LM_API int lm_dirty_probe(char *why, size_t cap);

/* ---- receiver ---------------------------------------------------------- */

/* Called on the receiver when the sender announces a region that was not
 * added with lm_receiver_add_region(), on the receiver's thread of channel
 * 0 (while it reads the announcements, one region at a time, before any
 * page arrives; do not call into the receiver but lm_receiver_stats() or
 * lm_receiver_cancel()). Return 0 with *base pointing at
 * writable memory of at least len rounded up to page_size bytes, and *fresh
 * set to 1 when that memory is known to be all zeros (a new mapping: zero
 * pages are then not written), or a negative code to refuse the region. */
typedef int (*lm_region_cb)(void *user, uint32_t id, const char *name, uint64_t len,
			    uint32_t page_size, void **base, int *fresh);

typedef struct lm_receiver_config {
	uint32_t size;          /* sizeof as compiled: set by its LM_*_INIT (ABI policy) */
	int timeout_ms;         /* stall timeout once a session started, default 30000 */
	int accept_timeout_ms;  /* wait for the first connection, 0 = forever */
	int rcvbuf;             /* SO_RCVBUF bytes; 0 = kernel autotuning (up to tcp_rmem's max) */
	uint32_t max_channels;  /* refuse sessions with more, default LM_MAX_CHANNELS */
	lm_accel accel;         /* deflate decoding: default auto */
	lm_engine_id engine;    /* deflate decoding's software engine: default isal */
	lm_region_cb on_region; /* may be NULL if all regions are added up front */
	/* Optional, for regions from on_region: called before the receiver
	 * first writes into [off, off + len) of region id (aligned 2 MiB
	 * pieces, the last one shorter), so the application can reserve the
	 * backing store as the pages arrive (fallocate a MAP_SHARED file: a
	 * page it cannot back is SIGBUS when written). Never for a piece only
	 * zero pages fall in. Non-zero fails the migration with that code.
	 * Runs on a channel thread, for different pieces at once. Whatever
	 * reserve does, the pages of a fresh region are populated
	 * (MADV_POPULATE_WRITE, Linux 5.14) before they are written, and a
	 * page the store refuses then fails the migration with the range
	 * named instead of SIGBUS: on tmpfs that alone is enough (the CLI
	 * does not fallocate there). */
	int (*reserve)(void *user, uint32_t id, uint64_t off, uint64_t len);
	void *user;
	/* 1: a region neither added nor taken by on_region is received into
	 * anonymous memory the receiver maps (see lm_receiver_region()). */
	int alloc_regions;
	/* 1: that memory in transparent huge pages (MADV_HUGEPAGE), where the
	 * system allows them: a 2 MiB range with any page sent is resident in
	 * full. Off by default (docs/benchmarks.md, "Receiver on fast links"). */
	int huge_pages;
	const lm_tls_config *tls; /* NULL: plaintext (anyone who reaches the port
				     can be the sender) */
	/* Limits against strangers (docs/security.md); 0 = the default. */
	uint64_t max_bytes;       /* total region bytes a session may announce;
				     0 = no limit (the CLI sets the free space) */
	int handshake_timeout_ms; /* a connection's whole handshake (TLS, hello,
				     regions), default 10000 */
	uint32_t max_handshakes;  /* connections in their handshake at once,
				     default 16 (the oldest is evicted first) */
	uint32_t max_handshakes_per_host; /* of those from one address, default 4 */
	int session_timeout_ms;   /* the whole session from its first hello,
				     0 = none */
	/* One line per refused connection (who, why), and why the session
	 * failed; NULL: silent. Called from the receiver's threads, one at a
	 * time (under a lock of the receiver: do not call into it). */
	void (*log)(void *user, const char *line);
	/* Progress, optional: a stats snapshot (as lm_receiver_stats()), on
	 * the thread that called lm_receiver_run(), once the session began:
	 * every progress_ms (default 1000), within 20 ms of each round's
	 * barrier (st->rounds changed), and once as the run ends (status
	 * COMPLETED or FAILED, also when no session began). It must return
	 * quickly: that thread accepts the late channels and sees the
	 * cancel. It may call lm_receiver_stats() and lm_receiver_cancel(). */
	void (*progress)(void *user, const lm_stats *st);
	uint32_t progress_ms;
	/* Device state (above), called with user. NULL: this receiver takes
	 * none, and refuses a sender that sends some (LM_EFEATURE); set, it
	 * refuses a sender that sends none. */
	lm_device_state_load_cb device_state;
	uint64_t device_state_max; /* bytes, default LM_DEFAULT_DEVICE_STATE_MAX:
				      more fails the migration with LM_ELIMIT */
} lm_receiver_config;

/* A receiver accepts one migration session. Thread safety: one thread drives
 * it (new, add_region, listen, accept_fds, run, region, errmsg, free);
 * from any thread, also while run goes on: lm_receiver_cancel()
 * (async-signal-safe), lm_receiver_stats(), and lm_receiver_port() after
 * listen. LM_EINVAL from new: a handle whose errmsg names the field. */
typedef struct lm_receiver lm_receiver;

LM_API int lm_receiver_new(lm_receiver **out, const lm_receiver_config *cfg);
LM_API void lm_receiver_free(lm_receiver *r);

/* Registers destination memory for the region the sender calls name. The
 * announced length must match exactly. fresh as in lm_region_cb. */
LM_API int lm_receiver_add_region(lm_receiver *r, const char *name, void *base, uint64_t len, int fresh);

/* Binds and listens on addr: "HOST:PORT" or "tcp:HOST:PORT" (port 0 picks
 * a free one), "unix:PATH" (created 0600; an existing socket file is
 * replaced), or "fd:N" (an already listening socket, e.g. from systemd) or
 * "fd:N[,N...]" of connected sockets (as lm_receiver_accept_fds()). */
LM_API int lm_receiver_listen(lm_receiver *r, const char *addr);
/* Instead of listening: the session's channels arrive on these n connected
 * stream sockets. The receiver owns them from this call on and closes them. */
LM_API int lm_receiver_accept_fds(lm_receiver *r, const int *fds, uint32_t n);
LM_API int lm_receiver_port(const lm_receiver *r);
/* Async-signal-safe, any thread (an atomic store and a write(2)):
 * lm_receiver_run() fails soon with LM_ECANCELED in every phase (waiting
 * for the sender, handshakes, data, verifying), the sender is told, and
 * what was received is discarded: memory the receiver mapped is unmapped,
 * lm_receiver_region() reports nothing (the CLI removes its temporary
 * image). Before run, the run that follows fails at once. */
LM_API int lm_receiver_cancel(lm_receiver *r);

/* Accepts the session's channels, receives, verifies the region checksums
 * and acknowledges. Returns 0 only when every region verified. */
LM_API int lm_receiver_run(lm_receiver *r);

/* The memory of the region the sender called name, once lm_receiver_run()
 * returned 0: *base and *len. Memory the receiver mapped (alloc_regions)
 * stays valid until lm_receiver_free(); after a failed run it is unmapped,
 * so nothing half-received is handed on. LM_EREGION if there is no such
 * region, LM_ESTATE before a successful run. */
LM_API int lm_receiver_region(const lm_receiver *r, const char *name, void **base, uint64_t *len);

/* Any thread, any time: a consistent snapshot; while run goes on each
 * channel's counters are at most 10 ms of data old (and current at each
 * round barrier); exact once run returned. Returns as lm_sender_stats(). */
LM_API int lm_receiver_stats(const lm_receiver *r, lm_stats *out);
/* The last failure or mistaken call, "" if none (the driving thread's). */
LM_API const char *lm_receiver_errmsg(const lm_receiver *r);

/* ---- helpers ----------------------------------------------------------- */

/* 1 when addr stays on this host (a loopback address, "unix:", "fd:"), 0
 * when it may cross a network (or names all addresses: "0.0.0.0", ":PORT"),
 * LM_EINVAL when it is not an address. For warnings about plaintext. */
LM_API int lm_address_is_local(const char *addr);

/* The checksum both sides compute over a region (see docs/protocol.md).
 * Returns 0 or -ENOMEM. Thread-safe. */
LM_API int lm_region_checksum(const void *base, uint64_t len, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif /* LIVEMIG_H */
