"""A small client for cofre-core's v1 API, and the assertions every test shares.

Api wraps one requests.Session (one per thread: sessions are not shared across threads). Every
POST carries a fresh Idempotency-Key unless the test gives one, and Content-Type:
application/json unless the test overrides it.
"""

import json
import re
import uuid

import requests

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
MAX_I64 = 2**63 - 1
AUTO = object()
PAGE_WALK_MAX = 2000  # bound on pages in any walk

ACCOUNT_FIELDS = {"id", "owner", "currency", "balance", "debits_posted", "credits_posted",
                  "debits_pending", "credits_pending", "flags", "metadata", "created_at"}
TRANSFER_FIELDS = {"id", "debit_account_id", "credit_account_id", "amount", "currency",
                   "reference", "created_at"}
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "request_id"}


def new_key():
    return "e2e-" + uuid.uuid4().hex


def new_id():
    return str(uuid.uuid4())


def dumps(body):
    """Compact JSON bytes, the form every test sends (so replays are byte-identical)."""
    return json.dumps(body, separators=(",", ":")).encode()


class Api:
    def __init__(self, base, session=None, timeout=15):
        self.base = base
        self.s = session or requests.Session()
        self.timeout = timeout

    def close(self):
        self.s.close()

    # -- raw requests -------------------------------------------------------------------------

    def post(self, path, body=None, key=AUTO, headers=None, content_type="application/json",
             raw=None):
        """POST body (a dict, dumped compactly) or raw bytes. key=None sends no key."""
        h = {}
        if content_type is not None:
            h["Content-Type"] = content_type
        if key is AUTO:
            key = new_key()
        if key is not None:
            h["Idempotency-Key"] = key
        h.update(headers or {})
        data = raw if raw is not None else (b"" if body is None else dumps(body))
        return self.s.post(self.base + path, data=data, headers=h, timeout=self.timeout)

    def get(self, path, params=None, headers=None):
        return self.s.get(self.base + path, params=params, headers=headers, timeout=self.timeout)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", self.timeout)
        return self.s.request(method, self.base + path, **kw)

    # -- accounts -----------------------------------------------------------------------------

    def open_account(self, owner=None, currency="EUR", no_overdraft=None, **extra):
        """Opens an account and returns it; fails the test unless the answer is 201."""
        body = {"owner": owner or ("owner-" + uuid.uuid4().hex[:12]), "currency": currency}
        if no_overdraft is not None:
            body["flags"] = {"no_overdraft": no_overdraft}
        body.update(extra)
        r = self.post("/v1/accounts", body)
        assert r.status_code == 201, f"open account {body}: {r.status_code} {r.text}"
        return r.json()

    def settlement(self, currency="EUR", owner="settlement"):
        return self.open_account(owner=owner, currency=currency, no_overdraft=False)

    def account(self, account_id):
        r = self.get(f"/v1/accounts/{account_id}")
        assert r.status_code == 200, f"GET account {account_id}: {r.status_code} {r.text}"
        return r.json()

    # -- transfers ----------------------------------------------------------------------------

    def transfer(self, debit, credit, amount, currency="EUR", key=AUTO, **extra):
        """POSTs one transfer; returns the response (debit/credit: ids or account dicts)."""
        body = {"debit_account_id": _id(debit), "credit_account_id": _id(credit),
                "amount": amount, "currency": currency}
        body.update(extra)
        return self.post("/v1/transfers", body, key=key)

    def move(self, debit, credit, amount, currency="EUR", **extra):
        """A transfer that must succeed; returns the transfer."""
        r = self.transfer(debit, credit, amount, currency, **extra)
        assert r.status_code == 201, f"transfer {amount} {currency}: {r.status_code} {r.text}"
        return r.json()

    def walk(self, path, params=None):
        """Follows next_cursor until null; returns every item, checking the page shape."""
        items = []
        params = dict(params or {})
        seen_cursors = set()
        for _ in range(PAGE_WALK_MAX):
            r = self.get(path, params=params)
            assert r.status_code == 200, f"GET {path} {params}: {r.status_code} {r.text}"
            page = r.json()
            assert set(page) == {"data", "next_cursor"}, page.keys()
            assert isinstance(page["data"], list)
            items.extend(page["data"])
            cur = page["next_cursor"]
            if cur is None:
                return items
            assert isinstance(cur, str) and cur, cur
            assert cur not in seen_cursors, f"cursor {cur!r} came back: the walk would loop"
            seen_cursors.add(cur)
            params["cursor"] = cur
        raise AssertionError(f"more than {PAGE_WALK_MAX} pages at {path}")

    def all_accounts(self):
        return self.walk("/v1/accounts", {"limit": 1000})

    def account_transfers(self, account_id, limit=1000):
        return self.walk(f"/v1/accounts/{_id(account_id)}/transfers", {"limit": limit})


def _id(x):
    return x["id"] if isinstance(x, dict) else x


# -- shared assertions ------------------------------------------------------------------------


def assert_problem(r, status, code):
    """r is an RFC 9457 problem with this status and code, and the contract's members."""
    assert r.status_code == status, (
        f"{r.request.method} {r.request.url}: expected {status} {code}, got {r.status_code} "
        f"{r.text[:500]}")
    ctype = r.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/problem+json", ctype
    p = r.json()
    missing = PROBLEM_FIELDS - set(p)
    assert not missing, f"problem lacks {missing}: {p}"
    assert p["code"] == code, f"expected code {code}, got {p['code']}: {p}"
    assert p["status"] == status, p
    assert p["type"] == f"urn:cofre:problem:{code}", p
    assert isinstance(p["title"], str) and p["title"], p
    assert isinstance(p["detail"], str), p
    if is_replay(r):  # a stored answer keeps the request id of the request that made it
        assert isinstance(p["request_id"], str) and p["request_id"], p
    else:
        assert p["request_id"] == r.headers.get("X-Request-Id"), (p, dict(r.headers))
    return p


def assert_account_shape(a):
    assert set(a) >= ACCOUNT_FIELDS, f"account lacks {ACCOUNT_FIELDS - set(a)}: {a}"
    assert UUID_RE.match(a["id"]), a["id"]
    for f in ("balance", "debits_posted", "credits_posted", "debits_pending", "credits_pending"):
        assert type(a[f]) is int, (f, a)
    assert a["balance"] == a["credits_posted"] - a["debits_posted"], a
    assert set(a["flags"]) == {"no_overdraft"} and type(a["flags"]["no_overdraft"]) is bool, a
    assert TS_RE.match(a["created_at"]), a["created_at"]
    assert a["metadata"] is None or isinstance(a["metadata"], dict), a


def assert_transfer_shape(t):
    assert set(t) >= TRANSFER_FIELDS, f"transfer lacks {TRANSFER_FIELDS - set(t)}: {t}"
    assert UUID_RE.match(t["id"]), t
    assert UUID_RE.match(t["debit_account_id"]) and UUID_RE.match(t["credit_account_id"]), t
    assert type(t["amount"]) is int and 1 <= t["amount"] <= MAX_I64, t
    assert t["reference"] is None or isinstance(t["reference"], str), t
    assert TS_RE.match(t["created_at"]), t


def is_replay(r):
    return r.headers.get("Idempotency-Replayed", "").lower() == "true"
