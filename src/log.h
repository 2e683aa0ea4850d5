/* log.h - leveled logging to stderr, one line per event. */
#ifndef CS_LOG_H
#define CS_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERROR };

extern enum log_level log_min_level;

int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level l);
void log_write(enum log_level l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) do { if (log_min_level <= LOG_DEBUG) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) do { if (log_min_level <= LOG_INFO) log_write(LOG_INFO, __VA_ARGS__); } while (0)
#define log_notice(...) do { if (log_min_level <= LOG_NOTICE) log_write(LOG_NOTICE, __VA_ARGS__); } while (0)
#define log_warn(...) log_write(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

/* Connection-aware variants prefix the client's id and address. */
#define clog_debug(c, fmt, ...) log_debug("C-%llu %s: " fmt, (unsigned long long)(c)->id, (c)->peer, ##__VA_ARGS__)
#define clog_info(c, fmt, ...) log_info("C-%llu %s: " fmt, (unsigned long long)(c)->id, (c)->peer, ##__VA_ARGS__)
#define clog_warn(c, fmt, ...) log_warn("C-%llu %s: " fmt, (unsigned long long)(c)->id, (c)->peer, ##__VA_ARGS__)

#endif
