// Shared helpers of the cofre k6 scenarios: configuration, tokens, the ledger calls and the
// test data (a settlement account that may go negative, customer accounts funded from it).
import http from "k6/http";
import encoding from "k6/encoding";
import exec from "k6/execution";
import { check, fail } from "k6";

export const BASE_URL = (__ENV.BASE_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
export const CLIENT_ID = __ENV.CLIENT_ID || "";
export const CLIENT_SECRET = __ENV.CLIENT_SECRET || "";
export const CURRENCY = __ENV.CURRENCY || "EUR";
export const ACCOUNTS = parseInt(__ENV.ACCOUNTS || "200", 10);

const JSON_HEADERS = { "Content-Type": "application/json" };

// One token per VU, renewed a minute before it expires (tokens are short-lived).
let token = null;
let tokenExpiresAt = 0;

export function issueToken(tags) {
  const basic = encoding.b64encode(`${CLIENT_ID}:${CLIENT_SECRET}`);
  const res = http.post(`${BASE_URL}/oauth/token`, "grant_type=client_credentials", {
    headers: {
      Authorization: `Basic ${basic}`,
      "Content-Type": "application/x-www-form-urlencoded",
    },
    tags: Object.assign({ name: "POST /oauth/token" }, tags || {}),
  });
  check(res, {
    "token: 200": (r) => r.status === 200,
    "token: bearer": (r) => r.status === 200 && r.json("token_type") === "Bearer",
  });
  return res;
}

export function authHeaders() {
  if (!CLIENT_ID) {
    return {}; // straight to a service without token checking (local runs)
  }
  if (token === null || Date.now() > tokenExpiresAt) {
    const res = issueToken({ phase: "setup" });
    if (res.status !== 200) {
      fail(`token request failed: ${res.status} ${res.body}`);
    }
    token = res.json("access_token");
    tokenExpiresAt = Date.now() + (res.json("expires_in") - 60) * 1000;
  }
  return { Authorization: `Bearer ${token}` };
}

// "ramp" until the scenario's ramp-up is over, then "steady": thresholds judge the steady
// window only, so the warm-up does not hide or cause a failure.
export function phase(rampSeconds) {
  const started = exec.scenario.startTime;
  return Date.now() - started >= rampSeconds * 1000 ? "steady" : "ramp";
}

export function idempotencyKey() {
  return `k6-${exec.scenario.name}-${exec.vu.idInTest}-${exec.scenario.iterationInTest}-${Date.now()}`;
}

export function createAccount(owner, noOverdraft, key) {
  const res = http.post(
    `${BASE_URL}/v1/accounts`,
    JSON.stringify({ owner, currency: CURRENCY, flags: { no_overdraft: noOverdraft } }),
    {
      headers: Object.assign({ "Idempotency-Key": key }, JSON_HEADERS, authHeaders()),
      tags: { name: "POST /v1/accounts", phase: "setup" },
    }
  );
  if (res.status !== 201) {
    fail(`account creation failed: ${res.status} ${res.body}`);
  }
  return res.json("id");
}

export function postTransfer(body, key, tags) {
  return http.post(`${BASE_URL}/v1/transfers`, JSON.stringify(body), {
    headers: Object.assign({ "Idempotency-Key": key }, JSON_HEADERS, authHeaders()),
    tags: Object.assign({ name: "POST /v1/transfers" }, tags),
  });
}

export function getAccount(id, tags) {
  return http.get(`${BASE_URL}/v1/accounts/${id}`, {
    headers: authHeaders(),
    tags: Object.assign({ name: "GET /v1/accounts/{id}" }, tags),
  });
}

// The test data: one settlement account and ACCOUNTS customers, each funded with enough for
// the whole run (amounts are 1..100 minor units), so no transfer fails for lack of funds.
export function setupLedger() {
  const owner = CLIENT_ID || "loadtest";
  const run = `${Date.now()}`;
  const settlement = createAccount(owner, false, `k6-setup-${run}-settlement`);
  const accounts = [];
  for (let i = 0; i < ACCOUNTS; i++) {
    const id = createAccount(owner, true, `k6-setup-${run}-acct-${i}`);
    const res = postTransfer(
      {
        debit_account_id: settlement,
        credit_account_id: id,
        amount: 1000000000,
        currency: CURRENCY,
      },
      `k6-setup-${run}-fund-${i}`,
      { phase: "setup" }
    );
    if (res.status !== 201) {
      fail(`funding failed: ${res.status} ${res.body}`);
    }
    accounts.push(id);
  }
  return { settlement, accounts };
}
