/* SPDX-License-Identifier: BSD-3-Clause */
/* procstat.c - the process_* families every Prometheus exporter has, read
 * at scrape time from /proc/self: stat (CPU time, start, virtual size,
 * resident pages), the fd directory (descriptors open) and the open files
 * limit. Costs a few small reads per scrape and nothing in between. */
#include "core.h"
#include "procstat.h"
#include "prom.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct procstat {
    double cpu_s, start_s, vsize, rss;
};

/* The boot time, for the start time /proc/self/stat gives in ticks since boot. */
static bool procstat_btime(double *out)
{
    FILE *f = fopen("/proc/stat", "r");
    char line[256];
    bool ok = false;

    if (!f)
        return false;
    while (!ok && fgets(line, sizeof(line), f)) {
        unsigned long long bt;
        if (sscanf(line, "btime %llu", &bt) == 1) {
            *out = (double)bt;
            ok = true;
        }
    }
    fclose(f);
    return ok;
}

/* Fields after the command name, which may hold spaces and ')': from the
 * last ')' on. utime and stime are fields 14 and 15, starttime 22, vsize 23,
 * rss 24 (proc(5)); the first after ')' is field 3. */
static bool procstat_read(struct procstat *ps)
{
    char buf[1024], *p;
    unsigned long long v[25] = { 0 };
    double tick = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE), boot;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n;
    int field = 3;

    if (!f)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (!(p = strrchr(buf, ')')) || tick <= 0 || page <= 0 || !procstat_btime(&boot))
        return false;
    for (p++; field <= 24; field++) {
        char *end;
        while (*p == ' ')
            p++;
        if (field == 3) {       /* the state: a letter */
            while (*p && *p != ' ')
                p++;
            continue;
        }
        v[field] = strtoull(p, &end, 10);
        if (end == p)
            return false;
        p = end;
    }
    ps->cpu_s = (double)(v[14] + v[15]) / tick;
    ps->start_s = boot + (double)v[22] / tick;
    ps->vsize = (double)v[23];
    ps->rss = (double)v[24] * page;
    return true;
}

/* Entries of /proc/self/fd but the directory's own descriptor. */
static int procstat_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
            n++;
    closedir(d);
    return n;
}

void procstat_report(struct prom *p)
{
    struct procstat ps;
    struct rlimit rl;
    int fds = procstat_fds();
    bool ok = procstat_read(&ps);

    if (ok) {
        prom_family(p, "process_cpu_seconds_total", "counter", "User and system CPU time spent, seconds");
        prom_sample(p, ps.cpu_s, NULL, NULL, NULL, NULL);
        prom_family(p, "process_resident_memory_bytes", "gauge", "Resident memory size, bytes");
        prom_sample(p, ps.rss, NULL, NULL, NULL, NULL);
        prom_family(p, "process_virtual_memory_bytes", "gauge", "Virtual memory size, bytes");
        prom_sample(p, ps.vsize, NULL, NULL, NULL, NULL);
    }
    if (fds >= 0) {
        prom_family(p, "process_open_fds", "gauge", "Open file descriptors");
        prom_sample(p, fds, NULL, NULL, NULL, NULL);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        prom_family(p, "process_max_fds", "gauge", "The open files limit (soft)");
        prom_sample(p, (double)rl.rlim_cur, NULL, NULL, NULL, NULL);
    }
    if (ok) {
        prom_family(p, "process_start_time_seconds", "gauge", "When the process started, seconds since the epoch");
        prom_sample(p, ps.start_s, NULL, NULL, NULL, NULL);
    }
}
