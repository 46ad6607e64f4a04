"""Batches: one result per item in order, applied in order; atomic all-or-nothing with the
index of the first failing item; size limits (1..1000 items, 256 KiB body)."""

import uuid

import pytest

from cofre_api import assert_problem, assert_transfer_shape, dumps, new_id


def item(debit, credit, amount, currency="EUR", **extra):
    d = {"debit_account_id": debit, "credit_account_id": credit, "amount": amount,
         "currency": currency}
    d.update(extra)
    return d


@pytest.fixture
def accts(api):
    s = api.settlement("EUR")
    a = api.open_account(owner="alice")
    b = api.open_account(owner="bob")
    u = api.open_account(owner="ursula", currency="USD")
    return {"S": s["id"], "A": a["id"], "B": b["id"], "U": u["id"]}


def bal(api, i):
    return api.account(i)["balance"]


def test_batch_results_in_order_and_applied_in_order(api, accts):
    """Non-atomic: each item succeeds or fails alone, results are in item order, and a later
    item sees the effect of an earlier one."""
    S, A, B, U = accts["S"], accts["A"], accts["B"], accts["U"]
    dup = new_id()
    items = [
        item(S, A, 100, id=dup),          # 0: funds A
        item(A, B, 100),                  # 1: only possible after 0
        item(A, B, 1),                    # 2: A is empty again
        item(A, U, 1),                    # 3: currency mismatch
        item(A, str(uuid.uuid4()), 1),    # 4: unknown account
        item(B, A, 40, reference="back"),  # 5: fine
        item(S, B, 5, id=dup),            # 6: id of item 0
    ]
    r = api.post("/v1/transfers/batch", {"transfers": items})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["atomic"] is False and len(body["results"]) == len(items)
    want = [(201, None), (201, None), (422, "insufficient_funds"), (422, "currency_mismatch"),
            (404, "account_not_found"), (201, None), (409, "transfer_exists")]
    for i, (res, (status, code)) in enumerate(zip(body["results"], want)):
        assert res["status"] == status, f"item {i}: {res}"
        if status == 201:
            t = res["transfer"]
            assert_transfer_shape(t)
            assert (t["debit_account_id"], t["credit_account_id"], t["amount"]) == (
                items[i]["debit_account_id"], items[i]["credit_account_id"], items[i]["amount"])
            got = api.get(f"/v1/transfers/{t['id']}")
            assert got.status_code == 200 and got.json() == t
        else:
            e = res["error"]
            assert (e["code"], e["status"]) == (code, status), f"item {i}: {e}"
    assert body["results"][0]["transfer"]["id"] == dup
    assert (bal(api, S), bal(api, A), bal(api, B)) == (-100, 40, 60)


def test_atomic_batch_all_posted(api, accts):
    S, A, B = accts["S"], accts["A"], accts["B"]
    items = [item(S, A, 50), item(A, B, 30), item(B, A, 10)]
    r = api.post("/v1/transfers/batch", {"transfers": items, "atomic": True})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["atomic"] is True
    assert [x["status"] for x in body["results"]] == [201, 201, 201]
    assert (bal(api, S), bal(api, A), bal(api, B)) == (-50, 30, 20)


@pytest.mark.parametrize("fail_at,code", [(0, "insufficient_funds"), (2, "insufficient_funds"),
                                          (3, "account_not_found"), (1, "currency_mismatch")])
def test_atomic_batch_rejected_posts_nothing(core, api, accts, fail_at, code):
    """Atomic with a failing item: 422 problem with the first failing item's code and index,
    and nothing at all is posted (no transfer, no balance change)."""
    S, A, B, U = accts["S"], accts["A"], accts["B"], accts["U"]
    ids = [new_id() for _ in range(5)]
    items = [item(S, A, 100, id=ids[0]), item(A, B, 60, id=ids[1]), item(A, B, 60, id=ids[2]),
             item(B, A, 10, id=ids[3]), item(S, B, 7, id=ids[4])]
    if fail_at == 0:
        items[0] = item(A, B, 1, id=ids[0])           # A is empty at the start
        items[2] = item(B, A, 1, id=ids[2])
    if fail_at == 1:
        items[1] = item(A, U, 60, "USD", id=ids[1])
        items[2] = item(A, B, 5, id=ids[2])
    if fail_at == 3:
        items[2] = item(A, B, 5, id=ids[2])
        items[3] = item(B, str(uuid.uuid4()), 1, id=ids[3])
    before = core.snapshot()
    r = api.post("/v1/transfers/batch", {"transfers": items, "atomic": True})
    p = assert_problem(r, 422, code)
    assert p.get("index") == fail_at, f"index {p.get('index')!r}, expected {fail_at}: {p}"
    after = core.snapshot()
    assert after["accounts"] == before["accounts"]
    assert after["counts"]["transfers"] == before["counts"]["transfers"]
    assert after["counts"]["outbox"] == before["counts"]["outbox"]
    for i in ids:
        assert_problem(api.get(f"/v1/transfers/{i}"), 404, "transfer_not_found")


def test_batch_of_1000_fits(api, accts):
    """1000 items (a body well over 64 KiB, under 256 KiB) are accepted and all applied."""
    S, A = accts["S"], accts["A"]
    items = [item(S, A, 1 + (i % 7), reference=f"bulk-{i}") for i in range(1000)]
    raw = dumps({"transfers": items})
    assert 64 * 1024 < len(raw) < 256 * 1024
    r = api.post("/v1/transfers/batch", raw=raw)
    assert r.status_code == 201, r.text[:300]
    res = r.json()["results"]
    assert len(res) == 1000 and all(x["status"] == 201 for x in res)
    assert [x["transfer"]["reference"] for x in res] == [f"bulk-{i}" for i in range(1000)]
    assert bal(api, A) == sum(1 + (i % 7) for i in range(1000)) == -bal(api, S)


def test_batch_limits(core, api, accts):
    """Empty and 1001-item batches are 400 invalid_request; a body over 256 KiB is 413; none
    of them changes anything."""
    S, A = accts["S"], accts["A"]
    before = core.snapshot()
    assert_problem(api.post("/v1/transfers/batch", {"transfers": []}), 400, "invalid_request")
    over = {"transfers": [item(S, A, 1) for _ in range(1001)]}
    assert len(dumps(over)) < 256 * 1024
    assert_problem(api.post("/v1/transfers/batch", over), 400, "invalid_request")
    huge = {"transfers": [item(S, A, 1, reference="x" * 140) for _ in range(1000)]}
    assert len(dumps(huge)) > 256 * 1024
    assert_problem(api.post("/v1/transfers/batch", huge), 413, "payload_too_large")
    for bad in ({}, {"transfers": "x"}, {"transfers": {}}, {"transfers": [1]},
                {"transfers": [item(S, A, 1)], "atomic": "yes"},
                {"transfers": [item(S, A, 1)], "extra": 1}):
        assert_problem(api.post("/v1/transfers/batch", bad), 400, "invalid_request")
    after = core.snapshot()
    assert after == before


def test_batch_replay(core, api, accts):
    """A batch retried with its key and body is replayed, not applied twice."""
    S, A = accts["S"], accts["A"]
    raw = dumps({"transfers": [item(S, A, 5), item(S, A, 6)]})
    first = api.post("/v1/transfers/batch", raw=raw, key="batch-key-1")
    assert first.status_code == 201, first.text
    again = api.post("/v1/transfers/batch", raw=raw, key="batch-key-1")
    assert again.status_code == 201
    assert again.headers.get("Idempotency-Replayed") == "true"
    assert again.json() == first.json()
    assert bal(api, A) == 11
