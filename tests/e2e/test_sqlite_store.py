"""The SQLite store over time: a database made by an older schema is brought up to date at start
and keeps working; a schema newer than the binary is refused; expired idempotency records are
deleted. (PostgreSQL's migrations are tested in test_pg_schema.py.)"""

import os
import sqlite3
import subprocess
import time
import uuid

import pytest

from cofre_api import Api

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MIGRATIONS = os.path.join(REPO, "migrations", "sqlite")
NOW = "2026-01-02T03:04:05.000000Z"


@pytest.fixture(autouse=True)
def sqlite_only(backend):
    if backend.name != "sqlite":
        pytest.skip("the SQLite store")


def version_1_database(path, transfers):
    """A database at schema version 1 (before the account chains), holding three accounts and
    the given transfers [(seq, debit index, credit index, amount)], written as version 1 did."""
    conn = sqlite3.connect(path)
    with open(os.path.join(MIGRATIONS, "0001_ledger.sql")) as f:
        conn.executescript(f.read())
    conn.execute("PRAGMA user_version = 1")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    totals = {i: [0, 0] for i in ids}
    for seq, d, c, amount in transfers:
        totals[ids[d]][0] += amount
        totals[ids[c]][1] += amount
    for n, i in enumerate(ids):
        conn.execute("INSERT INTO accounts (id, owner, currency, no_overdraft, debits_posted, "
                     "credits_posted, created_at) VALUES (?, 'o', 'EUR', ?, ?, ?, ?)",
                     (i, 0 if n == 0 else 1, totals[i][0], totals[i][1], NOW))
    for seq, d, c, amount in transfers:
        conn.execute("INSERT INTO transfers (seq, id, debit_account_id, credit_account_id, amount, "
                     "currency, client_id, created_at) VALUES (?, ?, ?, ?, ?, 'EUR', 'local', ?)",
                     (seq, str(uuid.uuid4()), ids[d], ids[c], amount, NOW))
    conn.commit()
    conn.close()
    return ids


def test_version_1_database_is_migrated_and_keeps_its_history(core_factory, tmp_path):
    """Transfers posted under schema 1 are listed per account, newest first, after the
    migration; new transfers join the same lists."""
    db = str(tmp_path / "old.db")
    history = [(1, 0, 1, 100), (2, 0, 2, 50), (3, 1, 2, 30), (4, 0, 1, 7), (5, 2, 1, 5)]
    bank, alice, bob = version_1_database(db, history)
    core = core_factory(db="sqlite:" + db)
    api = Api(core.base)
    assert [t["amount"] for t in api.account_transfers(alice)] == [5, 7, 30, 100]
    assert [t["amount"] for t in api.account_transfers(bob)] == [5, 30, 50]
    assert [t["amount"] for t in api.account_transfers(bank)] == [7, 50, 100]
    api.move(bank, bob, 11)
    assert [t["amount"] for t in api.account_transfers(bob)] == [11, 5, 30, 50]
    assert [t["amount"] for t in api.account_transfers(alice)] == [5, 7, 30, 100]
    # Pages of one walk over the chain.
    first = api.get(f"/v1/accounts/{alice}/transfers", params={"limit": 3}).json()
    assert [t["amount"] for t in first["data"]] == [5, 7, 30]
    rest = api.get(f"/v1/accounts/{alice}/transfers",
                   params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [t["amount"] for t in rest["data"]] == [100] and rest["next_cursor"] is None
    # A cursor of another account's page is refused.
    r = api.get(f"/v1/accounts/{bank}/transfers", params={"cursor": first["next_cursor"]})
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor", r.text
    for account in (bank, alice, bob):
        a = api.account(account)
        moved = sum(t["amount"] if t["credit_account_id"] == account else -t["amount"]
                    for t in api.account_transfers(account))
        assert a["balance"] == moved
    api.close()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 2
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "transfers_debit" not in names and "transfers_credit" not in names
    conn.close()


def test_newer_schema_is_refused(tmp_path, core_factory):
    """A database migrated by a newer binary is not touched by this one."""
    db = str(tmp_path / "new.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 9999")
    conn.close()
    env = dict(os.environ, COFRE_DB="sqlite:" + db, COFRE_LOG_LEVEL="info", COFRE_AUTH="off")
    r = subprocess.run([os.path.join(os.environ["COFRE_BIN_DIR"], "cofre-core"), "migrate"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "newer" in r.stdout + r.stderr


def test_expired_idempotency_records_are_deleted(core_factory, tmp_path):
    """Records older than the retention (24 h by default) are deleted in chunks, a backlog of
    them included, and only those: a key used within the retention still replays."""
    first = core_factory(db="sqlite:" + str(tmp_path / "core.db"))
    api = Api(first.base)
    bank = api.open_account(no_overdraft=False)
    alice = api.open_account()
    r = api.transfer(bank, alice, 5, key="kept-key")
    assert r.status_code == 201
    first.stop()
    conn = sqlite3.connect(str(tmp_path / "core.db"))
    old = int(time.time()) - 25 * 3600
    conn.executemany("INSERT INTO idempotency (client_id, key, request_hash, status, body, "
                     "created_at) VALUES ('local', ?, x'00', 201, '{}', ?)",
                     [(f"old-{i}", old) for i in range(1000)])
    conn.commit()
    conn.close()
    second = core_factory(db="sqlite:" + str(tmp_path / "core.db"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = second.backend.query(second.db, "SELECT count(*) FROM idempotency "
                                               "WHERE key LIKE 'old-%'")[0][0]
        if left == 0:
            break
        time.sleep(0.2)
    assert left == 0, f"{left} expired records left"
    api = Api(second.base)
    again = api.transfer(bank, alice, 5, key="kept-key")
    assert again.status_code == 201 and again.headers.get("Idempotency-Replayed") == "true"
    api.close()
