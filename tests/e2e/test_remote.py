"""Black-box checks that hold on any running cofre, through its public entry.

Marked `remote`: the pipeline's E2E stage runs them against staging through the gateway
(`pytest tests/e2e -m remote` with COFRE_E2E_BASE_URL, and COFRE_E2E_CLIENT_ID /
COFRE_E2E_CLIENT_SECRET of a client with the ledger scopes and ledger:admin, which the tests
need to open their own settlement account; COFRE_E2E_CA names a CA bundle if the gateway's
certificate is not publicly trusted). Without COFRE_E2E_BASE_URL they run against a local
cofre-core like the rest of the suite. Every test works only on accounts it opens, under an
owner of its own, so it can run against a shared environment and leaves it consistent.
"""

import concurrent.futures
import os
import random
import uuid

import pytest
import requests

from cofre_api import Api, assert_problem, new_key

pytestmark = pytest.mark.remote

THREADS = 6
TRANSFERS_PER_THREAD = 20


def remote_session():
    """A session carrying a bearer token for the configured client, or None when local."""
    base = os.environ.get("COFRE_E2E_BASE_URL")
    if not base:
        return None
    s = requests.Session()
    ca = os.environ.get("COFRE_E2E_CA")
    if ca:
        # REQUESTS_CA_BUNDLE in the environment would otherwise win over the session's CA.
        s.trust_env = False
        s.verify = ca
    r = s.post(base + "/oauth/token", data={"grant_type": "client_credentials"},
               auth=(os.environ["COFRE_E2E_CLIENT_ID"], os.environ["COFRE_E2E_CLIENT_SECRET"]),
               timeout=30)
    assert r.status_code == 200, f"token endpoint: {r.status_code} {r.text[:300]}"
    s.headers["Authorization"] = "Bearer " + r.json()["access_token"]
    return s


@pytest.fixture
def target(request):
    """(base URL, session factory): the remote deployment, or a local cofre-core."""
    base = os.environ.get("COFRE_E2E_BASE_URL")
    if base:
        session = remote_session()
        yield base, lambda: remote_session() or session
        return
    core = request.getfixturevalue("core")
    yield core.base, requests.Session


@pytest.fixture
def api(target):
    base, new_session = target
    a = Api(base, new_session())
    yield a
    a.close()


def owner():
    return "e2e-" + uuid.uuid4().hex[:16]


def funded(api, n, amount=1_000_000):
    """A settlement account and n customer accounts of one fresh owner, each funded."""
    who = owner()
    bank = api.open_account(owner=who, no_overdraft=False)
    customers = [api.open_account(owner=who) for _ in range(n)]
    for c in customers:
        api.move(bank["id"], c["id"], amount)
    return bank, customers


def test_walkthrough_and_replay(api):
    """Open accounts, deposit, transfer, read the balances; the same request with the same key
    answers the stored result with Idempotency-Replayed and moves nothing again."""
    bank, (alice, bob) = funded(api, 2, 10_000)
    body = {"debit_account_id": alice["id"], "credit_account_id": bob["id"], "amount": 2_500,
            "currency": "EUR", "reference": "e2e walkthrough"}
    key = new_key()
    first = api.post("/v1/transfers", body, key=key)
    assert first.status_code == 201, first.text
    again = api.post("/v1/transfers", body, key=key)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("Idempotency-Replayed") == "true"
    assert api.account(alice["id"])["balance"] == 7_500
    assert api.account(bob["id"])["balance"] == 12_500
    assert api.account(bank["id"])["balance"] == -20_000
    assert api.get(f"/v1/transfers/{first.json()['id']}").json() == first.json()


def test_refusals_change_nothing(api):
    """Insufficient funds, an unknown account and a malformed amount are refused with their
    codes, and no balance moves."""
    _, (alice, bob) = funded(api, 2, 100)
    before = [api.account(a["id"])["balance"] for a in (alice, bob)]
    base = {"debit_account_id": alice["id"], "credit_account_id": bob["id"], "currency": "EUR"}
    assert_problem(api.post("/v1/transfers", dict(base, amount=101)), 422, "insufficient_funds")
    assert_problem(api.post("/v1/transfers", dict(base, amount=1,
                                                  credit_account_id=str(uuid.uuid4()))),
                   404, "account_not_found")
    assert_problem(api.post("/v1/transfers", dict(base, amount=1.5)), 400, "invalid_amount")
    assert_problem(api.post("/v1/transfers", dict(base, amount=1), key=None), 400,
                   "invalid_request")
    assert [api.account(a["id"])["balance"] for a in (alice, bob)] == before


def test_concurrent_transfers_conserve_money(target, api):
    """Random concurrent transfers between one owner's accounts: every 201 moved exactly its
    amount, no account went below zero, and the owner's balances still sum to zero."""
    bank, customers = funded(api, 5, 5_000)
    ids = [c["id"] for c in customers]
    base, new_session = target

    def worker(seed):
        rng = random.Random(seed)
        client = Api(base, new_session())
        posted = []
        try:
            for _ in range(TRANSFERS_PER_THREAD):
                a, b = rng.sample(ids, 2)
                amount = rng.randint(1, 2_000)
                r = client.post("/v1/transfers", {"debit_account_id": a, "credit_account_id": b,
                                                  "amount": amount, "currency": "EUR"})
                assert r.status_code in (201, 422), r.text
                if r.status_code == 201:
                    posted.append((a, b, amount))
                else:
                    assert r.json()["code"] == "insufficient_funds", r.text
        finally:
            client.close()
        return posted

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        posted = [t for part in pool.map(worker, range(THREADS)) for t in part]
    expected = {i: 5_000 for i in ids}
    for a, b, amount in posted:
        expected[a] -= amount
        expected[b] += amount
    balances = {i: api.account(i)["balance"] for i in ids}
    assert balances == expected
    assert min(balances.values()) >= 0
    assert sum(balances.values()) + api.account(bank["id"])["balance"] == 0
