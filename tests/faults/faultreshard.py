# SPDX-License-Identifier: BSD-3-Clause
"""The reshard measurement of the fault suite (faults.py --topology cluster
--reshard-keys N; tests/faults/README.md): slots holding N cached records
move from one primary to another while the suite's load and a load of
their own records run, and the figures a user asks of a reshard are
printed: failed requests, answers that broke an invariant, upstream reads
per key, the latency of reads before and during the move, and the
daemons' Redis counters.  Standard library only.
"""
import random
import threading
import time

from cstest import Conn, RespError, enc
from faultcheck import B, BASE_LATENCY_MS, FORMATS, MAX_FETCHES, NO_REPLY_S, PREFIX, S, log, request
from faultproc import now
from faulttopo import counters_grew, daemon_counters, rcmd, slot_of_id

NS = "m"                    # the records' namespace; the proxy makes them (any id exists)
NSLOTS = 1024               # slots moved: a contiguous run of the old owner's
GROUP = 64                  # slots in migration at once
COLD = 320                  # ids never read before the move: each read once, through every daemon at once
CLIENTS_PER_DAEMON = 2
RECORD_TTL_S = 600


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100.0))] if xs else float("nan")


class Reshard:
    def __init__(self, topo, proxy, nkeys):
        # Before the daemons write their configuration: they serve NS too.
        FORMATS[NS] = "hash"
        proxy.made[NS] = BASE_LATENCY_MS / 1000.0
        self.topo, self.nkeys = topo, nkeys
        self.outcomes = {"before": [], "during": [], "after": []}
        self.when = "before"
        self.stop = False
        self.cold_read = []         # keys read cold, during their slot's migration
        self.cold_out = []
        self.figures = None

    def plan(self):
        """The slots that move (a run of one primary's) and the ids in them:
        the first NKEYS are cached before the move, the next COLD are not."""
        smap = self.topo.slot_map()
        prims = self.topo.primaries(smap)
        self.src = random.choice(prims)
        self.dst = random.choice([p for p in prims if p != self.src])
        own = sorted(self.topo.slots_of(self.src, smap))
        self.slots = own[:min(NSLOTS, len(own))]
        want = set(self.slots)
        ids, i = [], 0
        while len(ids) < self.nkeys + COLD * len(self.slots) // NSLOTS:
            i += 1
            rid = "m-%07d" % i
            if slot_of_id(rid) in want:
                ids.append(rid)
        self.ids, self.cold = ids[:self.nkeys], ids[self.nkeys:]

    def populate(self):
        """The records, written to their primary in the shape fill.lua
        writes (__exp in Redis's milliseconds, then the fields), each one
        known to the suite as version 0 of its key."""
        t = rcmd(self.src, "TIME")
        exp = int(t[0]) * 1000 + int(t[1]) // 1000 + RECORD_TTL_S * 1000
        c = Conn(self.src, 30)
        try:
            for i in range(0, len(self.ids), 1000):
                batch = self.ids[i:i + 1000]
                buf = []
                for rid in batch:
                    k = "%s%s:{%s}" % (PREFIX, NS, rid)
                    buf.append(enc("HSET", k, "__exp", str(exp), "id", rid, "name", "cached", "ver", "0"))
                    buf.append(enc("PEXPIRE", k, str(RECORD_TTL_S * 1000)))
                c.s.sendall(b"".join(buf))
                for _ in range(2 * len(batch)):
                    r = c.reply()
                    if isinstance(r, RespError):
                        raise RuntimeError("populating the reshard's records: %s" % r)
        finally:
            c.close()
        t0 = now()
        with B.lock:
            for rid in self.ids:
                B.served.add(("%s:%s" % (NS, rid), 0))
                B.fetch_start[("%s:%s" % (NS, rid), 0)] = t0

    def reader(self, d):
        conn = None
        while not self.stop:
            if conn is None:
                try:
                    conn = Conn(d.port, NO_REPLY_S)
                except OSError:
                    S.violation("reply-bound", "daemon %d: cannot connect" % d.idx)
                    time.sleep(0.2)
                    continue
            k = "%s:%s" % (NS, random.choice(self.ids))
            if not request(d, conn, ["HGETALL", k], [k], self.outcomes[self.when]):
                self.outcomes[self.when].append((now(), 0.0, False, "no reply"))
                conn.close()
                conn = None
            time.sleep(random.random() * 0.01)
        if conn:
            conn.close()

    def read_cold(self, daemons, rids):
        """A thread that reads each of RIDS through every daemon at once,
        MAX_FETCHES ids at a time (more would be refused -TRYAGAIN upstream
        busy, max_upstream_fetches)."""
        def one(d, k):
            try:
                c = Conn(d.port, NO_REPLY_S)
            except OSError:
                self.cold_out.append((now(), 0.0, False, "no connection"))
                return
            if not request(d, c, ["HGETALL", k], [k], self.cold_out):
                self.cold_out.append((now(), 0.0, False, "no reply"))
            c.close()
        def waves():
            for i in range(0, len(rids), MAX_FETCHES):
                ths = []
                for rid in rids[i:i + MAX_FETCHES]:
                    k = "%s:%s" % (NS, rid)
                    self.cold_read.append(k)
                    ths += [threading.Thread(target=one, args=(d, k)) for d in daemons]
                for th in ths:
                    th.start()
                for th in ths:
                    th.join()
        th = threading.Thread(target=waves)
        th.start()
        return th

    def run(self, daemons):
        t = now()
        self.plan()
        self.populate()
        log("reshard: %d records and %d cold ids in %d slots of port %d (moving to %d), written in %.1f s"
            % (len(self.ids), len(self.cold), len(self.slots), self.src, self.dst, now() - t))
        cold_of = {}
        for rid in self.cold:
            cold_of.setdefault(slot_of_id(rid), []).append(rid)
        ths = [threading.Thread(target=self.reader, args=(d,))
               for d in daemons for _ in range(CLIENTS_PER_DAEMON)]
        for th in ths:
            th.start()
        try:
            time.sleep(5)
            c0 = daemon_counters(daemons)
            self.when, t0 = "during", now()
            for i in range(0, len(self.slots), GROUP):
                slots = self.slots[i:i + GROUP]
                self.topo.begin_migration(slots, self.src, self.dst)
                cold = self.read_cold(daemons, [rid for s in slots for rid in cold_of.get(s, ())])
                for s in slots:
                    while self.topo.move_keys(s, self.src, self.dst, 100):
                        pass
                cold.join()         # answered before the slots' migration ends
                self.topo.end_migration(slots, self.src, self.dst)
            t1 = now()
            self.when = "after"
            time.sleep(3)
        finally:
            self.stop = True
            for th in ths:
                th.join(NO_REPLY_S + 5)
        c1 = daemon_counters(daemons)
        left = sum(int(rcmd(self.src, "CLUSTER", "COUNTKEYSINSLOT", str(s)) or 0) for s in self.slots)
        moved = sum(int(rcmd(self.dst, "CLUSTER", "COUNTKEYSINSLOT", str(s)) or 0) for s in self.slots)
        self.figures = (t0, t1, c0, c1, left, moved)

    def report(self):
        """The figures, once the run's invariants are judged (summary's info lines)."""
        if not self.figures:
            return
        t0, t1, c0, c1, left, moved = self.figures
        with B.lock:
            reads = [r for r in B.reads if r["ns"] == NS and t0 <= r["start"] <= t1]
        per = {}
        for r in reads:
            per[r["key"]] = per.get(r["key"], 0) + 1
        cold = [per.get(k, 0) for k in self.cold_read]
        cached = sum(n for k, n in per.items() if k not in set(self.cold_read))
        during, before = self.outcomes["during"], self.outcomes["before"]
        failed = sum(1 for o in during + self.cold_out if not o[2])
        viol = sum(n for (inv, ph), (n, _) in S.viol.items() if ph == "reshard")
        why = {}
        for o in during + self.cold_out:
            if not o[2]:
                why[o[3]] = why.get(o[3], 0) + 1
        S.infos.append("reshard: %d slots holding %d cached records moved from port %d to %d in %.1f s "
                       "(%d slots at a time), %d records on the new owner after, %d left behind"
                       % (len(self.slots), len(self.ids), self.src, self.dst, t1 - t0, GROUP, moved, left))
        S.infos.append("reshard: %d reads of its records and cold ids during the move, %d failed; "
                       "%d violations of the invariants in the phase (every invariant, all load)%s"
                       % (len(during) + len(self.cold_out), failed, viol,
                          "".join("; %d answered %s" % (n, w) for w, n in sorted(why.items()))))
        S.infos.append("reshard: upstream reads per cold id read during its slot's migration (through 3 "
                       "daemons at once): %d ids, max %d, mean %.2f; upstream reads of the cached records: %d"
                       % (len(cold), max(cold, default=0), sum(cold) / max(1, len(cold)), cached))
        S.infos.append("reshard: latency of reads p50/p99 before %.1f/%.1f ms (%d reads), during %.1f/%.1f ms"
                       % (1000 * pct([o[1] for o in before if o[2]], 50),
                          1000 * pct([o[1] for o in before if o[2]], 99), len(before),
                          1000 * pct([o[1] for o in during if o[2]], 50),
                          1000 * pct([o[1] for o in during if o[2]], 99)))
        S.infos.append("reshard: the daemons' counters over the move: %s" % counters_grew(c0, c1))

