"""Single transfers: double-entry effect, every ledger error, reads and the per-account list
(newest first, every transfer exactly once)."""

import uuid

import pytest

from cofre_api import MAX_I64, assert_problem, assert_transfer_shape, new_id


@pytest.fixture
def ledger(api):
    """A EUR settlement account S, customers A (funded 1000) and B (empty), a USD customer U."""
    s = api.settlement("EUR")
    a = api.open_account(owner="alice")
    b = api.open_account(owner="bob")
    u = api.open_account(owner="ursula", currency="USD")
    api.move(s, a, 1000)
    return {"S": s["id"], "A": a["id"], "B": b["id"], "U": u["id"]}


def balances(api, *ids):
    return [api.account(i)["balance"] for i in ids]


def test_transfer_moves_money_double_entry(api):
    """A transfer debits one account and credits the other by the amount; the settlement
    account goes negative; the transfer reads back equal."""
    s = api.settlement("EUR")
    a = api.open_account(owner="alice")
    r = api.transfer(s, a, 1500, reference="opening deposit")
    assert r.status_code == 201, r.text
    t = r.json()
    assert_transfer_shape(t)
    assert (t["debit_account_id"], t["credit_account_id"], t["amount"], t["currency"],
            t["reference"]) == (s["id"], a["id"], 1500, "EUR", "opening deposit")
    s2, a2 = api.account(s["id"]), api.account(a["id"])
    assert (s2["balance"], s2["debits_posted"], s2["credits_posted"]) == (-1500, 1500, 0)
    assert (a2["balance"], a2["debits_posted"], a2["credits_posted"]) == (1500, 0, 1500)
    got = api.get(f"/v1/transfers/{t['id']}")
    assert got.status_code == 200 and got.json() == t


def test_client_transfer_id_and_reference(api, ledger):
    """A client id is kept; reference is optional (null) and may be 140 characters."""
    tid = new_id()
    t = api.move(ledger["A"], ledger["B"], 10, id=tid)
    assert t["id"] == tid and t["reference"] is None
    t = api.move(ledger["A"], ledger["B"], 10, reference="r" * 140)
    assert t["reference"] == "r" * 140
    assert balances(api, ledger["A"], ledger["B"]) == [980, 20]


def test_transfer_exists(core, api, ledger):
    """Reusing a transfer id with a new key: 409 transfer_exists and no second effect."""
    tid = new_id()
    api.move(ledger["A"], ledger["B"], 10, id=tid)
    r = api.transfer(ledger["A"], ledger["B"], 10, id=tid)
    assert_problem(r, 409, "transfer_exists")
    assert balances(api, ledger["A"], ledger["B"]) == [990, 10]
    assert core.transfer_ids().count(tid) == 1


def test_exact_balance_may_be_spent(api, ledger):
    """no_overdraft allows reaching exactly zero, and not one unit below."""
    assert_problem(api.transfer(ledger["A"], ledger["B"], 1001), 422, "insufficient_funds")
    assert balances(api, ledger["A"], ledger["B"]) == [1000, 0]
    api.move(ledger["A"], ledger["B"], 1000)
    assert balances(api, ledger["A"], ledger["B"]) == [0, 1000]
    assert_problem(api.transfer(ledger["A"], ledger["B"], 1), 422, "insufficient_funds")
    assert balances(api, ledger["A"], ledger["B"]) == [0, 1000]


def test_settlement_may_go_negative_customer_may_not(api, ledger):
    s = api.settlement("EUR", owner="settle-2")
    api.move(s, ledger["B"], MAX_I64 // 2)
    assert api.account(s["id"])["balance"] == -(MAX_I64 // 2)
    assert_problem(api.transfer(ledger["B"], ledger["A"], MAX_I64 // 2 + 1), 422,
                   "insufficient_funds")


def test_unknown_accounts_404(core, api, ledger):
    before = core.snapshot()
    for debit, credit in ((str(uuid.uuid4()), ledger["B"]), (ledger["A"], str(uuid.uuid4())),
                          (str(uuid.uuid4()), str(uuid.uuid4()))):
        assert_problem(api.transfer(debit, credit, 5), 404, "account_not_found")
    after = core.snapshot()
    assert after["accounts"] == before["accounts"]
    assert after["counts"]["transfers"] == before["counts"]["transfers"]


def test_currency_mismatch(core, api, ledger):
    """The transfer currency must equal both accounts' currency: 422 currency_mismatch."""
    before = core.snapshot()
    assert_problem(api.transfer(ledger["A"], ledger["U"], 5, "EUR"), 422, "currency_mismatch")
    assert_problem(api.transfer(ledger["A"], ledger["U"], 5, "USD"), 422, "currency_mismatch")
    assert_problem(api.transfer(ledger["A"], ledger["B"], 5, "USD"), 422, "currency_mismatch")
    assert_problem(api.transfer(ledger["A"], ledger["B"], 5, "JPY"), 422, "currency_mismatch")
    after = core.snapshot()
    assert after["accounts"] == before["accounts"]
    assert after["counts"]["transfers"] == before["counts"]["transfers"]


def test_same_account(api, ledger):
    assert_problem(api.transfer(ledger["A"], ledger["A"], 5), 400, "same_account")
    assert balances(api, ledger["A"]) == [1000]


def test_balance_overflow(core, api):
    """Totals are int64: a credit or debit that would pass 2^63-1 is 422 balance_overflow,
    and reaching exactly 2^63-1 is fine."""
    s1, s2 = api.settlement("EUR", "big-1"), api.settlement("EUR", "big-2")
    a = api.open_account(owner="rich")
    api.move(s1, a, MAX_I64)
    assert api.account(a["id"])["credits_posted"] == MAX_I64
    assert api.account(s1["id"])["debits_posted"] == MAX_I64
    before = core.snapshot()
    assert_problem(api.transfer(s2, a, 1), 422, "balance_overflow")  # a's credits
    assert_problem(api.transfer(s1, s2, 1), 422, "balance_overflow")  # s1's debits
    after = core.snapshot()
    assert after["accounts"] == before["accounts"]
    assert after["counts"]["transfers"] == before["counts"]["transfers"]
    api.move(a, s2, MAX_I64)  # spending it all back is fine
    assert api.account(a["id"])["balance"] == 0


@pytest.mark.parametrize("field,value", [
    ("debit_account_id", "not-a-uuid"), ("credit_account_id", "1234"),
    ("debit_account_id", 42), ("id", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"), ("id", ""),
    ("reference", "r" * 141), ("reference", 5), ("currency", 978),
])
def test_transfer_invalid_request(api, ledger, field, value):
    body = {"debit_account_id": ledger["A"], "credit_account_id": ledger["B"], "amount": 1,
            "currency": "EUR", field: value}
    assert_problem(api.post("/v1/transfers", body), 400, "invalid_request")


def test_get_transfer_errors(api):
    assert_problem(api.get(f"/v1/transfers/{uuid.uuid4()}"), 404, "transfer_not_found")
    for bad in ("nope", "1", str(uuid.uuid4())[1:]):
        assert_problem(api.get(f"/v1/transfers/{bad}"), 400, "invalid_request")
    assert_problem(api.get(f"/v1/transfers/{uuid.uuid4()}", params={"x": "1"}), 400,
                   "invalid_request")


def test_account_transfers_newest_first_every_one_once(api, ledger):
    """The list of an account holds its debits and credits, newest first; walking small pages
    returns each exactly once; other accounts' transfers are absent."""
    c = api.open_account(owner="carol")
    made = [api.move(ledger["S"], ledger["A"], 1)["id"]]  # A credited
    for i in range(6):
        made.append(api.move(ledger["A"], ledger["B"], 3 + i)["id"])  # A debited
        made.append(api.move(ledger["B"], ledger["A"], 1)["id"])  # A credited
    api.move(ledger["B"], c, 1)  # not A's
    newest_first = list(reversed(made))
    for limit in (1, 2, 5, 13, 100):
        got = api.account_transfers(ledger["A"], limit=limit)
        ids = [t["id"] for t in got]
        # The funding transfer of the fixture is the oldest one on A.
        assert ids[:-1] == newest_first, f"limit {limit}"
        assert len(ids) == len(set(ids)) == len(made) + 1
    for t in got:
        assert_transfer_shape(t)
        assert ledger["A"] in (t["debit_account_id"], t["credit_account_id"])
    a = api.account(ledger["A"])
    assert a["credits_posted"] == sum(t["amount"] for t in got
                                      if t["credit_account_id"] == ledger["A"])
    assert a["debits_posted"] == sum(t["amount"] for t in got
                                     if t["debit_account_id"] == ledger["A"])


def test_account_transfers_errors(api, ledger):
    assert_problem(api.get(f"/v1/accounts/{uuid.uuid4()}/transfers"), 404, "account_not_found")
    assert_problem(api.get("/v1/accounts/xyz/transfers"), 400, "invalid_request")
    path = f"/v1/accounts/{ledger['A']}/transfers"
    for params in ({"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"limit": ["2", "3"]},
                   {"owner": "alice"}):
        assert_problem(api.get(path, params=params), 400, "invalid_request")
    assert_problem(api.get(path, params={"cursor": "garbage"}), 400, "invalid_cursor")
    assert api.walk(f"/v1/accounts/{api.open_account(owner='new')['id']}/transfers") == []


def test_effects_write_outbox_rows_rejections_none(core, api, ledger):
    """Every effect (account opened, transfer posted) adds outbox rows in its transaction; a
    rejected transfer adds none."""
    c0 = core.snapshot()["counts"]["outbox"]
    assert c0 > 0, "the fixture's accounts and funding wrote no outbox row"
    api.open_account(owner="evented")
    c1 = core.snapshot()["counts"]["outbox"]
    assert c1 > c0
    api.move(ledger["A"], ledger["B"], 1)
    c2 = core.snapshot()["counts"]["outbox"]
    assert c2 > c1
    assert_problem(api.transfer(ledger["B"], ledger["A"], 10**6), 422, "insufficient_funds")
    assert_problem(api.transfer(ledger["A"], ledger["U"], 1), 422, "currency_mismatch")
    assert core.snapshot()["counts"]["outbox"] == c2
