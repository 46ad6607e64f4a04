"""Tampering with a real audit trail, each caught by `cofre-audit verify` (exit 1, the first bad
record named on stderr) and by GET /v1/audit/verify: a changed amount, a deleted record, two
records swapped, a record inserted, the tail truncated behind a signed checkpoint. The
verification uses only the public key that GET /v1/audit/keys publishes; SQL alone cannot
change or delete a record; and checkpoint signatures verify independently (cryptography).

Runs once per store (COFRE_TEST_DBS). On PostgreSQL the tampering is done by the owner role,
which has to switch the append-only triggers off first; the service role cannot UPDATE,
DELETE or TRUNCATE at all (permission denied)."""

import os
import re
import sqlite3
import subprocess
import uuid

import psycopg2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import audit_chain
from conftest import Stack
from eventlib import binary, run_verify, wait_for

TRANSFERS = 30  # + 2 account openings = 32 records; checkpoints every 10: 10, 20, 30, (32)


@pytest.fixture(scope="module")
def trail_stack(backend, tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("trail"), backend)
    yield s
    problems = s.finish()
    assert not problems, problems


@pytest.fixture(scope="module")
def trail(trail_stack, tmp_path_factory):
    """A stopped cofre-audit's trail of 32 records (built once for the module; every test
    tampers with copies), and its public key."""
    stack, tmp_path = trail_stack, tmp_path_factory.mktemp("copies")
    stack.kafka()
    core = stack.core()
    audit = stack.audit(group="tamper", COFRE_AUDIT_CHECKPOINT_RECORDS="10")
    bank = core.open_account("bank", overdraft=True)
    alice = core.open_account("alice")
    for i in range(TRANSFERS):
        assert core.transfer(bank, alice, 100 + i, str(uuid.uuid4())).status_code == 201
    wait_for(lambda: audit.metric("cofre_audit_records") == TRANSFERS + 2, 30,
             "every record", interval=0.2)
    keys = audit.get("/v1/audit/keys").json()["keys"]
    assert len(keys) == 1 and keys[0]["current"] and keys[0]["alg"] == "Ed25519"
    assert audit.stop() == 0
    return audit, keys[0]["public_key"], tmp_path


def tampered_copy(audit, tmp_path, name, sql):
    """A copy of the trail with sql applied around the append-only triggers."""
    return audit.backend.tampered_copy(audit.db, name, sql)


CASES = [
    ("changed_amount", "UPDATE audit_records SET amount = amount * 100 WHERE seq = 17;", 17,
     "does not match its hash"),
    ("deleted_record", "DELETE FROM audit_records WHERE seq = 9;", 9, "missing"),
    ("swapped_records", "UPDATE audit_records SET seq = 1021 WHERE seq = 21;"
                        "UPDATE audit_records SET seq = 21 WHERE seq = 22;"
                        "UPDATE audit_records SET seq = 22 WHERE seq = 1021;", 21,
     "does not match its hash"),
    ("inserted_record", "UPDATE audit_records SET seq = seq + 1000 WHERE seq >= 5;"
                        "UPDATE audit_records SET seq = seq - 999 WHERE seq >= 1005;"
                        "INSERT INTO audit_records SELECT 5, 'forged-' || event_id, type, source, "
                        "subject, time, recorded_at, client_id, owner, address, request_id, "
                        "trace_id, outcome, reason, currency, debit_account_id, credit_account_id,"
                        " topic, event, 999999, time_us, kafka_partition, kafka_offset, hash "
                        "FROM audit_records WHERE seq = 4;", 5, "does not match its hash"),
    ("truncated_tail", "DELETE FROM audit_records WHERE seq > 24;", 25, "truncated"),
]


@pytest.mark.parametrize("name,sql,first_bad,reason", CASES, ids=[c[0] for c in CASES])
def test_tampering_is_caught_offline_naming_the_first_bad_record(trail, name, sql, first_bad,
                                                                 reason):
    audit, public_key, tmp_path = trail
    rc, verdict, _ = run_verify(audit.db, COFRE_AUDIT_TRUSTED_KEYS=public_key)
    assert rc == 0 and verdict["ok"] and verdict["records"] == TRANSFERS + 2, verdict
    path = tampered_copy(audit, tmp_path, name, sql)
    rc, verdict, err = run_verify(path, COFRE_AUDIT_TRUSTED_KEYS=public_key)
    assert rc == 1, (rc, verdict, err)
    assert not verdict["ok"] and verdict["first_bad"] == first_bad, verdict
    assert reason in verdict["reason"], verdict
    assert re.search(rf"first bad record {first_bad}\b", err), err


def test_tampering_is_caught_by_the_api(trail, stack):
    """A cofre-audit serving a tampered store (no bus) answers ok false with the first bad
    record, and its verify metric drops to 0."""
    audit, public_key, tmp_path = trail
    path = tampered_copy(audit, tmp_path, "api", CASES[0][1])
    served = stack.audit(brokers="", db=path, group="tamper-api",
                         COFRE_AUDIT_SIGNING_KEY_FILE=audit.key_file)
    verdict = served.verify()
    assert verdict == {**verdict, "ok": False, "first_bad": 17}, verdict
    assert served.metric("cofre_audit_verify_ok") == 0


CHANGES = ("UPDATE audit_records SET amount = 1 WHERE seq = 3",
           "DELETE FROM audit_records WHERE seq = 3",
           "DELETE FROM audit_checkpoints",
           "UPDATE audit_checkpoints SET seq = 1")


def sql_cannot_change_sqlite(audit):
    conn = sqlite3.connect(audit.db_path)
    for sql in CHANGES:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
    conn.close()


def sql_cannot_change_postgres(audit):
    """The service role (the one cofre-audit logs in as) lacks UPDATE, DELETE and TRUNCATE:
    permission denied; the owner is stopped by the append-only triggers."""
    b = audit.backend
    for sql in CHANGES + ("TRUNCATE audit_records", "TRUNCATE audit_checkpoints"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="permission denied"):
            b.owner_script(audit.db, sql, user="cofre_audit")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="append-only"):
            b.owner_script(audit.db, sql)
    # What the service role may do: read and append.
    grants = b.query(audit.db, "SELECT table_name, privilege_type FROM "
                     "information_schema.role_table_grants WHERE grantee = "
                     "'cofre_audit_service' ORDER BY 1, 2")
    assert [(g["table_name"], g["privilege_type"]) for g in grants] == [
        ("audit_checkpoints", "INSERT"), ("audit_checkpoints", "SELECT"),
        ("audit_records", "INSERT"), ("audit_records", "SELECT"),
        ("cofre_audit_schema_migrations", "SELECT")], grants


def test_intact_trail_verifies_and_sql_cannot_change_it(trail):
    audit, public_key, tmp_path = trail
    if audit.backend.name == "postgres":
        sql_cannot_change_postgres(audit)
    else:
        sql_cannot_change_sqlite(audit)
    rows = audit.rows()
    assert len(rows) == TRANSFERS + 2
    for seq, computed, stored in audit_chain.chain(rows):
        assert computed == stored, f"record {seq}"
    # No trusted key at all: verify refuses to run rather than pass.
    rc, _, err = run_verify(audit.db)
    assert rc == 2 and "COFRE_AUDIT_TRUSTED_KEYS" in err, (rc, err)
    # Another key than the one that signed: the first checkpoint is untrusted.
    other_key = os.path.join(str(tmp_path), "other.key")
    r = subprocess.run([binary("cofre-audit"), "keygen", other_key], capture_output=True,
                       text=True, timeout=10, check=True)
    rc, verdict, err = run_verify(audit.db, COFRE_AUDIT_TRUSTED_KEYS=r.stdout.strip())
    assert rc == 1 and verdict["first_bad"] == 10 and "untrusted key" in verdict["reason"], err


def test_checkpoints_are_signed_by_the_published_key(trail):
    """Each stored checkpoint's signature verifies with the public key of GET /v1/audit/keys
    (Ed25519, checked with python-cryptography), over the hash the chain has at its seq."""
    audit, public_key, _ = trail
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
    cps = audit.checkpoints()
    hashes = {seq: h for seq, h, _ in audit_chain.chain(audit.rows())}
    assert [c[0] for c in cps][:3] == [10, 20, 30] and cps[-1][0] == TRANSFERS + 2, cps
    for seq, h, created_at, pk, sig in cps:
        assert bytes(pk).hex() == public_key
        assert bytes(h) == hashes[seq]
        key.verify(bytes(sig), audit_chain.checkpoint_message(seq, bytes(h), created_at))
