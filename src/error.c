/* lm_strerror: names for livemig's codes and for system -errno codes. */
#include <string.h>

#include "livemig.h"
#include "lm_config.h"

const char *lm_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case LM_EBADMAGIC: return "bad frame magic";
	case LM_EVERSION: return "unsupported protocol version";
	case LM_ESESSION: return "session id mismatch";
	case LM_EFIELD: return "invalid field value";
	case LM_ECODEC: return "unknown or unsupported codec";
	case LM_EFEATURE: return "unsupported required feature";
	case LM_EKIND: return "unknown or unexpected packet kind";
	case LM_ECHECKSUM: return "region checksum mismatch";
	case LM_EPEER: return "the peer reported an error";
	case LM_ETIMEDOUT: return "peer stalled (timeout)";
	case LM_EEOF: return "peer closed the connection";
	case LM_EREGION: return "region missing or mismatched";
	case LM_ESTATE: return "call not valid in this state";
	case LM_EDECODE: return "page did not decode to one page";
	case LM_ECONVERGE: return "did not converge within the limits";
	case LM_ETLS: return "TLS failure";
	case LM_EAUTH: return "peer not authenticated";
	case LM_ELIMIT: return "over a receiver limit";
	case LM_ECANCELED: return "cancelled";
	default: break;
	}
	/* glibc's strerror may format unknown codes into a static buffer
	 * shared by every thread; strerrordesc_np (glibc >= 2.32) is the
	 * thread-safe form. Elsewhere strerror: musl's returns static strings
	 * for every code. */
	if (err < 0 && err > -4096) {
#ifdef LM_HAVE_STRERRORDESC_NP
		const char *s = strerrordesc_np(-err);
#else
		const char *s = strerror(-err);
#endif
		if (s)
			return s;
	}
	return "unknown error";
}
