"""Money under concurrency: no overdraft when many transfers race for one balance, and
conservation after a random concurrent workload (per currency the balances sum to zero, and
every account's totals equal the transfers listed for it and the ones the clients saw
accepted)."""

import collections
import concurrent.futures as cf
import random
import threading
import time
import uuid

import pytest

from cofre_api import Api, assert_problem, new_id

DEADLINE_S = 90


def race_transfers(base, debit, credit, amounts):
    """Sends one transfer per amount, all threads released together; returns
    [(id, amount, response)]."""
    barrier = threading.Barrier(len(amounts))

    def one(amount):
        a = Api(base)
        tid = new_id()
        try:
            barrier.wait(timeout=20)
            return tid, amount, a.transfer(debit, credit, amount, id=tid)
        finally:
            a.close()

    with cf.ThreadPoolExecutor(len(amounts)) as ex:
        return list(ex.map(one, amounts))


@pytest.mark.parametrize("shape", ["mixed", "equal"])
def test_no_overdraft_under_concurrency(core, api, shape):
    """50 simultaneous transfers that together ask for more than the balance: the account
    ends >= 0, the accepted amounts add up exactly to its change, every rejection is
    insufficient_funds for an amount the final balance could not pay, and the account lists
    exactly the accepted transfers."""
    rng = random.Random(20261129 + len(shape))
    s = api.settlement("EUR")
    a = api.open_account(owner="target")
    b = api.open_account(owner="sink")
    start = 1000
    api.move(s, a, start)
    amounts = [rng.randint(10, 60) for _ in range(50)] if shape == "mixed" else [30] * 50
    assert sum(amounts) > start
    results = race_transfers(core.base, a["id"], b["id"], amounts)
    accepted, rejected = [], []
    for tid, amount, r in results:
        if r.status_code == 201:
            assert r.json()["id"] == tid and r.json()["amount"] == amount
            accepted.append((tid, amount))
        else:
            assert_problem(r, 422, "insufficient_funds")
            rejected.append(amount)
    final = api.account(a["id"])
    assert final["balance"] >= 0, final
    assert start - final["balance"] == sum(x for _, x in accepted)
    assert final["debits_posted"] == sum(x for _, x in accepted)
    assert api.account(b["id"])["balance"] == sum(x for _, x in accepted)
    assert rejected, "nothing was rejected: the test did not overdraw"
    assert all(x > final["balance"] for x in rejected), (
        f"rejected {sorted(rejected)} though the final balance is {final['balance']}")
    listed = {t["id"] for t in api.account_transfers(a["id"]) if t["debit_account_id"] == a["id"]}
    assert listed == {tid for tid, _ in accepted}


CURRENCIES = ("EUR", "USD", "JPY")


class Ledger:
    """The client's record of what the server accepted and rejected."""

    def __init__(self):
        self.lock = threading.Lock()
        self.posted = {}  # id -> (debit, credit, amount, currency)
        self.rejected = set()
        self.statuses = collections.Counter()
        self.unexpected = []

    def record(self, tid, body, status, answer):
        with self.lock:
            self.statuses[status] += 1
            if status == 201:
                t = answer
                if (t["id"], t["debit_account_id"], t["credit_account_id"], t["amount"],
                        t["currency"]) != (tid, body["debit_account_id"],
                                           body["credit_account_id"], body["amount"],
                                           body["currency"]):
                    self.unexpected.append(("201 body differs", body, t))
                self.posted[tid] = (body["debit_account_id"], body["credit_account_id"],
                                    body["amount"], body["currency"])
            elif status in (400, 404, 409, 422):
                self.rejected.add(tid)
            else:
                self.unexpected.append((status, body, answer))


def workload(base, accounts, ledger, seed, ops, deadline):
    """One thread's random mix of good and bad transfers and batches."""
    rng = random.Random(seed)
    api = Api(base)
    by_ccy = {c: [a for a in accounts if a["currency"] == c] for c in CURRENCIES}

    def body(kind):
        ccy = rng.choice(CURRENCIES)
        d, c = rng.sample(by_ccy[ccy], 2)
        amount = rng.choice([rng.randint(1, 300), rng.randint(1, 3000)])
        if kind == "mismatch":
            other = rng.choice([x for x in CURRENCIES if x != ccy])
            c = rng.choice(by_ccy[other])
        elif kind == "unknown":
            c = {"id": str(uuid.uuid4())}
        elif kind == "same":
            c = d
        return {"id": new_id(), "debit_account_id": d["id"], "credit_account_id": c["id"],
                "amount": amount, "currency": ccy}

    try:
        for _ in range(ops):
            if time.monotonic() > deadline:
                return
            p = rng.random()
            if p < 0.12:
                items = [body("ok" if rng.random() < 0.8 else "mismatch")
                         for _ in range(rng.randint(2, 6))]
                atomic = rng.random() < 0.4
                r = api.post("/v1/transfers/batch", {"transfers": items, "atomic": atomic})
                if r.status_code == 201:
                    for it, res in zip(items, r.json()["results"]):
                        ledger.record(it["id"], it, res["status"], res.get("transfer"))
                elif atomic and r.status_code == 422:
                    for it in items:
                        ledger.record(it["id"], it, 422, r.json())
                else:
                    for it in items:
                        ledger.record(it["id"], it, r.status_code, r.text)
                continue
            kind = ("ok" if p < 0.80 else "mismatch" if p < 0.88 else "unknown" if p < 0.94
                    else "same")
            b = body(kind)
            r = api.post("/v1/transfers", b)
            ledger.record(b["id"], b, r.status_code, r.json() if r.status_code == 201 else r.text)
    finally:
        api.close()


def test_conservation_under_random_concurrent_load(core, api):
    """After 4 threads of random transfers (good ones, overdrafts, currency mismatches,
    unknown and same accounts, atomic and non-atomic batches): per currency the balances sum to
    zero; no customer account is negative; every account's totals equal the transfers listed
    for it, which are exactly the ones the clients saw accepted."""
    rng = random.Random(7)
    accounts = []
    funding = Ledger()
    for ccy in CURRENCIES:
        s = api.settlement(ccy, owner=f"settle-{ccy.lower()}")
        accounts.append(s)
        for i in range(6):
            c = api.open_account(owner=f"cust-{ccy.lower()}-{i}", currency=ccy)
            accounts.append(c)
            tid = new_id()
            body = {"id": tid, "debit_account_id": s["id"], "credit_account_id": c["id"],
                    "amount": rng.randint(100, 5000), "currency": ccy}
            r = api.post("/v1/transfers", body)
            assert r.status_code == 201, r.text
            funding.record(tid, body, 201, r.json())
    ledger = Ledger()
    ledger.posted.update(funding.posted)
    deadline = time.monotonic() + DEADLINE_S
    with cf.ThreadPoolExecutor(4) as ex:
        futs = [ex.submit(workload, core.base, accounts, ledger, 100 + i, 150, deadline)
                for i in range(4)]
        for f in futs:
            f.result(timeout=DEADLINE_S + 30)
    assert not ledger.unexpected, ledger.unexpected[:5]
    assert ledger.statuses[201] > 200, ledger.statuses
    assert ledger.statuses[422] > 10, ledger.statuses

    listed_all = collections.Counter()
    sums = collections.Counter()
    for acc in api.all_accounts():
        aid = acc["id"]
        assert acc["balance"] == acc["credits_posted"] - acc["debits_posted"], acc
        if acc["flags"]["no_overdraft"]:
            assert acc["balance"] >= 0, acc
        sums[acc["currency"]] += acc["balance"]
        listed = api.account_transfers(aid, limit=rng.choice([7, 50, 1000]))
        ids = [t["id"] for t in listed]
        assert len(ids) == len(set(ids)), f"a transfer is listed twice for {aid}"
        listed_all.update(ids)
        assert acc["credits_posted"] == sum(t["amount"] for t in listed
                                            if t["credit_account_id"] == aid)
        assert acc["debits_posted"] == sum(t["amount"] for t in listed
                                           if t["debit_account_id"] == aid)
        want_c = sum(v[2] for v in ledger.posted.values() if v[1] == aid)
        want_d = sum(v[2] for v in ledger.posted.values() if v[0] == aid)
        assert (acc["credits_posted"], acc["debits_posted"]) == (want_c, want_d), aid
    assert dict(sums) == {c: 0 for c in CURRENCIES}, f"money created or destroyed: {sums}"
    # Each posted transfer is listed on exactly its two accounts; no rejected one anywhere.
    assert set(listed_all) == set(ledger.posted)
    assert all(n == 2 for n in listed_all.values())
    assert not (ledger.rejected & set(listed_all))
    assert sorted(core.transfer_ids()) == sorted(ledger.posted)
