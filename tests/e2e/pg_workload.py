"""A concurrent random workload against several cofre-core replicas on one PostgreSQL
database, and the ledger invariants checked straight in the database afterwards.

Clients behave as the contract asks of them: every transfer has a client-chosen id and an
Idempotency-Key, and an answer that is not final (503, a cut connection) is retried with the
same key and the same body, on any replica, a bounded number of times. So every transfer the
workload sends ends as acknowledged (201), rejected (4xx), or unknown (gave up), and the
invariants say what each of those must mean in the database.
"""

import collections
import random
import threading
import time

import requests

from cofre_api import Api, new_id, new_key

CURRENCIES = ("EUR", "USD")


def setup_accounts(base, customers=6, funds=5000):
    """Per currency: one settlement account (may go negative) and `customers` no_overdraft
    accounts funded with `funds`. Returns {currency: [account dicts]} (settlement first)."""
    api = Api(base)
    try:
        out = {}
        for cur in CURRENCIES:
            s = api.settlement(cur, owner=f"settlement-{cur}")
            accs = [api.open_account(owner=f"c-{cur}-{i}", currency=cur) for i in range(customers)]
            for a in accs:
                api.move(s, a, funds, currency=cur)
            out[cur] = [s] + accs
        return out
    finally:
        api.close()


class Workload:
    """Threads sending random transfers to random replicas until stopped or a deadline."""

    def __init__(self, bases, accounts, seed=1, retry_budget_s=30.0, timeout_s=10.0):
        self.bases = list(bases)
        self.accounts = accounts
        self.seed = seed
        self.retry_budget_s = retry_budget_s
        self.timeout_s = timeout_s
        self.lock = threading.Lock()
        self.ok = {}          # transfer id -> body
        self.rejected = {}    # transfer id -> (status, code)
        self.unknown = set()  # transfer ids whose outcome the client never learned
        self.by_replica = collections.Counter()
        self.non_final = collections.Counter()  # status (or "error") of answers retried
        self.slowest_503_s = 0.0
        self.stop = threading.Event()
        self.threads = []

    def body(self, rng):
        cur = rng.choice(CURRENCIES)
        accs = self.accounts[cur]
        d, c = rng.sample(accs, 2)
        body = {"id": new_id(), "debit_account_id": d["id"], "credit_account_id": c["id"],
                "amount": rng.randint(1, 2500), "currency": cur}
        if rng.random() < 0.05:  # 422 currency_mismatch
            other = [x for x in CURRENCIES if x != cur][0]
            body["credit_account_id"] = self.accounts[other][1]["id"]
        return body

    def send(self, sessions, rng, body):
        """Sends one transfer until a final answer or the retry budget runs out."""
        key = new_key()
        deadline = time.monotonic() + self.retry_budget_s
        i = rng.randrange(len(self.bases))
        while True:
            base = self.bases[i % len(self.bases)]
            t0 = time.monotonic()
            try:
                r = sessions[base].post(base + "/v1/transfers", json=body, timeout=self.timeout_s,
                                        headers={"Idempotency-Key": key})
                status = r.status_code
            except requests.RequestException:
                r, status = None, "error"
            took = time.monotonic() - t0
            if status == 201:
                with self.lock:
                    self.ok[body["id"]] = body
                    self.by_replica[base] += 1
                return
            if isinstance(status, int) and 400 <= status < 500:
                with self.lock:
                    self.rejected[body["id"]] = (status, r.json().get("code"))
                return
            with self.lock:
                self.non_final[status] += 1
                if status == 503:
                    self.slowest_503_s = max(self.slowest_503_s, took)
            if time.monotonic() >= deadline:
                with self.lock:
                    self.unknown.add(body["id"])
                return
            i += 1
            time.sleep(rng.uniform(0.05, 0.2))

    def _run(self, n):
        rng = random.Random(self.seed * 1000 + n)
        sessions = {b: requests.Session() for b in self.bases}
        try:
            while not self.stop.is_set():
                self.send(sessions, rng, self.body(rng))
        finally:
            for s in sessions.values():
                s.close()

    def start(self, threads):
        for n in range(threads):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def finish(self, timeout=60):
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
            assert not t.is_alive(), "a workload thread did not finish"


def check_invariants(backend, db, w, baseline=0):
    """The ledger invariants over the whole database, and what the workload saw:
    - per currency the balances sum to zero;
    - no no_overdraft account is below zero;
    - every account's totals equal the sum of its stored transfers;
    - every acknowledged transfer is stored exactly once, as it was sent;
    - no rejected transfer is stored; only acknowledged or unknown ones (and the `baseline`
      transfers made before the workload) are."""
    q = lambda sql: backend.query(db, sql)  # noqa: E731
    sums = q("SELECT currency, sum(credits_posted - debits_posted) FROM accounts GROUP BY 1")
    assert sums and all(s == 0 for _c, s in sums), f"money created or lost: {sums}"
    neg = q("SELECT id, credits_posted - debits_posted FROM accounts "
            "WHERE no_overdraft AND credits_posted - debits_posted < 0")
    assert not neg, f"no_overdraft accounts below zero: {neg}"
    drift = q("""SELECT a.id, a.debits_posted, coalesce(d.s, 0), a.credits_posted, coalesce(c.s, 0)
                 FROM accounts a
                 LEFT JOIN (SELECT debit_account_id AS id, sum(amount) AS s FROM transfers
                            GROUP BY 1) d ON d.id = a.id
                 LEFT JOIN (SELECT credit_account_id AS id, sum(amount) AS s FROM transfers
                            GROUP BY 1) c ON c.id = a.id
                 WHERE a.debits_posted <> coalesce(d.s, 0)
                    OR a.credits_posted <> coalesce(c.s, 0)""")
    assert not drift, f"account totals differ from their transfers: {drift[:3]}"
    rows = q("SELECT id::text, debit_account_id::text, credit_account_id::text, amount, currency "
             "FROM transfers")
    counts = collections.Counter(r[0] for r in rows)
    dups = [i for i, n in counts.items() if n > 1]
    assert not dups, f"transfers stored twice: {dups[:3]}"
    stored = {r[0]: r for r in rows}
    missing = [t for t in w.ok if t not in stored]
    assert not missing, f"{len(missing)} acknowledged transfers lost, e.g. {missing[:3]}"
    for tid, body in w.ok.items():
        r = stored[tid]
        assert (r[1], r[2], r[3], r[4]) == (body["debit_account_id"], body["credit_account_id"],
                                             body["amount"], body["currency"]), (r, body)
    back = [t for t in w.rejected if t in stored]
    assert not back, f"rejected transfers stored: {back[:3]}"
    stray = set(stored) - set(w.ok) - w.unknown
    assert len(stray) == baseline, f"{len(stray) - baseline} transfers nobody sent"
