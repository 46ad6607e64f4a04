"""A concurrent transfer load through the gateway, and the ledger checks after it.

Each client thread sends POST /v1/transfers with an id and an Idempotency-Key it chose, one
at a time on its own kept-alive connection, and records every answer. Clients never retry:
whatever failed reached the client. check_ledger() then proves every transfer sent is in the
ledger exactly once and nothing else is.
"""

import random
import sqlite3
import threading
import time
import uuid

import requests

FUNDING = 10**9
CLIENT_TIMEOUT_S = 30


def post(session, base, path, body, key=None, verify=True):
    return session.post(base + path, json=body, verify=verify, timeout=CLIENT_TIMEOUT_S,
                        headers={"Idempotency-Key": key or str(uuid.uuid4())})


def open_accounts(base, n, verify=True):
    """n EUR customer accounts, each funded with FUNDING from a settlement account."""
    with requests.Session() as s:
        r = post(s, base, "/v1/accounts", {"owner": "gw-settlement", "currency": "EUR",
                                           "flags": {"no_overdraft": False}}, verify=verify)
        assert r.status_code == 201, r.text
        settlement = r.json()["id"]
        ids = []
        for _ in range(n):
            r = post(s, base, "/v1/accounts", {"owner": "gw-test", "currency": "EUR"},
                     verify=verify)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        r = post(s, base, "/v1/transfers/batch", {"atomic": True, "transfers": [
            {"debit_account_id": settlement, "credit_account_id": a, "amount": FUNDING,
             "currency": "EUR"} for a in ids]}, verify=verify)
        assert r.status_code == 201, r.text
    return settlement, ids


class TransferLoad:
    """threads clients sending transfers of 1 between random accounts until stop()."""

    def __init__(self, base, accounts, threads=8, verify=True, deadline_s=90.0):
        self.base = base
        self.accounts = accounts
        self.verify = verify
        self.deadline = time.monotonic() + deadline_s
        self.results = []  # dicts: id, debit, credit, status, replayed, error, t
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def completed(self):
        with self._lock:
            return len(self.results)

    def wait_completed(self, n, timeout=60.0):
        """Until n answers came (bounded); returns whether they did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.completed() >= n:
                return True
            if not any(t.is_alive() for t in self._threads):
                return False
            time.sleep(0.01)
        return False

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=CLIENT_TIMEOUT_S + 5)
        assert not any(t.is_alive() for t in self._threads), "a load thread hung"
        return self.results

    def _run(self, index):
        rnd = random.Random(index)
        with requests.Session() as s:
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                debit, credit = rnd.sample(self.accounts, 2)
                tid = str(uuid.uuid4())
                body = {"id": tid, "debit_account_id": debit, "credit_account_id": credit,
                        "amount": 1, "currency": "EUR"}
                rec = {"id": tid, "debit": debit, "credit": credit, "status": None,
                       "replayed": False, "error": None, "t": time.time()}
                try:
                    r = post(s, self.base, "/v1/transfers", body, key="load-" + tid,
                             verify=self.verify)
                    rec["status"] = r.status_code
                    rec["replayed"] = r.headers.get("Idempotency-Replayed") == "true"
                    if r.status_code != 201:
                        rec["error"] = r.text[:300]
                    elif r.json().get("id") != tid:
                        rec["error"] = f"answer is another transfer: {r.text[:300]}"
                except requests.RequestException as e:
                    rec["error"] = repr(e)
                with self._lock:
                    self.results.append(rec)


def failures(results):
    return [r for r in results if r["status"] != 201 or r["error"]]


def check_ledger(core_base, db_path, accounts, results, setup_transfers):
    """Every transfer of results is in the ledger once, no other one is, balances add up."""
    expected = {a: FUNDING for a in accounts}
    for r in results:
        expected[r["debit"]] -= 1
        expected[r["credit"]] += 1
    with requests.Session() as s:
        for a, want in expected.items():
            got = s.get(f"{core_base}/v1/accounts/{a}", timeout=10).json()["balance"]
            assert got == want, f"account {a}: balance {got}, expected {want}"
        for r in results[:: max(1, len(results) // 50)]:  # the API agrees with the table
            g = s.get(f"{core_base}/v1/transfers/{r['id']}", timeout=10)
            assert g.status_code == 200, f"transfer {r['id']} missing: {g.status_code} {g.text}"
    sent = [r["id"] for r in results]
    assert len(set(sent)) == len(sent)
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        stored = [row[0] for row in con.execute("SELECT id FROM transfers")]
    finally:
        con.close()
    missing = set(sent) - set(stored)
    assert not missing, f"{len(missing)} transfers sent are not in the ledger: {sorted(missing)[:3]}"
    assert len(stored) == len(set(stored)) == setup_transfers + len(sent), \
        f"{len(stored)} transfers in the database, {setup_transfers} + {len(sent)} sent"
