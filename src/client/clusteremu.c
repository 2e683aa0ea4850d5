/* SPDX-License-Identifier: BSD-3-Clause */
/* clusteremu.c - the one-node cluster: CLUSTER SLOTS, SHARDS, NODES, INFO,
 * MYID, KEYSLOT and their kin, READONLY, READWRITE and ASKING.
 *
 * A client configured for Redis Cluster (redis-py's RedisCluster, ioredis's
 * Cluster, node-redis's createCluster, Lettuce, go-redis) first asks its
 * seed for the slot map and then sends each key to the node that owns its
 * slot. The daemon answers every key itself, whatever the Redis topology
 * behind it, so the true map is the smallest one: a single node, this
 * daemon, owning all 16384 slots, healthy, with no replicas. A client
 * holding that map sends every command here and never sees MOVED or ASK
 * (rcluster.c deals with those of the real cluster behind). The replies
 * have Redis 7's shapes exactly, so no client parser can tell.
 *
 * The node's address is the one clients should use: [server]
 * cluster_announce when set; else the listen address; and when listen is
 * a wildcard (0.0.0.0, [::]), the address the asking client reached, read
 * from its own socket, so each client is told an address it can reach.
 * Behind port mapping or NAT none of those is right, which is what
 * cluster_announce is for (docs/configuration.md). A host name is given
 * where Redis gives the IP, and also as the node's hostname.
 *
 * The node id is 40 random hex digits drawn once, at the first use: a
 * client that compares ids across refreshes sees the same node for the
 * daemon's life, and a restarted daemon is a new node, as it is. */
#include "core.h"
#include "clusteremu.h"
#include "command.h"
#include "config.h"
#include "conn.h"
#include "req.h"
#include "resp.h"
#include "rslot.h"

#include <event2/buffer.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define CLUSTEREMU_ID_LEN 40

static char clusteremu_id[CLUSTEREMU_ID_LEN + 1], clusteremu_shard[CLUSTEREMU_ID_LEN + 1];

/* Two ids from one draw: the node's and its shard's (CLUSTER MYSHARDID). */
static void clusteremu_ids(void)
{
    unsigned char rnd[CLUSTEREMU_ID_LEN];
    static const char hex[] = "0123456789abcdef";

    evutil_secure_rng_get_bytes(rnd, sizeof(rnd));
    for (int i = 0; i < CLUSTEREMU_ID_LEN / 2; i++) {
        clusteremu_id[2 * i] = hex[rnd[i] >> 4];
        clusteremu_id[2 * i + 1] = hex[rnd[i] & 15];
        clusteremu_shard[2 * i] = hex[rnd[CLUSTEREMU_ID_LEN / 2 + i] >> 4];
        clusteremu_shard[2 * i + 1] = hex[rnd[CLUSTEREMU_ID_LEN / 2 + i] & 15];
    }
}

const char *clusteremu_myid(void)
{
    if (!clusteremu_id[0])
        clusteremu_ids();
    return clusteremu_id;
}

/* ---- the address announced ----------------------------------------- */

struct clusteremu_node {
    char host[256];
    int port;
    bool named;                 /* host is a name, not an IP address */
};

/* The local address of c's socket as text, into host; false for a unix
 * socket or when it cannot be read. An IPv4 client of a dual-stack
 * listener ([::]) is told the IPv4 address it reached. */
static bool clusteremu_sockname(const struct conn *c, char *host, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(c->fd, (struct sockaddr *)&ss, &len) != 0)
        return false;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
            return inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], host, (socklen_t)size) != NULL;
    } else if (ss.ss_family != AF_INET) {
        return false;
    }
    return getnameinfo((struct sockaddr *)&ss, len, host, (socklen_t)size, NULL, 0, NI_NUMERICHOST) == 0;
}

/* Where clients should reach this node (see the top of the file); false
 * when there is no TCP address to give. */
static bool clusteremu_node(const struct req *r, struct clusteremu_node *n)
{
    const struct cs_config *conf = r->conf;
    const char *addr = conf->cluster_announce[0] ? conf->cluster_announce : conf->listen;
    struct in6_addr any;

    if (!addr[0] || config_parse_addr(addr, n->host, sizeof(n->host), &n->port) != CS_OK)
        return false;
    if (!conf->cluster_announce[0] && config_addr_wildcard(n->host)) {
        bool v6 = strchr(n->host, ':') != NULL;
        /* A unix socket client is on this host: loopback reaches the listener. */
        if (!r->conn || !clusteremu_sockname(r->conn, n->host, sizeof(n->host)))
            snprintf(n->host, sizeof(n->host), "%s", v6 ? "::1" : "127.0.0.1");
    }
    n->named = inet_pton(AF_INET, n->host, &any) != 1 && inet_pton(AF_INET6, n->host, &any) != 1 &&
               !strchr(n->host, '%');       /* fe80::1%eth0: an address with its scope */
    return true;
}

static bool clusteremu_node_or_reply(struct req *r, struct clusteremu_node *n)
{
    if (clusteremu_node(r, n))
        return true;
    resp_error(req_out(r), "ERR no address to announce: the daemon has no TCP listener; set [server] cluster_announce");
    req_done(r);
    return false;
}

/* ---- the subcommands ------------------------------------------------ */

static void clusteremu_pair_str(struct evbuffer *out, const char *key, const char *v)
{
    resp_bulk(out, key, strlen(key));
    resp_bulk(out, v, strlen(v));
}

static void clusteremu_slots(struct req *r)
{
    struct evbuffer *out = req_out(r);
    struct clusteremu_node n;

    if (!clusteremu_node_or_reply(r, &n))
        return;
    /* [[first slot, last slot, [host, port, id, {metadata}]]] */
    resp_array(out, 1);
    resp_array(out, 3);
    resp_int(out, 0);
    resp_int(out, RC_SLOTS - 1);
    resp_array(out, 4);
    resp_bulk(out, n.host, strlen(n.host));
    resp_int(out, n.port);
    resp_bulk(out, clusteremu_myid(), CLUSTEREMU_ID_LEN);
    resp_map(out, n.named, r->resp3);
    if (n.named)
        clusteremu_pair_str(out, "hostname", n.host);
    req_done(r);
}

static void clusteremu_shards(struct req *r)
{
    struct evbuffer *out = req_out(r);
    struct clusteremu_node n;

    if (!clusteremu_node_or_reply(r, &n))
        return;
    /* [{slots: [0, 16383], nodes: [{id, port, ip, endpoint, [hostname],
     * role, replication-offset, health}]}]; RESP2 flattens the maps. */
    resp_array(out, 1);
    resp_map(out, 2, r->resp3);
    resp_bulk(out, "slots", 5);
    resp_array(out, 2);
    resp_int(out, 0);
    resp_int(out, RC_SLOTS - 1);
    resp_bulk(out, "nodes", 5);
    resp_array(out, 1);
    resp_map(out, n.named ? 8 : 7, r->resp3);
    clusteremu_pair_str(out, "id", clusteremu_myid());
    resp_bulk(out, "port", 4);
    resp_int(out, n.port);
    clusteremu_pair_str(out, "ip", n.host);
    clusteremu_pair_str(out, "endpoint", n.host);
    if (n.named)
        clusteremu_pair_str(out, "hostname", n.host);
    clusteremu_pair_str(out, "role", "master");
    resp_bulk(out, "replication-offset", 18);
    resp_int(out, 0);
    clusteremu_pair_str(out, "health", "online");
    req_done(r);
}

static void clusteremu_nodes(struct req *r)
{
    struct evbuffer *body = evbuffer_new();
    struct clusteremu_node n;

    if (!clusteremu_node_or_reply(r, &n)) {
        evbuffer_free(body);
        return;
    }
    /* <id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
     * <pong-recv> <config-epoch> <link-state> <slot>...: no cluster bus,
     * so the bus port is 0. */
    evbuffer_add_printf(body, "%s %s:%d@0%s%s myself,master - 0 0 0 connected 0-%d\n", clusteremu_myid(), n.host,
                        n.port, n.named ? "," : "", n.named ? n.host : "", RC_SLOTS - 1);
    resp_text_move(req_out(r), body, r->resp3);
    evbuffer_free(body);
    req_done(r);
}

static void clusteremu_info(struct req *r)
{
    struct evbuffer *body = evbuffer_new();

    evbuffer_add_printf(body,
                        "cluster_state:ok\r\n"
                        "cluster_slots_assigned:%d\r\n"
                        "cluster_slots_ok:%d\r\n"
                        "cluster_slots_pfail:0\r\n"
                        "cluster_slots_fail:0\r\n"
                        "cluster_known_nodes:1\r\n"
                        "cluster_size:1\r\n"
                        "cluster_current_epoch:0\r\n"
                        "cluster_my_epoch:0\r\n"
                        "cluster_stats_messages_sent:0\r\n"
                        "cluster_stats_messages_received:0\r\n"
                        "total_cluster_links_buffer_limit_exceeded:0\r\n",
                        RC_SLOTS, RC_SLOTS);
    resp_text_move(req_out(r), body, r->resp3);
    evbuffer_free(body);
    req_done(r);
}

static void clusteremu_id_reply(struct req *r)
{
    clusteremu_myid();
    if (strcasecmp(r->argv[1].p, "myshardid") == 0)
        resp_bulk(req_out(r), clusteremu_shard, CLUSTEREMU_ID_LEN);
    else
        resp_bulk(req_out(r), clusteremu_id, CLUSTEREMU_ID_LEN);
    req_done(r);
}

static void clusteremu_keyslot(struct req *r)
{
    resp_int(req_out(r), rslot_of(r->argv[2].p, r->argv[2].len));
    req_done(r);
}

/* LINKS: the links to other nodes, of which there are none. */
static void clusteremu_links(struct req *r)
{
    resp_array(req_out(r), 0);
    req_done(r);
}

/* REPLICAS / SLAVES / COUNT-FAILURE-REPORTS <node-id>: about this node,
 * none and 0; any other id is not a node of this cluster. */
static void clusteremu_about_node(struct req *r)
{
    const struct cs_str *id = &r->argv[2];

    if (id->len != CLUSTEREMU_ID_LEN || memcmp(id->p, clusteremu_myid(), CLUSTEREMU_ID_LEN) != 0)
        resp_errorf(req_out(r), "ERR Unknown node %.64s", id->p);
    else if (strcasecmp(r->argv[1].p, "count-failure-reports") == 0)
        resp_int(req_out(r), 0);
    else
        resp_array(req_out(r), 0);
    req_done(r);
}

/* What would change the cluster or ask about keys held here: refused, the
 * map stays one node owning every slot. */
static void clusteremu_refuse(struct req *r)
{
    char up[32];

    resp_errorf(req_out(r), "ERR CLUSTER %s is not supported: cachasided answers as a one-node cluster "
                            "that owns every slot", command_upper(up, sizeof(up), r->argv[1].p));
    req_done(r);
}

#define CE_INFO "loading stale"
const struct cmd_sub clusteremu_subs[] = {
    { "slots", 2, clusteremu_slots, CE_INFO, "3.0.0", "Return the slot ranges and the node serving them." },
    { "shards", 2, clusteremu_shards, CE_INFO, "7.0.0", "Return the shards: their slots and nodes." },
    { "nodes", 2, clusteremu_nodes, CE_INFO, "3.0.0", "Return the cluster configuration as this node sees it." },
    { "info", 2, clusteremu_info, CE_INFO, "3.0.0", "Return the cluster's state." },
    { "myid", 2, clusteremu_id_reply, CE_INFO, "3.0.0", "Return this node's id." },
    { "myshardid", 2, clusteremu_id_reply, CE_INFO, "7.2.0", "Return this node's shard id." },
    { "keyslot", 3, clusteremu_keyslot, CE_INFO, "3.0.0", "Return the hash slot of a key." },
    { "links", 2, clusteremu_links, CE_INFO, "7.0.0", "Return the links to other nodes (none)." },
    { "replicas", 3, clusteremu_about_node, "admin " CE_INFO, "5.0.0", "Return the replicas of a node (none)." },
    { "slaves", 3, clusteremu_about_node, "admin " CE_INFO, "3.0.0", "Return the replicas of a node (none)." },
    { "count-failure-reports", 3, clusteremu_about_node, "admin " CE_INFO, "3.0.0",
      "Return the failure reports about a node (0)." },
    { "countkeysinslot", 3, clusteremu_refuse, CE_INFO, "3.0.0", "Not supported: records live in Redis." },
    { "getkeysinslot", 4, clusteremu_refuse, CE_INFO, "3.0.0", "Not supported: records live in Redis." },
    { "addslots", -3, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: this node owns every slot." },
    { "addslotsrange", -4, clusteremu_refuse, "admin " CE_INFO, "7.0.0", "Not supported: this node owns every slot." },
    { "delslots", -3, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: this node owns every slot." },
    { "delslotsrange", -4, clusteremu_refuse, "admin " CE_INFO, "7.0.0", "Not supported: this node owns every slot." },
    { "flushslots", 2, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: this node owns every slot." },
    { "setslot", -4, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: this node owns every slot." },
    { "meet", -4, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: the cluster is this node." },
    { "forget", 3, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: the cluster is this node." },
    { "replicate", 3, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: the cluster is this node." },
    { "failover", -2, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: the cluster is this node." },
    { "reset", -2, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: the cluster is this node." },
    { "saveconfig", 2, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: there is no nodes file." },
    { "bumpepoch", 2, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: the epoch stays 0." },
    { "set-config-epoch", 3, clusteremu_refuse, "admin " CE_INFO, "3.0.0", "Not supported: the epoch stays 0." },
    { "help", 2, NULL, CE_INFO, "5.0.0", "Show this help." },
    { NULL, 0, NULL, NULL, NULL, NULL },
};

void clusteremu_cluster(struct req *r)
{
    command_sub(r, clusteremu_subs);
}

/* READONLY: reads may go to this node; they always may, there being no
 * replica, so the flag is only shown (CLIENT LIST's 'r'). READWRITE
 * clears it. ASKING: the next command may be for a slot being imported;
 * no slot ever is. All three are true as said: +OK. */
void clusteremu_readonly(struct req *r)
{
    if (r->conn)
        r->conn->cflags |= CONN_F_READONLY;
    resp_simple(req_out(r), "OK");
    req_done(r);
}

void clusteremu_readwrite(struct req *r)
{
    if (r->conn)
        r->conn->cflags &= (unsigned char)~CONN_F_READONLY;
    resp_simple(req_out(r), "OK");
    req_done(r);
}

void clusteremu_asking(struct req *r)
{
    resp_simple(req_out(r), "OK");
    req_done(r);
}
