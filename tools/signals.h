/*
 * SIGINT and SIGTERM for the CLI's commands: the first cancels the running
 * sender or receiver (lm_*_cancel, async-signal-safe), so the peer is told,
 * a live workload resumes and temporary files are removed by the normal
 * cleanup; a second one removes the registered temporary files and exits at
 * once. The exit status after a signal is 128 + its number (130, 143).
 */
#ifndef LM_TOOLS_SIGNALS_H
#define LM_TOOLS_SIGNALS_H

#include "livemig.h"

void sig_install(void);
/* The handle a signal cancels (NULL: none). A signal that came before the
 * handle was given cancels it now. */
void sig_watch_sender(lm_sender *s);
void sig_watch_receiver(lm_receiver *r);
/* Files to remove if a second signal ends the process, one per slot
 * (NULL: none); the string must stay valid while registered. */
enum { SIG_FILE_IMAGE, SIG_FILE_DEVSTATE, SIG_FILES };
void sig_watch_file(int slot, const char *path);
/* The signal caught, 0 if none. */
int sig_caught(void);
/* A command's exit status: 0 on success, 128 + signo after a signal,
 * else 1. */
int sig_status(int failed);

#endif
