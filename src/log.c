/* log.c - leveled logging to stderr. No colour: stderr is usually journald. */
#include "core.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
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

const char *log_level_name(enum log_level l)
{
    return log_names[l];
}

void log_write(enum log_level l, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000), log_names[l]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* One write per line so lines from a crash or a pipe never interleave. */
    n = (int)strlen(line);
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}
