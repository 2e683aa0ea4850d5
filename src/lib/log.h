/* SPDX-License-Identifier: BSD-3-Clause */
/* log.h - leveled logging to stderr, one line per event. */
#ifndef CS_LOG_H
#define CS_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERROR };

extern enum log_level log_min_level;

int log_level_parse(const char *s, enum log_level *out);
void log_write(enum log_level l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* For messages that can come in floods (accept errors, refused clients):
 * the first of a kind (same format string, whatever the arguments) is
 * written; more within LOG_REPEAT_MS are only counted, and the count is
 * written with the last of them, "... (repeated N times in S s)", when the
 * window ends (log_repeat_flush, called once a second) or the kind recurs. */
#define LOG_REPEAT_MS 5000
void log_write_limited(enum log_level l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_repeat_flush(void);
#define log_limited(l, ...) do { if (log_min_level <= (l)) log_write_limited((l), __VA_ARGS__); } while (0)

#define log_debug(...) do { if (log_min_level <= LOG_DEBUG) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) do { if (log_min_level <= LOG_INFO) log_write(LOG_INFO, __VA_ARGS__); } while (0)
#define log_notice(...) do { if (log_min_level <= LOG_NOTICE) log_write(LOG_NOTICE, __VA_ARGS__); } while (0)
#define log_warn(...) log_write(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

/* One request's path at debug level (parse, Redis read, lock, fetch, fill,
 * wake), each line "trace <Redis key>: <step>: ...": grep one key to follow
 * it. Nothing is formatted above debug. */
#define log_trace(key, fmt, ...) log_debug("trace %s: " fmt, (key), ##__VA_ARGS__)

/* Connection-aware variants prefix the client's id and address. */
#define clog_debug(c, fmt, ...) log_debug("C-%llu %s: " fmt, (unsigned long long)(c)->id, (c)->peer, ##__VA_ARGS__)
#define clog_info(c, fmt, ...) log_info("C-%llu %s: " fmt, (unsigned long long)(c)->id, (c)->peer, ##__VA_ARGS__)
#define clog_warn(c, fmt, ...) log_warn("C-%llu %s: " fmt, (unsigned long long)(c)->id, (c)->peer, ##__VA_ARGS__)

#endif
