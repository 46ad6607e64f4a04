#!/usr/bin/python3
"""Creates N funded EUR accounts on a running cofre-core and writes their ids, one per line.

Usage: setup_accounts.py BASE_URL N OUT_FILE
A settlement account (no_overdraft false) funds each account with 10^12 minor units, in batches.
"""
import json
import sys
import urllib.request
import uuid


def post(base, path, body):
    req = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def main():
    base, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    settlement = post(base, "/v1/accounts",
                      {"owner": "bench-settlement", "currency": "EUR",
                       "flags": {"no_overdraft": False}})["id"]
    ids = [post(base, "/v1/accounts", {"owner": "bench", "currency": "EUR"})["id"]
           for _ in range(n)]
    for i in range(0, n, 500):
        chunk = ids[i:i + 500]
        post(base, "/v1/transfers/batch", {"transfers": [
            {"debit_account_id": settlement, "credit_account_id": a,
             "amount": 10**12, "currency": "EUR"} for a in chunk], "atomic": True})
    with open(out, "w") as f:
        f.write("\n".join(ids) + "\n")


if __name__ == "__main__":
    main()
