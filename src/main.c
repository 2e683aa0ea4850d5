/* SPDX-License-Identifier: BSD-3-Clause */
/* main.c - command line, signals, start-up and shutdown. */
#include "config.h"
#include "core.h"
#include "admin.h"
#include "dns.h"
#include "health.h"
#include "heartbeat.h"
#include "cache.h"
#include "command.h"
#include "log.h"
#include "mem.h"
#include "notify.h"
#include "report.h"
#include "rstore.h"
#include "server.h"
#include "stats.h"
#include "upstream.h"

#include "autoconf.h"

#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

static const char *main_conf_path = SYSCONFDIR "/cachasided/cachasided.ini";
static const char *main_level_override;
static int main_exit_code;

static void main_usage(FILE *f)
{
    fprintf(f,
            "Usage: cachasided [-c FILE] [-t] [-l LEVEL] [-h] [-V]\n"
            "  -c, --config=FILE      configuration file (default %s)\n"
            "  -t, --test             check the configuration and exit\n"
            "  -l, --log-level=LEVEL  log level: debug, info, notice, warning, error\n"
            "  -h, --help             this help\n"
            "  -V, --version          version\n",
            SYSCONFDIR "/cachasided/cachasided.ini");
}

static const struct option main_options[] = {
    { "config", required_argument, NULL, 'c' },
    { "test", no_argument, NULL, 't' },
    { "log-level", required_argument, NULL, 'l' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

static struct cs_config *main_load(void)
{
    struct config_errors errs;
    struct cs_config *c = config_load(main_conf_path, &errs);
    char err[600];

    for (int i = 0; i < errs.n; i++)
        log_error("%s", errs.msg[i]);
    config_errors_free(&errs);
    if (c && upstream_check(c, err, sizeof(err)) != CS_OK) {
        log_error("%s: %s", main_conf_path, err);
        config_unref(c);
        c = NULL;
    }
    return c;
}

static void main_apply_level(void)
{
    enum log_level l = (enum log_level)cs_conf->log_level;

    if (main_level_override)
        (void)log_level_parse(main_level_override, &l);
    log_min_level = l;
}

static void main_reload(void)
{
    struct cs_config *neu;
    char err[600];

    notify_send("RELOADING=1");
    log_notice("SIGHUP: reloading %s", main_conf_path);
    neu = main_load();
    /* Before anything is swapped: a bad file refuses the whole reload. */
    if (neu && rstore_reload_tls(err, sizeof(err)) != CS_OK) {
        log_error("reload: [redis] %s", err);
        config_unref(neu);
        neu = NULL;
    }
    if (!neu) {
        log_error("reload: %s has errors, keeping the running configuration", main_conf_path);
        report_reload(false);
    } else {
        config_keep_restart(cs_conf, neu);
        config_unref(cs_conf);
        cs_conf = neu;
        main_apply_level();
        server_check_nofile();
        upstream_reconfigure(cs_conf);
        log_notice("reload: configuration applied (%d namespace(s))", cs_conf->nns);
        report_reload(true);
    }
    notify_send("READY=1");
}

static void main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    CS_UNUSED(what);
    CS_UNUSED(arg);
    if (sig == SIGHUP) {
        main_reload();
        return;
    }
    if (server_stopping()) {
        log_warn("second %s: exiting now", sig == SIGINT ? "SIGINT" : "SIGTERM");
        event_base_loopbreak(cs_base);
        return;
    }
    log_notice("%s: shutting down (grace %lld ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
               cs_conf->shutdown_grace_ms);
    notify_send("STOPPING=1");
    server_shutdown();
}

/* The Redis layer reads no configuration of its own: it is told it here. */
static int main_redis_start(void)
{
    const struct cs_config *c = cs_conf;
    static struct cs_addr nodes[CS_ADDRS_MAX], sentinels[CS_ADDRS_MAX];
    char chan[300];
    struct rstore_conf rc = {
        .mode = config_redis_modes[c->redis_mode],
        .host = c->redis_host,
        .port = (int)c->redis_port,
        .unix_socket = c->redis_unix_socket,
        .nodes = nodes,
        .nnodes = config_addr_list(c->redis_nodes, nodes, CS_ADDRS_MAX),
        .cluster_refresh_s = c->cluster_refresh_s,
        .sentinels = sentinels,
        .nsentinels = config_addr_list(c->redis_sentinels, sentinels, CS_ADDRS_MAX),
        .master_name = c->redis_master_name,
        .username = c->redis_username,
        .password = c->redis_password,
        .db = c->redis_db,
        .connect_timeout_ms = c->connect_timeout_ms,
        .command_timeout_ms = c->command_timeout_ms,
        .channel = chan,
        /* The near cache is kept exact by client tracking. */
        .tracking = c->near_cache_entries > 0,
        .tls = c->redis_tls != 0,
        .tls_ca_file = c->redis_tls_ca_file,
        .tls_cert_file = c->redis_tls_cert_file,
        .tls_key_file = c->redis_tls_key_file,
        .tls_server_name = c->redis_tls_server_name,
    };
    char err[256];

    cs_fills_channel(chan, sizeof(chan), c->key_prefix);
    if (rc.nnodes > CS_ADDRS_MAX)
        rc.nnodes = CS_ADDRS_MAX;
    if (rc.nsentinels > CS_ADDRS_MAX)
        rc.nsentinels = CS_ADDRS_MAX;
    if (rc.nnodes < 0)
        rc.nnodes = 0;
    if (rc.nsentinels < 0)
        rc.nsentinels = 0;
    if (rstore_init(&rc, err, sizeof(err)) != CS_OK) {
        log_error("redis: %s", err);
        return CS_ERR;
    }
    return CS_OK;
}

int main(int argc, char **argv)
{
    struct event *sigs[3];
    const int signums[3] = { SIGHUP, SIGTERM, SIGINT };
    bool check_only = false;
    int opt;

    mem_init();                 /* before libevent allocates anything */
    while ((opt = getopt_long(argc, argv, "c:tl:hV", main_options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            main_conf_path = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'l': {
            enum log_level l;
            if (log_level_parse(optarg, &l) != CS_OK) {
                fprintf(stderr, "cachasided: --log-level: unknown level '%s' (debug, info, notice, warning, error)\n", optarg);
                return 1;
            }
            main_level_override = optarg;
            log_min_level = l;
            break;
        }
        case 'h':
            main_usage(stdout);
            return 0;
        case 'V':
            printf("cachasided %s\n", PACKAGE_VERSION);
            return 0;
        default:
            main_usage(stderr);
            return 1;
        }
    }
    if (optind != argc) {
        main_usage(stderr);
        return 1;
    }
    if (check_only) {
        struct config_errors errs;
        struct cs_config *c = config_load(main_conf_path, &errs);
        char err[600];
        for (int i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msg[i]);
        config_errors_free(&errs);
        if (c && upstream_check(c, err, sizeof(err)) != CS_OK) {
            fprintf(stderr, "%s: %s\n", main_conf_path, err);
            config_unref(c);
            c = NULL;
        }
        if (!c)
            return 1;
        printf("%s: configuration is valid (%d namespace(s))\n", main_conf_path, c->nns);
        config_unref(c);
        return 0;
    }

    cs_conf = main_load();
    if (!cs_conf)
        return 1;
    main_apply_level();
    signal(SIGPIPE, SIG_IGN);
    cs_base = event_base_new();
    if (!cs_base) {
        log_error("event_base_new failed");
        return 1;
    }
    /* Before listening: a SIGTERM as soon as clients can connect must
     * shut down cleanly, not kill the process. */
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(cs_base, signums[i], main_signal_cb, NULL);
        event_add(sigs[i], NULL);
    }
    stats_init();
    upstream_reconfigure(cs_conf);
    cache_init();
    command_set_report(report_text);
    /* The admin endpoint first: once the client port answers, so does it. */
    if (admin_start() != CS_OK || server_start() != CS_OK) {
        main_exit_code = 2;
        goto out;
    }
    if (main_redis_start() != CS_OK) {
        main_exit_code = 2;
        goto out;
    }
    health_start();
    heartbeat_start();
    log_notice("cachasided %s started (pid %d, %d namespace(s))", PACKAGE_VERSION, (int)getpid(), cs_conf->nns);
    notify_send("READY=1");
    event_base_dispatch(cs_base);
    log_notice("stopped");
out:
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    cs_exiting = true;
    /* Clients first, then the links whose callbacks settle the flights,
     * then whatever flights are left. */
    health_free();
    server_free();
    admin_free();
    heartbeat_stop((int)cs_conf->command_timeout_ms);   /* before the link goes */
    cache_shutdown();           /* sends on the Redis link: before it goes */
    rstore_free();
    upstream_free();
    dns_free();
    cache_free();
    event_base_free(cs_base);
    config_unref(cs_conf);
    mem_free_spares();
    return main_exit_code;
}
