/* SPDX-License-Identifier: BSD-3-Clause */
/* notify.h - sd_notify without libsystemd. */
#ifndef CS_NOTIFY_H
#define CS_NOTIFY_H

/* Sends state (e.g. "READY=1") to $NOTIFY_SOCKET; silent when unset. */
void notify_send(const char *state);

#endif
