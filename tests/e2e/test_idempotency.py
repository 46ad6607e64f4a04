"""Idempotency: exact replays return the stored status and body with Idempotency-Replayed:
true and no new effect; the same key with another request is 422 idempotency_key_reused;
ledger decisions (201, 404, 409, 422) are stored and replayed; concurrent requests with one
key produce exactly one effect and answer only with that effect's 201 or 409."""

import concurrent.futures as cf
import threading
import uuid

import pytest

from cofre_api import Api, assert_problem, dumps, is_replay, new_id, new_key


@pytest.fixture
def accts(api):
    s = api.settlement("EUR")
    a = api.open_account(owner="alice")
    b = api.open_account(owner="bob")
    api.move(s, a, 1000)
    return {"S": s["id"], "A": a["id"], "B": b["id"]}


def tx(a, b, amount, **extra):
    d = {"debit_account_id": a, "credit_account_id": b, "amount": amount, "currency": "EUR"}
    d.update(extra)
    return dumps(d)


def test_transfer_replay(core, api, accts):
    """Same key, same bytes: the stored 201 and body again, marked replayed, no new effect."""
    k, raw = new_key(), tx(accts["A"], accts["B"], 70)
    first = api.post("/v1/transfers", raw=raw, key=k)
    assert first.status_code == 201, first.text
    assert not is_replay(first)
    counts = core.snapshot()["counts"]
    for _ in range(3):
        again = api.post("/v1/transfers", raw=raw, key=k)
        assert again.status_code == 201
        assert is_replay(again), dict(again.headers)
        assert again.content == first.content
        assert again.headers.get("X-Request-Id") != first.headers.get("X-Request-Id")
    assert api.account(accts["A"])["balance"] == 930
    assert api.account(accts["B"])["balance"] == 70
    assert core.snapshot()["counts"] == counts


def test_account_replay(core, api):
    k, raw = new_key(), dumps({"owner": "replayer", "currency": "JPY"})
    first = api.post("/v1/accounts", raw=raw, key=k)
    assert first.status_code == 201, first.text
    again = api.post("/v1/accounts", raw=raw, key=k)
    assert again.status_code == 201 and is_replay(again) and again.content == first.content
    assert [a["id"] for a in api.walk("/v1/accounts", {"owner": "replayer"})] == [
        first.json()["id"]]


def test_same_key_other_body_is_422(core, api, accts):
    """Another body, other bytes of the same JSON, or another path under the same key: 422
    idempotency_key_reused, nothing changes, and the original answer stays replayable."""
    k, raw = new_key(), tx(accts["A"], accts["B"], 10)
    first = api.post("/v1/transfers", raw=raw, key=k)
    assert first.status_code == 201, first.text
    before = core.snapshot()
    others = [
        ("/v1/transfers", tx(accts["A"], accts["B"], 11)),
        ("/v1/transfers", raw.replace(b",", b", ")),  # same JSON, other bytes
        ("/v1/transfers/batch", dumps({"transfers": [
            {"debit_account_id": accts["A"], "credit_account_id": accts["B"], "amount": 10,
             "currency": "EUR"}]})),
        ("/v1/accounts", dumps({"owner": "x", "currency": "EUR"})),
    ]
    for path, body in others:
        assert_problem(api.post(path, raw=body, key=k), 422, "idempotency_key_reused")
    after = core.snapshot()
    assert after["accounts"] == before["accounts"]
    assert {t: after["counts"][t] for t in ("accounts", "transfers", "outbox")} == {
        t: before["counts"][t] for t in ("accounts", "transfers", "outbox")}
    again = api.post("/v1/transfers", raw=raw, key=k)
    assert again.status_code == 201 and is_replay(again) and again.content == first.content


@pytest.mark.parametrize("k", ["k", "k" * 255, "!#$%&'*+-.^_`|~:;<=>?@[]{}()/\\\"0aZ"])
def test_key_forms_accepted(api, accts, k):
    """Keys of 1 to 255 printable ASCII characters are taken (and replay)."""
    raw = tx(accts["S"], accts["B"], 1)
    r = api.post("/v1/transfers", raw=raw, key=k)
    assert r.status_code == 201, r.text
    assert is_replay(api.post("/v1/transfers", raw=raw, key=k))


def test_ledger_rejections_are_stored_and_replayed(core, api, accts):
    """422 insufficient_funds, 404 account_not_found and 409 transfer_exists are decisions:
    the same key and body answer the same even after the world changed."""
    A, B, S = accts["A"], accts["B"], accts["S"]
    # 422: not enough money, then money arrives; the replay is still 422.
    k1, raw1 = new_key(), tx(A, B, 1500)
    assert_problem(api.post("/v1/transfers", raw=raw1, key=k1), 422, "insufficient_funds")
    api.move(S, A, 1000)
    r = api.post("/v1/transfers", raw=raw1, key=k1)
    assert_problem(r, 422, "insufficient_funds")
    assert is_replay(r)
    assert api.account(A)["balance"] == 2000
    # 404: the account does not exist, then it is opened; the replay is still 404.
    ghost = new_id()
    k2, raw2 = new_key(), tx(A, ghost, 5)
    assert_problem(api.post("/v1/transfers", raw=raw2, key=k2), 404, "account_not_found")
    api.open_account(owner="ghost", id=ghost)
    r = api.post("/v1/transfers", raw=raw2, key=k2)
    assert_problem(r, 404, "account_not_found")
    assert is_replay(r)
    assert api.account(ghost)["balance"] == 0
    # 409: transfer id taken; replayed as 409.
    tid = new_id()
    api.move(A, B, 1, id=tid)
    k3, raw3 = new_key(), tx(A, B, 2, id=tid)
    assert_problem(api.post("/v1/transfers", raw=raw3, key=k3), 409, "transfer_exists")
    r = api.post("/v1/transfers", raw=raw3, key=k3)
    assert_problem(r, 409, "transfer_exists")
    assert is_replay(r)
    # A new key for the first request now succeeds.
    assert api.post("/v1/transfers", raw=raw1, key=new_key()).status_code == 201
    assert api.account(A)["balance"] == 2000 - 1 - 1500


def race(base, n, fn):
    """Runs fn(api) in n threads released together; returns the results in thread order."""
    barrier = threading.Barrier(n)

    def one(_i):
        a = Api(base)
        try:
            barrier.wait(timeout=10)
            return fn(a)
        finally:
            a.close()

    with cf.ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


def test_concurrent_same_key_one_effect(core, api, accts):
    """16 simultaneous requests with one key and body, in several rounds: one transfer per
    round; every answer is that transfer's 201 (first or replayed) or 409
    idempotency_request_in_flight."""
    A, B = accts["A"], accts["B"]
    rounds, n, amount = 5, 16, 7
    for _ in range(rounds):
        k, raw = new_key(), tx(A, B, amount)
        res = race(core.base, n, lambda a: a.post("/v1/transfers", raw=raw, key=k))
        created = [r for r in res if r.status_code == 201]
        assert created, [(r.status_code, r.text) for r in res]
        assert len({r.content for r in created}) == 1, "201 answers differ"
        assert sum(1 for r in created if not is_replay(r)) == 1, "more than one first answer"
        for r in res:
            if r.status_code != 201:
                assert_problem(r, 409, "idempotency_request_in_flight")
    assert api.account(A)["debits_posted"] == rounds * amount
    assert api.account(B)["balance"] == rounds * amount
    assert len(api.account_transfers(B)) == rounds


def test_concurrent_same_transfer_id_one_effect(core, api, accts):
    """16 simultaneous requests with different keys and one client transfer id: exactly one
    201, the rest 409 transfer_exists, one effect."""
    A, B = accts["A"], accts["B"]
    tid = new_id()
    raw = tx(A, B, 9, id=tid)
    res = race(core.base, 16, lambda a: a.post("/v1/transfers", raw=raw))
    assert sorted(r.status_code for r in res) == [201] + [409] * 15, [r.text for r in res]
    for r in res:
        if r.status_code == 409:
            assert_problem(r, 409, "transfer_exists")
    assert api.account(A)["balance"] == 991
    assert core.transfer_ids().count(tid) == 1


def test_concurrent_same_key_accounts(core, api):
    """One key opening an account from 12 threads at once opens one account."""
    owner = "race-" + uuid.uuid4().hex[:8]
    k, raw = new_key(), dumps({"owner": owner, "currency": "EUR"})
    res = race(core.base, 12, lambda a: a.post("/v1/accounts", raw=raw, key=k))
    ok = [r for r in res if r.status_code == 201]
    assert ok and len({r.json()["id"] for r in ok}) == 1
    for r in res:
        if r.status_code != 201:
            assert_problem(r, 409, "idempotency_request_in_flight")
    assert len(api.walk("/v1/accounts", {"owner": owner})) == 1


def test_in_flight_while_batch_runs(core, api, accts):
    """While a large batch with key K is running, a second request with K answers 409
    idempotency_request_in_flight or (if the first already finished) its replay; never a
    second effect."""
    B, S = accts["B"], accts["S"]
    raw = dumps({"transfers": [{"debit_account_id": S, "credit_account_id": B, "amount": 1,
                                "currency": "EUR", "reference": f"n{i}"} for i in range(1000)]})
    k = new_key()
    res = race(core.base, 6, lambda a: a.post("/v1/transfers/batch", raw=raw, key=k))
    ok = [r for r in res if r.status_code == 201]
    assert ok and len({r.content for r in ok}) == 1, [r.status_code for r in res]
    for r in res:
        if r.status_code != 201:
            assert_problem(r, 409, "idempotency_request_in_flight")
    assert api.account(B)["balance"] == 1000
