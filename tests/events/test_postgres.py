"""The event pipeline on PostgreSQL only (COFRE_TEST_DBS=postgres; skipped otherwise):

- three cofre-core replicas on one database: one relays the outbox (an advisory lock held in
  an open transaction on its own connection), the others stand by, so each event is published
  once; the relaying replica killed, another takes over within seconds; its lock session
  terminated by the server, the relay stops and the lock moves on; the lock's session holds
  no snapshot (it does not hold back vacuum);
- three cofre-audit replicas as one consumer group on one database, one of them killed in the
  middle: one consistent hash chain, every transfer exactly once;
- the database stopped under cofre-audit: it stays up, /readyz 503, and recovers by itself;
- `cofre-audit migrate`: the owner migrates (idempotent, concurrent), the service role
  cannot, a newer schema is refused.
"""

import json
import subprocess
import threading
import time
import uuid

import requests

import audit_chain
import pg_cluster
from eventlib import LEDGER_TOPIC, SLOW, base_env, binary, kcat_consume, run_verify, wait_for

LOCK_APP = "cofre-core relay lock"


def published_ids(kafka):
    return [json.loads(m["payload"])["id"] for m in kcat_consume(kafka.bootstrap, LEDGER_TOPIC)]


def standing_by(core):
    return core.find_log(lambda o: "standing by" in o.get("msg", "")) is not None


def relayers(cores):
    """The replicas that published something."""
    return [c for c in cores if c.metric("cofre_outbox_published_total") > 0]


def lock_sessions(backend, db):
    return backend.query(db, "SELECT pid, state, backend_xmin::text AS xmin FROM pg_stat_activity"
                             f" WHERE application_name = '{LOCK_APP}' AND datname = "
                             f"'{backend.dbname(db)}' AND state LIKE 'idle in transaction%'")


def transfers(cores, bank, alice, n):
    for i in range(n):
        r = cores[i % len(cores)].transfer(bank, alice, 3, str(uuid.uuid4()))
        assert r.status_code == 201, r.text


def test_one_relay_among_three_replicas_and_takeover(postgres, stack):
    kafka = stack.kafka()
    cores = [stack.core() for _ in range(3)]
    wait_for(lambda: sum(standing_by(c) for c in cores) == 2, 15, "two replicas standing by")
    holder = next(c for c in cores if not standing_by(c))
    bank = cores[0].open_account("bank", overdraft=True)
    alice = cores[1].open_account("alice")
    transfers(cores, bank, alice, 30)
    holder.wait_outbox_published()
    ids = published_ids(kafka)
    assert len(ids) == 32 and len(set(ids)) == 32, "each event published once"
    assert relayers(cores) == [holder]

    # The lock's transaction holds no snapshot between statements: vacuum is not held back.
    sessions = lock_sessions(postgres, holder.db)
    assert len(sessions) == 1 and sessions[0]["xmin"] is None, sessions

    killed_at = time.monotonic()
    holder.kill()
    rest = [c for c in cores if c is not holder]
    transfers(rest, bank, alice, 10)
    new = wait_for(lambda: next((c for c in rest if c.find_log(
        lambda o: "taking over" in o.get("msg", ""))), None), 15, "a standby to take over")
    takeover_s = time.monotonic() - killed_at
    new.wait_outbox_published(timeout=30)
    ids = published_ids(kafka)
    outbox = {event_id for _, event_id, _ in new.outbox()}
    assert set(ids) == outbox and len(outbox) == 42, "every event published"
    assert len(ids) == 42, "none published twice"
    assert relayers(rest) == [new]
    assert takeover_s < 10 * SLOW, f"takeover took {takeover_s:.1f}s"
    print(f"relay takeover after SIGKILL: {takeover_s:.1f}s")


def test_relay_stops_when_its_lock_session_is_terminated(postgres, stack):
    """The server ends the lock's session (as a failover or an operator would): the relaying
    replica notices at its next heartbeat, stops relaying and stands by; the lock moves to a
    replica that takes it, and events keep flowing, each published once."""
    kafka = stack.kafka()
    cores = [stack.core() for _ in range(2)]
    wait_for(lambda: sum(standing_by(c) for c in cores) == 1, 15, "one replica standing by")
    bank = cores[0].open_account("bank", overdraft=True)
    alice = cores[1].open_account("alice")
    sessions = wait_for(lambda: lock_sessions(postgres, cores[0].db), 10, "the lock session")
    postgres.query(cores[0].db, f"SELECT pg_terminate_backend({sessions[0]['pid']})")
    wait_for(lambda: any(c.find_log(lambda o: "lost the relay lock" in o.get("msg", ""))
                         for c in cores), 10, "the holder to notice")
    wait_for(lambda: len(lock_sessions(postgres, cores[0].db)) == 1, 15, "the lock taken again")
    transfers(cores, bank, alice, 10)
    cores[0].wait_outbox_published(timeout=30)
    ids = published_ids(kafka)
    assert len(ids) == 12 and len(set(ids)) == 12, ids


def run_workload(core, bank, customers, n, results):
    with requests.Session() as s:
        for i in range(n):
            tid = str(uuid.uuid4())
            r = core.transfer(bank, customers[i % len(customers)], 1 + i % 7, tid, session=s)
            results.append((tid, r.status_code))
            time.sleep(0.005)


def test_audit_replicas_keep_one_chain(postgres, stack):
    kafka = stack.kafka()
    core = stack.core()
    audits = [stack.audit(group="replicas", COFRE_AUDIT_SESSION_TIMEOUT_MS="6000",
                          COFRE_AUDIT_CHECKPOINT_RECORDS="20") for _ in range(3)]
    wait_for(lambda: all(a.metric("cofre_audit_group_member") == 1 for a in audits), 30,
             "every replica in the group")
    bank = core.open_account("bank", overdraft=True)
    customers = [core.open_account(f"c{i}") for i in range(8)]
    results = []
    threads = [threading.Thread(target=run_workload, args=(core, bank, customers, 60, results))
               for _ in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(results) >= 80, 60, "a third of the workload")
    audits[0].kill()  # its partitions go to the others; what it had not committed comes again
    for t in threads:
        t.join(timeout=120 * SLOW)
        assert not t.is_alive()
    posted = {tid for tid, status in results if status == 201}
    assert len(posted) == 240
    core.wait_outbox_published(timeout=60)
    want = 240 + 9
    wait_for(lambda: len(audits[1].rows()) >= want, 60, f"{want} records", interval=0.3)
    time.sleep(1)
    rows = audits[1].rows()
    assert len(rows) == want, "no event stored twice"
    assert [r["seq"] for r in rows] == list(range(1, want + 1))
    for seq, computed, stored in audit_chain.chain(rows):
        assert computed == stored, f"record {seq}: the chain is not one chain"
    subjects = [r["subject"] for r in rows if r["type"] == "cofre.transfer.posted"]
    assert sorted(subjects) == sorted(posted)
    stored = sum(a.metric("cofre_audit_events_total", result="stored") for a in audits[1:])
    assert 0 < stored <= want
    for a in audits[1:]:
        verdict = a.verify()
        assert verdict["ok"] and verdict["records"] == want, verdict
    key = audits[1].get("/v1/audit/keys").json()["keys"][0]["public_key"]
    for a in audits[1:]:
        assert a.stop() == 0
    rc, verdict, err = run_verify(audits[1].db, COFRE_AUDIT_TRUSTED_KEYS=key)
    assert rc == 0 and verdict["ok"] and verdict["checkpoints"] >= want // 20, (verdict, err)


def test_audit_rides_out_a_database_outage(postgres, stack):
    """PostgreSQL stopped under cofre-audit: the process stays up (/healthz 200), /readyz turns
    503, and once the database is back it is ready again without a restart and stores what
    came meanwhile."""
    kafka = stack.kafka()
    core = stack.core()
    audit = stack.audit(group="outage")
    bank = core.open_account("bank", overdraft=True)
    alice = core.open_account("alice")
    transfers([core], bank, alice, 5)
    wait_for(lambda: audit.metric("cofre_audit_records") == 7, 30, "7 records", interval=0.2)
    cluster = postgres.cluster
    cluster.stop("fast")
    try:
        wait_for(lambda: audit.get("/readyz").status_code == 503, 15, "readiness to fail")
        assert "audit store" in audit.get("/readyz").text
        assert audit.get("/healthz").status_code == 200
        time.sleep(2)
        assert audit.proc.poll() is None
    finally:
        cluster.start()
    audit.wait_ready(timeout=30)
    core.wait_ready(timeout=30)
    transfers([core], bank, alice, 5)
    wait_for(lambda: audit.metric("cofre_audit_records") == 12, 30, "12 records", interval=0.2)
    assert audit.verify()["ok"]
    assert kafka.proc.poll() is None


def migrate(url):
    return subprocess.run([binary("cofre-audit"), "migrate"], env=base_env(COFRE_DB=url),
                          capture_output=True, text=True, timeout=60 * SLOW)


def test_audit_migrations(postgres, tmp_path):
    c = postgres.cluster
    name = c.create_db(f"audit_migrate_{uuid.uuid4().hex[:8]}")
    owner, service = c.url(name, user=pg_cluster.OWNER), c.url(name, user="cofre_audit")

    r = migrate(service)  # the service role cannot create the schema
    assert r.returncode == 1 and "owner role" in r.stdout, r
    procs = [subprocess.Popen([binary("cofre-audit"), "migrate"], env=base_env(COFRE_DB=owner),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    assert [p.wait(timeout=60 * SLOW) for p in procs] == [0, 0, 0]
    versions = postgres.query(owner, "SELECT version FROM cofre_audit_schema_migrations")
    assert [v["version"] for v in versions] == [1]
    r = migrate(owner)
    assert r.returncode == 0 and "up to date" in r.stdout, r
    r = migrate(service)  # up to date: only checked, which the service role may do
    assert r.returncode == 0, r

    postgres.owner_script(owner, "INSERT INTO cofre_audit_schema_migrations (version, name) "
                                 "VALUES (999, 'from the future')")
    r = migrate(owner)
    assert r.returncode == 1 and "newer" in r.stdout, r
    key = str(tmp_path / "key")
    subprocess.run([binary("cofre-audit"), "keygen", key], check=True, capture_output=True)
    r = subprocess.run([binary("cofre-audit")], env=base_env(
        COFRE_DB=service, COFRE_AUTH="off", COFRE_AUDIT_SIGNING_KEY_FILE=key),
        capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 1 and "newer" in r.stdout, r
    assert '"listening"' not in r.stdout


def test_one_relay_through_pgbouncer_transaction_mode(postgres, stack):
    """The relay lock is a transaction's, so it holds through PgBouncer in transaction pooling
    mode (it pins one server connection): one relay among two replicas, and a takeover when
    the relaying one is killed (PgBouncer drops the server connection of a client that left
    in a transaction, which ends it)."""
    bouncer = pg_cluster.PgBouncer(postgres.cluster, pool_size=6).start()
    try:
        kafka = stack.kafka()
        direct = postgres.new_db(stack._dir("core"), "core")
        pooled = bouncer.url(postgres.dbname(direct))
        cores = [stack.core(db=pooled) for _ in range(2)]
        wait_for(lambda: sum(standing_by(c) for c in cores) == 1, 15, "one replica standing by")
        holder = next(c for c in cores if not standing_by(c))
        bank = cores[0].open_account("bank", overdraft=True)
        alice = cores[1].open_account("alice")
        transfers(cores, bank, alice, 10)
        holder.wait_outbox_published()
        assert sorted(published_ids(kafka)) == sorted(e for _, e, _ in holder.outbox())
        assert relayers(cores) == [holder]
        killed_at = time.monotonic()
        holder.kill()
        other = next(c for c in cores if c is not holder)
        transfers([other], bank, alice, 5)
        wait_for(lambda: other.find_log(lambda o: "taking over" in o.get("msg", "")), 25,
                 "the other replica to take over")
        print(f"relay takeover through PgBouncer: {time.monotonic() - killed_at:.1f}s")
        other.wait_outbox_published(timeout=30)
        ids = published_ids(kafka)
        assert len(ids) == 17 and len(set(ids)) == 17, ids
    finally:
        stack.finish()
        bouncer.stop()
