"""PostgreSQL only: migrations and the schema as a second line of defence.

Migrations (`cofre-core migrate`, as the owner role): from an empty database; re-run (a
no-op); four at once on one empty database (one applies, the others wait on the advisory
lock and find nothing to do); a schema newer than the binary is refused, by `migrate` and by
a server starting with COFRE_MIGRATE=auto; the service role cannot migrate an empty database.

Roles and constraints: the service role (what the replicas use) cannot update or delete
transfers, cannot change an outbox row except to mark it published (once), cannot change an
account's identity or delete it; no role can rewrite a transfer; CHECK (amount > 0),
foreign keys, unique ids and the no_overdraft balance check hold against direct SQL.
"""

import json
import os
import subprocess
import time
import uuid

import pytest
import psycopg2

from cofre_api import Api
from cofre_server import binary
import pg_cluster

TABLES = {"accounts", "transfers", "idempotency", "outbox", "cofre_schema_migrations"}


@pytest.fixture(autouse=True)
def _postgres_only(backend):
    if backend.name != "postgres":
        pytest.skip("PostgreSQL only")


def owner_url(backend, name):
    return backend.cluster.url(name, user=pg_cluster.OWNER)


def logs(proc):
    return [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]


MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "migrations", "postgres")
MIGRATIONS = sorted(f for f in os.listdir(MIGRATIONS_DIR) if f.endswith(".sql"))
VERSIONS = [(int(f.split("_")[0]), f) for f in MIGRATIONS]


def schema_dump(backend, name):
    """Tables, columns, constraints, indexes, triggers and grants: what a re-run must keep."""
    q = lambda sql: backend.cluster.sql(sql, db=name)  # noqa: E731
    return {
        "columns": q("SELECT table_name, column_name, data_type FROM information_schema.columns "
                     "WHERE table_schema = 'public' ORDER BY 1, 2"),
        "constraints": q("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                         "WHERE connamespace = 'public'::regnamespace ORDER BY 1"),
        "indexes": q("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                     "ORDER BY 1"),
        "triggers": q("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"),
        "grants": q("SELECT grantee, table_name, privilege_type FROM "
                    "information_schema.role_table_grants WHERE table_schema = 'public' "
                    "ORDER BY 1, 2, 3"),
        "versions": q("SELECT version, name FROM cofre_schema_migrations ORDER BY 1"),
    }


def test_migrate_from_empty_then_rerun_is_a_noop(backend):
    name = backend.create_db()
    r = backend.migrate(owner_url(backend, name))
    assert r.returncode == 0, r
    applied = [l for l in logs(r) if l["msg"] == "migration applied"]
    assert [l["name"] for l in applied] == MIGRATIONS, logs(r)
    tables = {t for (t,) in backend.cluster.sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", db=name)}
    assert tables == TABLES
    owners = {o for (o,) in backend.cluster.sql(
        "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'", db=name)}
    assert owners == {pg_cluster.OWNER}
    before = schema_dump(backend, name)
    assert before["versions"] == VERSIONS
    again = backend.migrate(owner_url(backend, name))
    assert again.returncode == 0, again
    assert not [l for l in logs(again) if l["msg"] == "migration applied"], logs(again)
    assert any(l["msg"] == "schema up to date" for l in logs(again)), logs(again)
    assert schema_dump(backend, name) == before


def test_four_migrations_at_once(backend):
    """Four `cofre-core migrate` on one empty database at the same moment: all exit 0, each
    migration is applied exactly once, and the schema is whole."""
    name = backend.create_db()
    env = {"PATH": "/usr/bin:/bin", "COFRE_DB": owner_url(backend, name)}
    procs = [subprocess.Popen([binary(), "migrate"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    applied = sum(1 for out, _err in outs for line in out.decode().splitlines()
                  if json.loads(line)["msg"] == "migration applied")
    assert applied == len(MIGRATIONS), outs
    assert schema_dump(backend, name)["versions"] == VERSIONS
    assert {t for (t,) in backend.cluster.sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", db=name)} == TABLES


def test_newer_schema_is_refused(backend, core_factory):
    db = backend.new_db(None)
    name = backend.dbname(db)
    backend.cluster.sql("INSERT INTO cofre_schema_migrations (version, name) "
                        "VALUES (999, '0999_future.sql')", db=name)
    r = backend.migrate(owner_url(backend, name))
    assert r.returncode != 0, r
    refused = [l for l in logs(r) if l["msg"] == "database schema is newer than this binary"]
    assert refused and refused[0]["schema"] == 999, logs(r)
    with pytest.raises(RuntimeError, match="exited"):
        core_factory(db=db)  # COFRE_MIGRATE=auto by default: refuses to serve


def test_service_role_cannot_migrate_an_empty_database(backend):
    name = backend.create_db()
    r = backend.migrate(backend.cluster.url(name))  # cofre_app
    assert r.returncode != 0, r
    failed = [l for l in logs(r) if "sqlstate" in l]
    assert failed and failed[0]["sqlstate"] == "42501", logs(r)  # insufficient_privilege
    assert backend.cluster.sql(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", db=name)[0][0] == 0


# ---- roles and constraints ------------------------------------------------------------------


@pytest.fixture
def ledger(backend, core):
    """A database with two accounts, one transfer and its outbox rows, made through the API."""
    api = Api(core.base)
    s, a = api.settlement("EUR"), api.open_account(owner="victim")
    t = api.move(s, a, 100)
    api.close()
    return {"db": backend.dbname(core.db), "s": s, "a": a, "t": t}


def run_as(backend, db, user, sql):
    """Runs sql as user in its own transaction; returns None or the SQLSTATE it failed with."""
    conn = backend.cluster.connect(db, user=user)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        return None
    except psycopg2.Error as e:
        return e.pgcode
    finally:
        conn.close()


APP_DENIED = [
    ("update transfer", "UPDATE transfers SET amount = 1"),
    ("delete transfer", "DELETE FROM transfers"),
    ("truncate transfers", "TRUNCATE transfers CASCADE"),
    ("rewrite outbox payload", "UPDATE outbox SET payload = '{}'"),
    ("delete outbox", "DELETE FROM outbox"),
    ("change account owner", "UPDATE accounts SET owner = 'thief'"),
    ("delete account", "DELETE FROM accounts"),
    ("drop table", "DROP TABLE idempotency"),
    ("create table", "CREATE TABLE evil (x int)"),
    ("rewrite schema version", "UPDATE cofre_schema_migrations SET version = 2"),
]


@pytest.mark.parametrize("what,sql", APP_DENIED, ids=[w for w, _ in APP_DENIED])
def test_service_role_is_denied(backend, ledger, what, sql):
    state = run_as(backend, ledger["db"], pg_cluster.APP, sql)
    assert state == "42501", f"{what}: {state}"  # insufficient_privilege


def test_service_role_may_mark_outbox_rows_published_once(backend, ledger):
    db = ledger["db"]
    assert run_as(backend, db, pg_cluster.APP,
                  "UPDATE outbox SET published_at = now() WHERE published_at IS NULL") is None
    assert backend.cluster.sql("SELECT count(*) FROM outbox WHERE published_at IS NULL",
                               db=db)[0][0] == 0
    # Once: a second mark is refused by the trigger (the store never re-marks).
    assert run_as(backend, db, pg_cluster.APP, "UPDATE outbox SET published_at = now()") == "42501"


OWNER_DENIED = [
    ("update transfer", "UPDATE transfers SET amount = 1"),
    ("delete transfer", "DELETE FROM transfers"),
    ("change account currency", "UPDATE accounts SET currency = 'USD'"),
    ("rewrite outbox payload", "UPDATE outbox SET payload = '{}'"),
]


@pytest.mark.parametrize("what,sql", OWNER_DENIED, ids=[w for w, _ in OWNER_DENIED])
def test_facts_are_append_only_even_for_the_owner(backend, ledger, what, sql):
    state = run_as(backend, ledger["db"], pg_cluster.OWNER, sql)
    assert state == "42501", f"{what}: {state}"


def insert_transfer(ledger, amount=1, debit=None, credit=None, tid="gen_random_uuid()"):
    return ("INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency, "
            "client_id, created_at) VALUES "
            f"({tid}, '{debit or ledger['s']['id']}', '{credit or ledger['a']['id']}', {amount}, "
            "'EUR', 'local', now())")


def test_constraints_hold_against_direct_sql(backend, ledger):
    db, app = ledger["db"], pg_cluster.APP
    assert run_as(backend, db, app, insert_transfer(ledger, amount=0)) == "23514"
    assert run_as(backend, db, app, insert_transfer(ledger, amount=-5)) == "23514"
    missing = "00000000-0000-4000-8000-000000000000"
    assert run_as(backend, db, app, insert_transfer(ledger, credit=missing)) == "23503"
    assert run_as(backend, db, app,
                  insert_transfer(ledger, credit=ledger["s"]["id"])) == "23514"  # same account
    assert run_as(backend, db, app, insert_transfer(ledger, tid=f"'{ledger['t']['id']}'")) == "23505"
    # The no_overdraft account holds 100: debiting 101 through its totals breaks the check.
    assert run_as(backend, db, app, "UPDATE accounts SET debits_posted = 101 "
                  f"WHERE id = '{ledger['a']['id']}'") == "23514"
    assert run_as(backend, db, app, "INSERT INTO idempotency (client_id, key, request_hash, "
                  "status, body, created_at) SELECT client_id, key, request_hash, status, body, "
                  "created_at FROM idempotency LIMIT 1") == "23505"
    assert run_as(backend, db, app, insert_transfer(ledger, amount=1)) is None  # the control


def test_chains_migration_links_existing_transfers(backend, core_factory):
    """A database at schema version 1 (per-account indexes) with transfers already posted is
    migrated to the account chains, and its history stays listed, newest first."""
    name = backend.create_db()
    owner = lambda sql: backend.cluster.sql(sql, db=name, user=pg_cluster.OWNER)  # noqa: E731
    owner("CREATE TABLE cofre_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
          "applied_at timestamptz NOT NULL DEFAULT now())")
    with open(os.path.join(MIGRATIONS_DIR, "0001_ledger.sql")) as f:
        owner(f.read())
    owner("INSERT INTO cofre_schema_migrations (version, name) VALUES (1, '0001_ledger.sql')")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    history = [(0, 1, 100), (0, 2, 50), (1, 2, 30), (0, 1, 7), (2, 1, 5)]
    totals = {i: [0, 0] for i in ids}
    for d, c, amount in history:
        totals[ids[d]][0] += amount
        totals[ids[c]][1] += amount
    for n, i in enumerate(ids):
        owner(f"INSERT INTO accounts (id, owner, currency, no_overdraft, debits_posted, "
              f"credits_posted, created_at) VALUES ('{i}', 'o', 'EUR', {'false' if n == 0 else 'true'}, "
              f"{totals[i][0]}, {totals[i][1]}, now())")
    for d, c, amount in history:
        owner(f"INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency, "
              f"client_id, created_at) VALUES ('{uuid.uuid4()}', '{ids[d]}', '{ids[c]}', "
              f"{amount}, 'EUR', 'local', now())")
    r = backend.migrate(owner_url(backend, name))
    assert r.returncode == 0, r
    core = core_factory(db=backend.cluster.url(name))
    api = Api(core.base)
    bank, alice, bob = ids
    assert [t["amount"] for t in api.account_transfers(alice)] == [5, 7, 30, 100]
    assert [t["amount"] for t in api.account_transfers(bob)] == [5, 30, 50]
    api.move(bank, bob, 11)
    assert [t["amount"] for t in api.account_transfers(bob)] == [11, 5, 30, 50]
    first = api.get(f"/v1/accounts/{alice}/transfers", params={"limit": 3}).json()
    rest = api.get(f"/v1/accounts/{alice}/transfers",
                   params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [t["amount"] for t in first["data"] + rest["data"]] == [5, 7, 30, 100]
    r = api.get(f"/v1/accounts/{bank}/transfers", params={"cursor": first["next_cursor"]})
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor", r.text
    api.close()


def test_expired_idempotency_records_are_deleted_through_the_brin_index(backend, core_factory):
    """Records older than the retention are deleted in chunks, a backlog included, and only
    those (a recent key still replays); the committer finds them through the BRIN index on
    created_at, never by reading the whole table (migration 0003: the index summarizes)."""
    name = backend.create_db()
    r = backend.migrate(owner_url(backend, name))
    assert r.returncode == 0, r
    sql = lambda s: backend.cluster.sql(s, db=name)  # noqa: E731
    assert "autosummarize=on" in sql("SELECT array_to_string(reloptions, ',') FROM pg_class "
                                     "WHERE relname = 'idempotency_created'")[0][0]
    first = core_factory(db=backend.cluster.url(name))
    api = Api(first.base)
    bank, alice = api.open_account(no_overdraft=False), api.open_account()
    assert api.transfer(bank, alice, 5, key="kept-key").status_code == 201
    api.close()
    first.stop()
    sql("INSERT INTO idempotency (client_id, key, request_hash, status, body, created_at) "
        "SELECT 'local', 'old-' || i, decode(repeat('00', 32), 'hex'), 201, '{}', now() - interval '25 hours' "
        "FROM generate_series(1, 1000) i")
    sql("INSERT INTO idempotency (client_id, key, request_hash, status, body, created_at) "
        "SELECT 'local', 'new-' || i, decode(repeat('00', 32), 'hex'), 201, '{}', now() FROM generate_series(1, 20000) i")
    sql("VACUUM ANALYZE idempotency")
    time.sleep(1.1)
    scans_before = sql("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'idempotency'")
    second = core_factory(db=backend.cluster.url(name))
    wait_until = time.monotonic() + 20
    while time.monotonic() < wait_until:
        left = sql("SELECT count(*) FROM idempotency WHERE client_id = 'local' "
                   "AND key >= 'old-' AND key < 'old.'")[0][0]  # an index range, no scan
        if left == 0:
            break
        time.sleep(0.2)
    assert left == 0, f"{left} expired records left"
    api = Api(second.base)
    again = api.transfer(bank, alice, 5, key="kept-key")
    assert again.status_code == 201 and again.headers.get("Idempotency-Replayed") == "true"
    api.close()
    second.stop()
    time.sleep(1.1)  # backends report their statistics at most once a second
    assert sql("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'idempotency'") == \
        scans_before
    assert sql("SELECT count(*) FROM idempotency WHERE key LIKE 'new-%'")[0][0] == 20000


def test_committer_reaches_rows_by_key_however_its_plans_were_made(backend, core_factory):
    """A replica that started on an empty database (its cached plans made while the tables
    were small) keeps finding idempotency records and accounts by primary key once the tables
    have grown: no transfer reads a table whole."""
    name = backend.create_db()
    assert backend.migrate(owner_url(backend, name)).returncode == 0
    sql = lambda s: backend.cluster.sql(s, db=name)  # noqa: E731
    core = core_factory(db=backend.cluster.url(name))
    api = Api(core.base)
    bank = api.open_account(no_overdraft=False)
    accounts = [api.open_account() for _ in range(5)]
    for i in range(10):  # past the plan cache's five custom plans
        assert api.transfer(bank, accounts[i % 5], 1).status_code == 201
    sql("INSERT INTO idempotency (client_id, key, request_hash, status, body, created_at) "
        "SELECT 'local', 'k-' || i, decode(repeat('00', 32), 'hex'), 201, '{}', now() "
        "FROM generate_series(1, 50000) i")
    time.sleep(1.1)  # backends report their statistics at most once a second
    scans = "SELECT relname, seq_scan FROM pg_stat_user_tables WHERE relname IN " \
            "('idempotency', 'accounts', 'transfers') ORDER BY 1"
    before = sql(scans)
    for i in range(20):
        assert api.transfer(bank, accounts[i % 5], 1).status_code == 201
    api.close()
    core.stop()
    time.sleep(1.1)
    assert sql(scans) == before
