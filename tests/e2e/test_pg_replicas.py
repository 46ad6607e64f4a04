"""PostgreSQL only: several cofre-core replicas on one database, directly and through
PgBouncer in transaction pooling mode.

- A concurrent random workload over three replicas (two committers each) keeps the ledger
  invariants (pg_workload.check_invariants) and every replica commits some of it.
- The same Idempotency-Key sent to two replicas at the same moment has one effect: one
  answer is the original, the other its replay; with different bodies, the second is 422.
"""

import threading
import time

import pytest
import requests

from cofre_api import Api, new_key
import pg_cluster
import pg_workload

LOAD_S = 4.0
REPLICA_ENV = {"COFRE_COMMITTERS": "2", "COFRE_READERS": "2"}


@pytest.fixture(autouse=True)
def _postgres_only(backend):
    if backend.name != "postgres":
        pytest.skip("PostgreSQL only")


def start_replicas(core_factory, db=None, n=3, env=None):
    first = core_factory(db=db, env=env or REPLICA_ENV)
    return [first] + [core_factory(db=first.db, env=env or REPLICA_ENV) for _ in range(n - 1)]


def transfer_count(backend, db):
    return backend.query(db, "SELECT count(*) FROM transfers")[0][0]


def run_workload(backend, replicas, seed, threads=8, load_s=LOAD_S):
    bases = [r.base for r in replicas]
    accounts = pg_workload.setup_accounts(bases[0])
    baseline = transfer_count(backend, replicas[0].db)
    w = pg_workload.Workload(bases, accounts, seed=seed).start(threads)
    time.sleep(load_s)
    w.finish()
    pg_workload.check_invariants(backend, replicas[0].db, w, baseline)
    return w


def test_three_replicas_keep_the_invariants(backend, core_factory):
    """Three replicas, eight clients, random transfers (some overdrawing, some in the wrong
    currency): invariants hold, and each replica acknowledged a share of the work."""
    replicas = start_replicas(core_factory)
    w = run_workload(backend, replicas, seed=1)
    assert len(w.ok) > 100, f"only {len(w.ok)} transfers acknowledged"
    assert any(code == "insufficient_funds" for _s, code in w.rejected.values()), w.rejected
    assert not w.unknown, f"{len(w.unknown)} transfers never got a final answer"
    for r in replicas:
        assert w.by_replica[r.base] > 10, dict(w.by_replica)


def same_key_pair(bases, bodies, key):
    """Posts bodies[i] to bases[i] with one key, both released by a barrier at once."""
    barrier = threading.Barrier(2)
    out = [None, None]
    sessions = [requests.Session(), requests.Session()]
    for s, b in zip(sessions, bases):
        s.get(b + "/healthz", timeout=5)  # warm connections, so both requests leave together

    def one(i):
        barrier.wait(timeout=10)
        out[i] = sessions[i].post(bases[i] + "/v1/transfers", json=bodies[i], timeout=15,
                                  headers={"Idempotency-Key": key})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in sessions:
        s.close()
    return out


def conflict_count(core):
    text = requests.get(core.base + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('cofre_committer_failures_total{reason="conflict"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("same_body", [True, False], ids=["same-body", "other-body"])
def test_same_key_on_two_replicas_has_one_effect(backend, core_factory, same_body):
    """30 rounds of one key sent to two replicas at the same moment (server-generated transfer
    ids, so two effects would show as two rows): exactly one transfer per round. Same body:
    both answers 201 with the same transfer, exactly one of them a replay. Another body: one
    201 and one 422 idempotency_key_reused."""
    replicas = start_replicas(core_factory, n=2)
    api = Api(replicas[0].base)
    s = api.settlement("EUR")
    a = api.open_account(owner="a")
    b = api.open_account(owner="b")
    api.close()
    before = transfer_count(backend, replicas[0].db)
    rounds = 30
    for i in range(rounds):
        body = {"debit_account_id": s["id"], "credit_account_id": a["id"], "amount": 1 + i,
                "currency": "EUR"}
        # Other accounts: no lock in common, so the race is decided by the key's unique index.
        other = dict(body, credit_account_id=b["id"], amount=1000 + i)
        r0, r1 = same_key_pair([replicas[0].base, replicas[1].base],
                               [body, body if same_body else other], new_key())
        if same_body:
            assert (r0.status_code, r1.status_code) == (201, 201), (r0.text, r1.text)
            assert r0.json() == r1.json(), (r0.text, r1.text)
            replayed = [r.headers.get("Idempotency-Replayed") == "true" for r in (r0, r1)]
            assert sorted(replayed) == [False, True], replayed
        else:
            codes = sorted([r0.status_code, r1.status_code])
            assert codes == [201, 422], (r0.text, r1.text)
            loser = r0 if r0.status_code == 422 else r1
            assert loser.json()["code"] == "idempotency_key_reused", loser.text
    assert transfer_count(backend, replicas[0].db) == before + rounds
    conflicts = sum(conflict_count(r) for r in replicas)
    print(f"committer conflicts: {conflicts}")
    if same_body:
        total = backend.query(replicas[0].db, "SELECT sum(amount) FROM transfers "
                              f"WHERE credit_account_id = '{a['id']}'")[0][0]
        assert total == sum(1 + i for i in range(rounds))


@pytest.fixture
def bouncer(backend):
    b = pg_cluster.PgBouncer(backend.cluster, pool_size=3).start()
    yield b
    b.stop()


def test_workload_through_pgbouncer_transaction_mode(backend, core_factory, bouncer):
    """PgBouncer in transaction mode with 3 server connections for 3 replicas x 4 connections
    each (so consecutive transactions of one client land on different server connections):
    the schema migrates through it, the workload keeps the invariants, and the same key on
    two replicas still has one effect."""
    name = backend.create_db()
    r = backend.migrate(bouncer.url(name, user=pg_cluster.OWNER))
    assert r.returncode == 0, r
    replicas = start_replicas(core_factory, db=bouncer.url(name))
    w = run_workload(backend, replicas, seed=2, threads=6)
    assert len(w.ok) > 50, f"only {len(w.ok)} transfers acknowledged"
    assert not w.unknown, f"{len(w.unknown)} transfers never got a final answer"
    servers = backend.cluster.sql(
        f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' "
        f"AND usename = '{pg_cluster.APP}'")[0][0]
    assert servers <= 3, f"{servers} server connections behind a pool of 3"
    api = Api(replicas[0].base)
    s, a = api.settlement("EUR"), api.open_account(owner="b")
    api.close()
    body = {"debit_account_id": s["id"], "credit_account_id": a["id"], "amount": 7,
            "currency": "EUR"}
    before = transfer_count(backend, replicas[0].db)
    r0, r1 = same_key_pair([replicas[1].base, replicas[2].base], [body, body], new_key())
    assert (r0.status_code, r1.status_code) == (201, 201) and r0.json() == r1.json()
    assert transfer_count(backend, replicas[0].db) == before + 1


def test_reads_through_pgbouncer(backend, core_factory, bouncer):
    """Every read path (account, transfer, both lists) answers through the pooler."""
    name = backend.create_db()
    assert backend.migrate(bouncer.url(name, user=pg_cluster.OWNER)).returncode == 0
    core = core_factory(db=bouncer.url(name))
    api = Api(core.base)
    try:
        s, a = api.settlement("EUR"), api.open_account(owner="reader")
        t = api.move(s, a, 5)
        for _ in range(5):
            assert api.account(a["id"])["balance"] == 5
            assert api.get(f"/v1/transfers/{t['id']}").json() == t
            assert [x["id"] for x in api.account_transfers(a["id"])] == [t["id"]]
            assert {x["id"] for x in api.all_accounts()} == {s["id"], a["id"]}
    finally:
        api.close()


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_unique_race_with_another_writer_is_redone(backend, core, outcome):
    """Another writer (standing in for a replica caught mid-commit) holds an uncommitted
    idempotency row with the key a request is about to use. The request's batch blocks on
    that key's unique index; when the other writer commits, the batch hits a unique
    violation, is redone, and answers from what the other writer stored (422: another
    request's key) without any effect; when it rolls back, the batch goes through (201)."""
    api = Api(core.base)
    s, a = api.settlement("EUR"), api.open_account(owner="race")
    api.close()
    key = new_key()
    before = transfer_count(backend, core.db)
    conflicts0 = conflict_count(core)
    other = backend.cluster.connect(backend.dbname(core.db))
    other.autocommit = False
    try:
        with other.cursor() as cur:
            cur.execute("INSERT INTO idempotency (client_id, key, request_hash, status, body, "
                        "created_at) VALUES ('local', %s, decode(repeat('ab', 32), 'hex'), 201, "
                        "'{}', now())", (key,))
        out = {}

        def post():
            out["r"] = requests.post(core.base + "/v1/transfers", timeout=15,
                                     headers={"Idempotency-Key": key},
                                     json={"debit_account_id": s["id"], "credit_account_id":
                                           a["id"], "amount": 3, "currency": "EUR"})

        t = threading.Thread(target=post)
        t.start()
        time.sleep(0.5)
        assert "r" not in out, f"answered while the key was held: {out['r'].text}"
        if outcome == "commit":
            other.commit()
        else:
            other.rollback()
        t.join(15)
        r = out["r"]
    finally:
        other.close()
    if outcome == "commit":
        assert conflict_count(core) > conflicts0, "the batch was not redone after the conflict"
        assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused", r.text
        assert transfer_count(backend, core.db) == before
    else:
        assert r.status_code == 201, r.text
        assert conflict_count(core) == conflicts0, "a conflict without another writer"
        assert transfer_count(backend, core.db) == before + 1
