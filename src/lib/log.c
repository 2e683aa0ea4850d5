/* SPDX-License-Identifier: BSD-3-Clause */
/* log.c - leveled logging to stderr. No colour: stderr is usually journald. */
#include "core.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/time.h>

enum log_level log_min_level = LOG_INFO;

static const char *const log_names[] = { "debug", "info", "notice", "warning", "error" };

int log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < CS_ARRAY_LEN(log_names); i++) {
        if (strcmp(s, log_names[i]) == 0) {
            *out = (enum log_level)i;
            return CS_OK;
        }
    }
    return CS_ERR;
}

/* Under systemd stderr is the journal (JOURNAL_STREAM names it): a line
 * then starts with its syslog priority, "<3>" for an error, so that
 * `journalctl -p err` works, and carries no timestamp (journald adds one). */
static int log_journal = -1;

static bool log_to_journal(void)
{
    const char *js;
    struct stat st;
    unsigned long long dev, ino;

    if (log_journal >= 0)
        return log_journal;
    js = getenv("JOURNAL_STREAM");
    log_journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
                  (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
    return log_journal;
}

static void log_vwrite(enum log_level l, const char *fmt, va_list ap)
{
    static const char prio[] = { '7', '6', '5', '4', '3' };     /* syslog: debug .. err */
    char line[2048];
    struct timeval tv;
    struct tm tm;
    int n;

    if (log_to_journal()) {
        n = snprintf(line, sizeof(line), "<%c>%s ", prio[l], log_names[l]);
    } else {
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000), log_names[l]);
    }
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    /* One write per line so lines from a crash or a pipe never interleave. */
    n = (int)strlen(line);
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}

void log_write(enum log_level l, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(l, fmt, ap);
    va_end(ap);
}

/* Rate limiting, keyed by the format string: one slot per message kind
 * seen lately. A full table evicts the oldest window (its count is
 * written first), so at worst a flood of many kinds is limited less. */
struct log_repeat {
    const char *fmt;            /* NULL = free */
    enum log_level level;
    int64_t start_ms;           /* when the window's first line was written */
    unsigned long count;        /* lines held back since */
    char last[256];             /* the last one held back, for the summary */
};

static struct log_repeat log_repeats[16];

/* One line held back is written as it was: "repeated 1 times" would say
 * less than the line itself. */
static void log_repeat_summary(struct log_repeat *r, int64_t now)
{
    if (r->count == 1)
        log_write(r->level, "%s", r->last);
    else if (r->count)
        log_write(r->level, "%s (repeated %lu times in %lld s)", r->last, r->count,
                  (long long)((now - r->start_ms + 999) / 1000));
    r->count = 0;
}

void log_write_limited(enum log_level l, const char *fmt, ...)
{
    int64_t now = cs_mono_ms();
    struct log_repeat *r = NULL, *oldest = &log_repeats[0];
    va_list ap;

    for (size_t i = 0; i < CS_ARRAY_LEN(log_repeats); i++) {
        struct log_repeat *x = &log_repeats[i];
        if (x->fmt == fmt) {
            r = x;
            break;
        }
        if (!x->fmt || (oldest->fmt && x->start_ms < oldest->start_ms))
            oldest = x;
    }
    if (r && now - r->start_ms < LOG_REPEAT_MS) {
        r->count++;
        va_start(ap, fmt);
        vsnprintf(r->last, sizeof(r->last), fmt, ap);
        va_end(ap);
        return;
    }
    if (!r) {
        r = oldest;
        if (r->fmt)
            log_repeat_summary(r, now);
        r->fmt = fmt;
    } else {
        log_repeat_summary(r, now);
    }
    r->level = l;
    r->start_ms = now;
    va_start(ap, fmt);
    log_vwrite(l, fmt, ap);
    va_end(ap);
}

void log_repeat_flush(void)
{
    int64_t now = cs_mono_ms();

    for (size_t i = 0; i < CS_ARRAY_LEN(log_repeats); i++) {
        struct log_repeat *r = &log_repeats[i];
        if (r->fmt && now - r->start_ms >= LOG_REPEAT_MS) {
            log_repeat_summary(r, now);
            r->fmt = NULL;
        }
    }
}
