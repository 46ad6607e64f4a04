"""Accounts: opening (shape, defaults, validation, duplicates), reading, listing by owner and
walking pages (every item exactly once, oldest first)."""

import concurrent.futures as cf
import uuid

import pytest

from cofre_api import Api, assert_account_shape, assert_problem, new_id


def test_open_account_shape_and_defaults(api):
    """201 with every field; zero balances; no_overdraft defaults to true; GET returns the
    same account."""
    r = api.post("/v1/accounts", {"owner": "alice", "currency": "EUR"})
    assert r.status_code == 201, r.text
    assert r.headers.get("Content-Type", "").startswith("application/json")
    a = r.json()
    assert_account_shape(a)
    assert (a["owner"], a["currency"]) == ("alice", "EUR")
    assert a["flags"] == {"no_overdraft": True}
    assert [a[k] for k in ("balance", "debits_posted", "credits_posted", "debits_pending",
                           "credits_pending")] == [0] * 5
    assert api.account(a["id"]) == a


def test_open_account_with_id_flags_metadata(api):
    """A client id is kept; flags and metadata round-trip."""
    aid = new_id()
    meta = {"iban_hint": "DE89", "tags": ["a", "b"], "nested": {"n": 1, "ok": True}}
    a = api.open_account(owner="bob@example.com", currency="BRL", no_overdraft=False, id=aid,
                         metadata=meta)
    assert a["id"] == aid
    assert a["flags"] == {"no_overdraft": False}
    assert a["metadata"] == meta
    assert api.account(aid) == a


def test_duplicate_account_id_is_409(core, api):
    """Opening an account with an id that exists: 409 account_exists, first one untouched."""
    aid = new_id()
    first = api.open_account(owner="dup", id=aid)
    before = core.snapshot()
    r = api.post("/v1/accounts", {"id": aid, "owner": "other", "currency": "USD"})
    assert_problem(r, 409, "account_exists")
    assert api.account(aid) == first
    after = core.snapshot()
    assert after["accounts"] == before["accounts"]
    assert after["counts"]["accounts"] == before["counts"]["accounts"]


@pytest.mark.parametrize("owner", ["a", "x" * 128, "A-Za-z0-9._:@-", "svc:ledger@eu-1.prod"])
def test_owner_accepted(api, owner):
    assert api.open_account(owner=owner)["owner"] == owner


@pytest.mark.parametrize("owner", ["", "x" * 129, "a b", "caf\u00e9", "semi;colon", "a/b", 7,
                                   None])
def test_owner_rejected(api, owner):
    """Owners outside [A-Za-z0-9._:@-]{1,128} (or not strings): 400 invalid_request."""
    assert_problem(api.post("/v1/accounts", {"owner": owner, "currency": "EUR"}), 400,
                   "invalid_request")


@pytest.mark.parametrize("currency", ["EUR", "USD", "BRL", "JPY", "GBP", "CHF"])
def test_currency_accepted(api, currency):
    assert api.open_account(currency=currency)["currency"] == currency


@pytest.mark.parametrize("currency", ["XYZ", "eur", "Eur", "ABC", "DEM"])
def test_currency_rejected(api, currency):
    """Not an active ISO 4217 code (DEM was withdrawn): 400 invalid_currency."""
    assert_problem(api.post("/v1/accounts", {"owner": "c", "currency": currency}), 400,
                   "invalid_currency")


def test_metadata_limits(api):
    """Metadata is an object of at most 4096 serialised bytes: ~3.5 KiB passes, 5 KiB and
    non-objects are 400 invalid_request."""
    ok = {"k": "v" * 3500}
    assert api.open_account(owner="meta", metadata=ok)["metadata"] == ok
    for bad in ({"k": "v" * 5000}, [1, 2], "text", 5):
        r = api.post("/v1/accounts", {"owner": "meta", "currency": "EUR", "metadata": bad})
        assert_problem(r, 400, "invalid_request")


@pytest.mark.parametrize("body", [
    {"currency": "EUR"},
    {"owner": "o"},
    {"owner": "o", "currency": "EUR", "flags": {"no_overdraft": "yes"}},
    {"owner": "o", "currency": "EUR", "flags": {"no_overdraft": True, "x": 1}},
    {"owner": "o", "currency": "EUR", "flags": []},
    {"owner": "o", "currency": "EUR", "balance": 100},
    {"owner": "o", "currency": "EUR", "id": "not-a-uuid"},
    {"owner": "o", "currency": "EUR", "id": "0000000-0000-0000-0000-000000000000"},
], ids=["no-owner", "no-currency", "flag-type", "flag-unknown", "flags-array", "balance-field",
        "bad-id", "short-id"])
def test_open_account_invalid_request(api, body):
    assert_problem(api.post("/v1/accounts", body), 400, "invalid_request")


def test_get_account_errors(api):
    assert_problem(api.get(f"/v1/accounts/{uuid.uuid4()}"), 404, "account_not_found")
    for bad in ("nope", "123", str(uuid.uuid4())[:-1], str(uuid.uuid4()) + "0",
                str(uuid.uuid4()).replace("-", "")):
        assert_problem(api.get(f"/v1/accounts/{bad}"), 400, "invalid_request")


def test_list_by_owner_oldest_first(api):
    """?owner= returns exactly that owner's accounts, oldest first; without owner every
    account is listed (the local caller is admin), also oldest first."""
    tag = uuid.uuid4().hex[:8]
    mine = [api.open_account(owner=f"own-{tag}", currency=c)["id"] for c in ("EUR", "USD", "JPY")]
    other = [api.open_account(owner=f"oth-{tag}")["id"] for _ in range(2)]
    got = api.walk("/v1/accounts", {"owner": f"own-{tag}"})
    assert [a["id"] for a in got] == mine
    for a in got:
        assert_account_shape(a)
    assert api.walk("/v1/accounts", {"owner": f"nobody-{tag}"}) == []
    everything = [a["id"] for a in api.all_accounts()]
    assert len(everything) == len(set(everything)), "an account is listed twice"
    ours = [i for i in everything if i in set(mine + other)]
    assert ours == mine + other, "the unfiltered list is not oldest first"


def test_pages_walk_every_account_once(api):
    """With limit 3 over 7 accounts, pages are 3, 3, 1 (or a trailing empty page), in order,
    and the last next_cursor is null."""
    owner = "pager-" + uuid.uuid4().hex[:8]
    ids = [api.open_account(owner=owner)["id"] for _ in range(7)]
    r = api.get("/v1/accounts", params={"owner": owner, "limit": 3})
    assert r.status_code == 200 and len(r.json()["data"]) == 3 and r.json()["next_cursor"]
    got = api.walk("/v1/accounts", {"owner": owner, "limit": 3})
    assert [a["id"] for a in got] == ids
    for limit in (1, 2, 6, 7, 8, 1000):
        assert [a["id"] for a in api.walk("/v1/accounts", {"owner": owner, "limit": limit})] == ids


def test_default_limit_is_100(core, api):
    """Without limit a page holds 100 accounts; the rest follow through the cursor."""
    owner = "many-" + uuid.uuid4().hex[:8]

    def open_some(n):
        a = Api(core.base)
        try:
            return [a.open_account(owner=owner)["id"] for _ in range(n)]
        finally:
            a.close()

    with cf.ThreadPoolExecutor(4) as ex:
        created = sum(ex.map(open_some, [27, 26, 26, 26]), [])
    assert len(created) == 105
    first = api.get("/v1/accounts", params={"owner": owner}).json()
    assert len(first["data"]) == 100 and first["next_cursor"]
    rest = api.walk("/v1/accounts", {"owner": owner, "cursor": first["next_cursor"]})
    ids = [a["id"] for a in first["data"] + rest]
    assert sorted(ids) == sorted(created) and len(set(ids)) == 105


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "1001"}, {"limit": "-1"}, {"limit": "abc"}, {"limit": ""},
    {"limit": "1.5"}, {"limit": ["1", "2"]}, {"owner": ["a", "b"]}, {"foo": "1"},
    {"owner": "a b"},
], ids=["0", "1001", "neg", "abc", "empty", "float", "repeated", "owner-twice", "unknown",
        "bad-owner"])
def test_list_accounts_bad_query(api, params):
    assert_problem(api.get("/v1/accounts", params=params), 400, "invalid_request")


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "~~~~", "eyJzZXEiOiJ4In0"])
def test_list_accounts_garbage_cursor(api, cursor):
    api.open_account(owner="cur")
    assert_problem(api.get("/v1/accounts", params={"cursor": cursor}), 400, "invalid_cursor")
