"""Crash durability: kill -9 in the middle of a concurrent load with client-chosen transfer
ids, restart on the same database: every transfer that got a 201 is there exactly once, none
that got a 4xx is, balances still add up, and the stored idempotent answers survived."""

import collections
import concurrent.futures as cf
import random
import signal
import threading
import time

import requests

from cofre_api import Api, is_replay, new_id, new_key
from cofre_server import SLOW

THREADS = 4
LOAD_S = 1.5


def test_acknowledged_transfers_survive_kill_9(core_factory):
    core = core_factory()
    api = Api(core.base)
    s = api.settlement("EUR")
    rich = [api.open_account(owner=f"rich-{i}") for i in range(4)]
    poor = api.open_account(owner="poor")
    usd = api.open_account(owner="yankee", currency="USD")
    for a in rich:
        api.move(s, a, 10**9)
    api.close()
    base_transfers = len(core.transfer_ids())

    lock = threading.Lock()
    ok = {}        # id -> (key, raw body, response bytes)
    rejected = {}  # id -> status
    unknown = set()  # no answer (the crash cut the connection)
    stop = threading.Event()

    def load(seed):
        rng = random.Random(seed)
        a = Api(core.base, timeout=5)
        try:
            for _ in range(100000):
                if stop.is_set():
                    return
                tid, k = new_id(), new_key()
                p = rng.random()
                d = rng.choice(rich)
                c = rng.choice([x for x in rich if x is not d] + [poor])
                body = {"id": tid, "debit_account_id": d["id"], "credit_account_id": c["id"],
                        "amount": rng.randint(1, 1000), "currency": "EUR"}
                if p < 0.1:
                    body["debit_account_id"] = poor["id"]  # nothing to spend: 422
                    body["credit_account_id"] = d["id"]
                    body["amount"] = 10**12
                elif p < 0.15:
                    body["credit_account_id"] = usd["id"]  # 422 currency_mismatch
                try:
                    r = a.post("/v1/transfers", body, key=k)
                except requests.RequestException:
                    with lock:
                        unknown.add(tid)
                    return
                with lock:
                    if r.status_code == 201:
                        ok[tid] = (k, body, r.content)
                    elif 400 <= r.status_code < 500:
                        rejected[tid] = r.status_code
                    else:
                        unknown.add(tid)
        finally:
            a.close()

    with cf.ThreadPoolExecutor(THREADS) as ex:
        futs = [ex.submit(load, i) for i in range(THREADS)]
        time.sleep(LOAD_S)
        core.signal(signal.SIGKILL)
        assert core.wait(10 * SLOW) == -signal.SIGKILL
        stop.set()
        for f in futs:
            f.result(timeout=30 * SLOW)

    assert len(ok) > 50, f"only {len(ok)} transfers were acknowledged before the crash"
    assert rejected, "no rejected transfer in the load"

    again = core_factory(db=core.db)
    api = Api(again.base)
    try:
        ids = collections.Counter(again.transfer_ids())
        dups = [i for i, n in ids.items() if n > 1]
        assert not dups, f"transfers stored twice: {dups[:5]}"
        missing = [i for i in ok if i not in ids]
        assert not missing, f"{len(missing)} acknowledged transfers lost, e.g. {missing[:3]}"
        resurrected = [i for i in rejected if i in ids]
        assert not resurrected, f"rejected transfers stored: {resurrected[:3]}"
        stray = set(ids) - set(ok) - unknown
        assert len(stray) == base_transfers, "transfers nobody sent or saw an answer for"
        # Through the API too, and the stored answers replay after the restart.
        sample = random.Random(3).sample(sorted(ok), min(40, len(ok)))
        for tid in sample:
            k, body, content = ok[tid]
            got = api.get(f"/v1/transfers/{tid}")
            assert got.status_code == 200, got.text
            r = api.post("/v1/transfers", body, key=k)
            assert r.status_code == 201 and is_replay(r) and r.content == content
        for tid in list(rejected)[:20]:
            assert api.get(f"/v1/transfers/{tid}").status_code == 404
        total = 0
        for acc in api.all_accounts():
            assert acc["balance"] == acc["credits_posted"] - acc["debits_posted"]
            if acc["flags"]["no_overdraft"]:
                assert acc["balance"] >= 0
            if acc["currency"] == "EUR":
                total += acc["balance"]
        assert total == 0
        assert api.account(poor["id"])["debits_posted"] == 0
        assert api.account(usd["id"])["credits_posted"] == 0
    finally:
        api.close()
