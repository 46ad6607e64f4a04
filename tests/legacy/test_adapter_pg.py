"""Black-box tests of cofre-legacy replicas sharing one PostgreSQL delivery store
(docs/legacy-iso8583.md, "Several replicas on PostgreSQL").

The real binaries run on loopback as in test_adapter.py: cofre-kafka-dev (6 partitions),
cofre-core, cofre-legacy-sim and one or two cofre-legacy replicas in one consumer group, on a
fresh database of the session's cluster (migrated as the owner role, used as the service
role). Besides reconcile and the host's ledger (every posted transfer in effect exactly once),
the tests read the lease table the way an operator would, and the host's journal: a transfer
sent by a second replica while another still had it in flight would show there as a
`duplicate` (a second 0200 for an applied RRN without a reversal in between).

Run with COFRE_LEGACY_STORES=postgres (`make test-legacy-postgres`); skipped otherwise.
"""

import signal
import time

import pytest

from adapterhelp import (STORES, Adapter, Core, KafkaDev, Workload, journal, settle_all,
                         wait_for)

pytestmark = pytest.mark.skipif("postgres" not in STORES,
                                reason="COFRE_LEGACY_STORES does not name postgres")

PARTITIONS = 6  # cofre-kafka-dev's default


@pytest.fixture
def pgstack(tmp_path, make_sim, pg):
    """.start(core_on_pg) starts Kafka, the core (on SQLite, or on its own PostgreSQL database)
    and the simulator; .adapter(**env) starts a cofre-legacy replica on the shared store.
    Afterwards every process is stopped; each run must have exited 0 (or by the test's own
    SIGKILL) without a sanitizer report."""
    class PgStack:
        def __init__(self):
            self.pg = pg
            self.db = pg.legacy_db()
            self.adapters = []
            self.kafka = self.core = self.sim = None

        def start(self, core_on_pg=False):
            self.kafka = KafkaDev(tmp_path).start()
            self.core = Core(tmp_path, self.kafka.bootstrap,
                             db=pg.core_db() if core_on_pg else None).start()
            self.sim = make_sim(COFRE_SIM_SEED=12, COFRE_SIM_AMOUNT_MAX=999999999999)
            return self

        def adapter(self, db=None, **env):
            a = Adapter(tmp_path, self.kafka.bootstrap, self.sim.iso_port, db=db or self.db,
                        **env).start()
            a.owner = a.wait_log("cofre-legacy started")["owner"]
            self.adapters.append(a)
            return a

        def leases(self):
            """{partition: {owner, lease_until, acquired_at, handovers}} (times: epoch s)."""
            rows = pg.query(self.db, "SELECT partition, owner, "
                                     "extract(epoch FROM lease_until)::float8, "
                                     "extract(epoch FROM acquired_at)::float8, handovers "
                                     "FROM legacy_partition_leases ORDER BY partition")
            return {r[0]: {"owner": r[1], "lease_until": r[2], "acquired_at": r[3],
                           "handovers": r[4]} for r in rows}

        def owners(self):
            """{partition: owner} of the leases live now."""
            rows = pg.query(self.db, "SELECT partition, owner FROM legacy_partition_leases "
                                     "WHERE lease_until > clock_timestamp()")
            return dict(rows)

        def sql(self, statement):
            return pg.query(self.db, statement)

    s = PgStack()
    yield s
    procs = [p for p in s.adapters + [s.core, s.kafka] if p is not None]
    for p in procs:  # every one stopped before any is judged
        p.stop()
    for p in procs:
        for rc, sig, flagged in p.exits:
            assert not flagged, f"{p.name}: {flagged}"
            assert rc == 0 or sig == signal.SIGKILL, f"{p.name} exited {rc} after {sig}"


def wait_owned(s, adapters, timeout=30):
    """Waits until every partition is leased, each to one of adapters and each of them holding
    at least one; returns {partition: owner}."""
    want = {a.owner for a in adapters}

    def split():
        owners = s.owners()
        ok = len(owners) == PARTITIONS and set(owners.values()) == want
        return owners if ok else None
    return wait_for(f"the partitions leased to {len(adapters)} replica(s)", split, timeout, 0.2)


def logged(adapter, msg):
    return [r for r in adapter.logs() if r.get("msg") == msg]


def delivered(adapter):
    return {r["transfer_id"] for r in logged(adapter, "delivered to the legacy host")}


def no_duplicates_at_the_host(sim):
    """The host never saw a 0200 for an RRN already in effect (a second replica sending what
    another had in flight, or a retry without its reversal)."""
    kinds = [e["kind"] for e in journal(sim)]
    assert "duplicate" not in kinds and "late-original" not in kinds, \
        {k: kinds.count(k) for k in set(kinds)}
    return kinds


def test_a_replica_killed_mid_stream_is_taken_over_after_its_lease(pgstack):
    """Two replicas in one group split the six partitions; one is killed (SIGKILL) with 0200s
    in flight. The survivor gets the dead replica's partitions from Kafka, but takes each
    lease only once it expired (acquired_at >= the dead replica's lease_until, on the
    database's clock), then resumes those deliveries: the transmissions left "sent" are
    reversed first. Every posted transfer is applied at the host exactly once, the host never
    saw a duplicate 0200, no transfer is logged delivered by both replicas, and reconcile over
    the core's PostgreSQL ledger and the shared store is clean."""
    s = pgstack.start(core_on_pg=True)
    # The lease (12 s), not Kafka's session (6 s), is what the takeover waits for; answers
    # take 2.5 s, so the killed replica surely has requests out.
    env = {"COFRE_LEGACY_LEASE_MS": 12000, "COFRE_LEGACY_TIMEOUT_MS": 5000,
           "COFRE_LEGACY_SESSION_TIMEOUT_MS": 6000, "COFRE_LEGACY_BREAKER_FAILURES": 1000}
    a = s.adapter(**env)
    b = s.adapter(**env)
    wait_owned(s, [a, b])
    s.sim.ok("latency 2500")
    w = Workload(s.core, seed=21).run(50)
    wait_for("the first replica to have deliveries in flight",
             lambda: a.metric("cofre_legacy_in_flight") >= 1, 30, 0.05)
    held = {p: lease for p, lease in s.leases().items() if lease["owner"] == a.owner}
    a.stop(signal.SIGKILL)
    assert held, "the killed replica held no partition"
    sent_left = s.sql("SELECT count(*) FROM legacy_deliveries WHERE state = 'sent' AND "
                      f"kafka_partition IN ({','.join(str(p) for p in held)})")[0][0]
    assert sent_left >= 1, "nothing was in flight at the kill"
    w.run(30)
    s.sim.ok("latency 0")
    wait_owned(s, [b], timeout=60)
    after = s.leases()
    for p, lease in held.items():
        assert after[p]["owner"] == b.owner
        assert after[p]["acquired_at"] >= lease["lease_until"], (p, lease, after[p])
        assert after[p]["handovers"] >= 1
    taken = [r for r in logged(b, "partition lease acquired")
             if r.get("previous_owner") == a.owner]
    assert {r["partition"] for r in taken} == set(held)
    settle_all(s.core, s.sim, b, w.posted, timeout=90)
    assert logged(b, "resuming a transmission of unknown outcome; reversing")
    kinds = no_duplicates_at_the_host(s.sim)
    assert "reverse" in kinds or "reverse-unknown" in kinds
    assert not delivered(a) & delivered(b)


def test_a_rebalance_hands_partitions_over_without_waiting_for_expiry(pgstack):
    """A second replica joins while the first delivers through a slow host: the first releases
    the partitions Kafka moves once nothing of them is in flight, and the newcomer takes them
    at once (well within the 20 s lease). A replica stopped with SIGTERM releases its leases at
    shutdown and the other takes them at once too. Exactly once at the host throughout."""
    s = pgstack.start()
    env = {"COFRE_LEGACY_LEASE_MS": 20000, "COFRE_LEGACY_BREAKER_FAILURES": 1000}
    a = s.adapter(**env)
    wait_owned(s, [a])
    s.sim.ok("latency 40")
    w = Workload(s.core, seed=22).run(40)
    b = s.adapter(**env)
    t0 = time.monotonic()
    owners = wait_owned(s, [a, b], timeout=40)
    assert time.monotonic() - t0 < 15
    moved = {p for p, o in owners.items() if o == b.owner}
    released = {r["partition"] for r in logged(a, "partition lease released")}
    assert moved <= released, (moved, released)
    taken = {r["partition"] for r in logged(b, "partition lease acquired")
             if r.get("previous_owner") == a.owner}
    assert taken == moved
    w.run(40)
    s.sim.ok("latency 0")
    settle_all(s.core, s.sim, a, w.posted, idle=(b,))
    # A graceful stop releases the leases: the other replica need not wait for them.
    t0 = time.monotonic()
    assert b.stop() == 0
    wait_owned(s, [a], timeout=30)
    assert time.monotonic() - t0 < 15
    assert {r["partition"] for r in logged(b, "partition lease released")} >= moved
    w.run(30)
    settle_all(s.core, s.sim, a, w.posted)
    no_duplicates_at_the_host(s.sim)
    assert not delivered(a) & delivered(b)


def test_partitions_leased_to_another_owner_are_left_alone(pgstack):
    """Three partitions' leases pass to another owner (as if another replica had taken them
    over after an expiry): the replica notices at its next renewal, stores and delivers
    nothing of them (their events stay unconsumed, the group's lag shows them) while the
    other partitions flow; once that owner releases them, the replica takes them back and
    delivers everything exactly once."""
    s = pgstack.start()
    a = s.adapter(COFRE_LEGACY_LEASE_MS=5000)
    wait_owned(s, [a])
    s.sql("UPDATE legacy_partition_leases SET owner = 'another-replica', "
          "lease_until = clock_timestamp() + interval '1 hour' WHERE partition IN (0, 1, 2)")
    wait_for("the leases lost", lambda: a.metric(
        "cofre_legacy_partition_lease_changes_total", change="lost") >= 3, 15)
    assert a.metric("cofre_legacy_partitions_leased") == 3
    mark = s.sql("SELECT COALESCE(max(seq), 0) FROM legacy_deliveries")[0][0]
    w = Workload(s.core, seed=23).run(60)
    wait_for("the other partitions delivered", lambda: a.metric("cofre_legacy_backlog") == 0
             and a.metric("cofre_legacy_deliveries_total", outcome="approved") >= 10, 30)

    def stalled():
        lag = sum(a.metric("cofre_legacy_consumer_lag", topic="cofre.ledger.events",
                           partition=str(p)) for p in (0, 1, 2))
        return lag if lag > 0 else None
    wait_for("events of the foreign partitions waiting in Kafka", stalled, 15)
    stored = s.sql("SELECT count(*) FROM legacy_deliveries WHERE kafka_partition IN (0, 1, 2) "
                   f"AND seq > {mark}")[0][0]
    assert stored == 0
    s.sql("UPDATE legacy_partition_leases SET lease_until = '-infinity' "
          "WHERE owner = 'another-replica'")
    wait_owned(s, [a], timeout=20)
    settle_all(s.core, s.sim, a, w.posted)
    no_duplicates_at_the_host(s.sim)


def transfers_and_reversals(sim):
    """0200s and 0400s the host received (its requests less the 0800 sign-ons and echoes)."""
    st = sim.status()
    return st["requests"] - st["network"]


def test_the_database_going_away(pgstack):
    """PostgreSQL is stopped (immediate mode) while the replica works through a queue of
    deliveries (one request in flight at a time, answers taking 200 ms): cofre-legacy stays
    up, /readyz answers 503 naming the store, and not one more 0200 reaches the host though
    the queue still holds deliveries due now, because none can be marked "sent" durably first.
    When the database is back the replica reconnects by itself and delivers everything exactly
    once. Then idle: /readyz 503 while the store is gone, 200 again as soon as it answers."""
    s = pgstack.start()
    a = s.adapter(COFRE_LEGACY_LEASE_MS=20000, COFRE_LEGACY_WINDOW=1)
    wait_owned(s, [a])
    s.sim.ok("latency 200")
    w = Workload(s.core, seed=24).run(40)
    wait_for("a queue being worked through", lambda: a.metric(
        "cofre_legacy_deliveries_total", outcome="approved") >= 3 and a.metric(
        "cofre_legacy_deliveries_active") >= 10, 30, 0.05)
    cluster = s.pg.cluster
    cluster.stop("immediate")
    try:
        seen = {}

        def not_ready():
            r = a.get("/readyz")
            if r.status_code == 503:
                seen["reason"] = r.json().get("reason")
            return r.status_code == 503
        wait_for("/readyz 503", not_ready, 20, 0.1)
        assert seen["reason"] == "delivery store unavailable", seen
        assert a.get("/healthz").status_code == 200
        w.run(20)  # the core is on SQLite: events keep coming
        # The request out at the outage ends within its 200 ms; the queue stays due.
        time.sleep(1)
        requests = transfers_and_reversals(s.sim)
        time.sleep(4)
        assert transfers_and_reversals(s.sim) == requests
        assert a.running() and a.metric("cofre_legacy_deliveries_active") >= 5
        assert a.metric("cofre_legacy_breaker_state") == 0
    finally:
        cluster.start()
    s.sim.ok("latency 0")
    settle_all(s.core, s.sim, a, w.posted, timeout=90)
    assert a.metric("cofre_legacy_store_up") == 1
    assert logged(a, "postgresql connection restored")
    no_duplicates_at_the_host(s.sim)
    # Idle, the same: not ready while the store is gone, ready again once it answers.
    cluster.stop("immediate")
    try:
        wait_for("/readyz 503 while idle", lambda: a.get("/readyz").status_code == 503, 20, 0.1)
        time.sleep(3)  # both threads find out (the consumer checks its outbox every second)
    finally:
        cluster.start()
    wait_for("/readyz 200 again", lambda: a.get("/readyz").status_code == 200, 20, 0.1)


def test_replicas_through_pgbouncer_in_transaction_mode(pgstack):
    """Two replicas reach the database through PgBouncer in transaction pooling mode with two
    server connections for their four: nothing is held between transactions (leases are rows,
    locks are transaction-level), named statements fall back to unnamed ones, and every posted
    transfer is applied exactly once."""
    s = pgstack.start()
    bouncer = s.pg.bouncer(pool_size=2)
    try:
        url = bouncer.url(s.db.rsplit("/", 1)[1], user=s.pg.APP)
        a = s.adapter(db=url)
        b = s.adapter(db=url)
        wait_owned(s, [a, b])
        w = Workload(s.core, seed=25).run(60)
        settle_all(s.core, s.sim, a, w.posted, idle=(b,))
        wait_owned(s, [a, b])  # both still renew their leases through the pooler
        no_duplicates_at_the_host(s.sim)
    finally:
        for r in s.adapters:
            r.stop()
        bouncer.stop()
