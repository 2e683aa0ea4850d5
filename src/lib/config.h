/* SPDX-License-Identifier: BSD-3-Clause */
/* config.h - cachasided.ini: table-driven parsing, validation, reload. */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include "core.h"
#include "confhdr.h"

enum ns_format { NS_HASH, NS_RAW };
enum redis_mode { RM_STANDALONE, RM_CLUSTER, RM_SENTINEL, RM_COUNT };
/* [redis] mode's words, by enum redis_mode: the names of the Redis
 * layer's topologies (rstore_conf.mode). */
extern const char *const config_redis_modes[RM_COUNT];


/* Keys of [cache] that every namespace inherits and may override. */
enum cache_key {
    CK_TTL, CK_JITTER, CK_NEG_TTL, CK_GRACE, CK_LOCK_TTL, CK_LOCK_POLL,
    CK_UP_TIMEOUT, CK_UP_CONNS, CK_MAX_BODY, CK_MAX_FETCHES,
    CK_BETA,                    /* early_refresh_beta in thousandths (0: off) */
    CK_BRK_FAILS, CK_BRK_OPEN, CK_COUNT
};

struct cs_cache_conf {
    long long v[CK_COUNT];
    int line[CK_COUNT];         /* where each was set, 0 = default */
};

struct cs_ns {
    char *name;
    size_t namelen;
    int line;                   /* of its [namespace:...] header */
    char *upstream;             /* the template as written */
    char *host;                 /* parsed from the template */
    int port;
    bool tls;                   /* https:// */
    /* upstream_ca_file (empty: the system store), upstream_cert_file and
     * upstream_key_file (empty: no client certificate) */
    char *ca_file, *cert_file, *key_file;
    struct cs_hdr *headers;     /* upstream_header lines, in file order */
    int nheaders;
    char **parts;               /* template split at each {id}: nparts-1 ids */
    int nparts;
    enum ns_format format;
    long long id_slashes;       /* an id may hold '/': nested path segments */
    long long near_cache;       /* its reads use the near cache (when near_cache_entries > 0) */
    struct cs_cache_conf c;
    int keyline[64];            /* duplicate detection, per table row */
};

/* Concurrent connections admin_listen serves (docs/admin.md): a fixed cap,
 * not a key; the open files check counts it. */
#define CS_ADMIN_MAX_CONNS 64

struct cs_config {
    int refcnt;
    char *path;
    /* [server] */
    char *listen, *unix_socket, *admin_listen, *requirepass, *cluster_announce;
    long long unix_socket_mode, max_clients, max_request_bytes, client_idle_timeout_s,
        max_inflight_per_client, max_output_bytes_per_client, shutdown_grace_ms, admin_demo;
    long long log_level;
    /* [redis] */
    char *redis_host, *redis_unix_socket, *redis_username, *redis_password, *key_prefix;
    char *redis_nodes, *redis_sentinels, *redis_master_name;
    long long redis_port, redis_db, connect_timeout_ms, command_timeout_ms;
    long long redis_mode, cluster_refresh_s;
    long long redis_tls;
    char *redis_tls_ca_file, *redis_tls_cert_file, *redis_tls_key_file, *redis_tls_server_name;
    /* [cache] and namespaces */
    struct cs_cache_conf cache;
    long long near_cache_entries, near_cache_bytes, near_cache_max_stale_ms;
    struct cs_ns **ns;
    int nns;
    struct cs_ns *nsdef;        /* [cache]'s values of the namespaces' file keys */
    int keyline[64];            /* duplicate detection for global keys */
};

/* Messages of a failed load, each "FILE:LINE: message". */
struct config_errors {
    char **msg;
    int n;
};

/* The configuration new requests use. In-flight work holds its own ref. */
extern struct cs_config *cs_conf;

struct cs_config *config_load(const char *path, struct config_errors *errs) CS_WUR;
struct cs_config *config_ref(struct cs_config *c);
void config_unref(struct cs_config *c);
void config_errors_free(struct config_errors *errs);
const struct cs_ns *config_ns_find(const struct cs_config *c, const char *name, size_t len);
int config_parse_addr(const char *s, char *host, size_t hostsz, int *port) CS_WUR;
/* host (as config_parse_addr gives it) binds every address: 0.0.0.0, ::. */
bool config_addr_wildcard(const char *host);
/* "host:port, host:port, ...": the number of entries (up to max stored in
 * out, which may be NULL), or -1 when one is malformed. */
int config_addr_list(const char *s, struct cs_addr *out, int max);
/* Reload: warn about changed keys that only a restart applies, and NEU
 * gets OLD's values of those keys. */
void config_keep_restart(const struct cs_config *old, struct cs_config *neu);
/* A reload since start changed a restart-only key: true until the restart. */
bool config_restart_pending(void);

/* The table, for tests and documentation checks. */
struct config_key_info {
    const char *section;
    const char *key;
};
int config_key_list(const struct config_key_info **out);

#endif
