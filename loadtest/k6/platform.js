// cofre load test for the pipeline (stage 8, against staging through the gateway):
//   transfers  POST /v1/transfers with Idempotency-Key (2% replay their key and must get the
//              stored answer back with Idempotency-Replayed: true)
//   reads      GET /v1/accounts/{id}
//   tokens     POST /oauth/token (client credentials)
// Open model: ramping arrival rate up to the profile's rate, then a steady-state window; the
// thresholds judge the steady window only and fail the run (k6 exits non-zero).
//
//   k6 run -e BASE_URL=https://staging.example -e CLIENT_ID=... -e CLIENT_SECRET=... \
//          -e K6_PROFILE=staging loadtest/k6/platform.js
// The same shapes run locally with wrk: loadtest/wrk/run.sh (make load-smoke).
import { check } from "k6";
import {
  CLIENT_ID,
  CURRENCY,
  getAccount,
  idempotencyKey,
  issueToken,
  phase,
  postTransfer,
  setupLedger,
} from "./lib/cofre.js";

// Rates are requests per second; ramp and steady in seconds.
const PROFILES = {
  smoke: { transfers: 20, reads: 20, tokens: 2, ramp: 10, steady: 30, vus: 20 },
  staging: { transfers: 400, reads: 400, tokens: 20, ramp: 120, steady: 300, vus: 400 },
  prod_like: { transfers: 2000, reads: 2000, tokens: 50, ramp: 180, steady: 600, vus: 1500 },
};
const P = PROFILES[__ENV.K6_PROFILE || "smoke"];
if (!P) {
  throw new Error(`unknown K6_PROFILE ${__ENV.K6_PROFILE}`);
}

function arrival(exec, rate, startTime) {
  return {
    executor: "ramping-arrival-rate",
    exec,
    startTime: startTime || "0s",
    startRate: 1,
    timeUnit: "1s",
    preAllocatedVUs: Math.ceil(P.vus / 2),
    maxVUs: P.vus,
    stages: [
      { target: rate, duration: `${P.ramp}s` },
      { target: rate, duration: `${P.steady}s` },
    ],
    gracefulStop: "10s",
  };
}

const scenarios = {
  transfers: arrival("transfers", P.transfers),
  reads: arrival("reads", P.reads),
};
if (CLIENT_ID) {
  scenarios.tokens = arrival("tokens", P.tokens);
}

// SLOs (docs/operations.md): transfers p99 <= 250 ms, tokens p99 <= 100 ms, errors < 0.1%.
export const options = {
  scenarios,
  thresholds: {
    "http_req_failed{scenario:transfers,phase:steady}": ["rate<0.001"],
    "http_req_duration{scenario:transfers,phase:steady}": ["p(95)<100", "p(99)<250"],
    "http_req_failed{scenario:reads,phase:steady}": ["rate<0.001"],
    "http_req_duration{scenario:reads,phase:steady}": ["p(95)<50", "p(99)<100"],
    "checks{phase:steady}": ["rate>0.999"],
    // The open model only holds if k6 had the VUs to start every iteration.
    dropped_iterations: [`count<${Math.ceil((P.transfers + P.reads) * P.steady * 0.01)}`],
  },
  summaryTrendStats: ["avg", "p(50)", "p(95)", "p(99)", "max"],
  setupTimeout: "300s",
};
if (scenarios.tokens) {
  options.thresholds["http_req_failed{scenario:tokens,phase:steady}"] = ["rate<0.001"];
  options.thresholds["http_req_duration{scenario:tokens,phase:steady}"] = ["p(95)<50", "p(99)<100"];
}

export function setup() {
  return setupLedger();
}

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

let lastTransfer = null; // per VU: the request a replay repeats

export function transfers(data) {
  const tags = { phase: phase(P.ramp) };
  if (lastTransfer !== null && Math.random() < 0.02) {
    const res = postTransfer(lastTransfer.body, lastTransfer.key, tags);
    check(res, {
      "replay: 201": (r) => r.status === 201,
      "replay: marked replayed": (r) => r.headers["Idempotency-Replayed"] === "true",
      "replay: same transfer": (r) => r.status === 201 && r.json("id") === lastTransfer.id,
    }, tags);
    return;
  }
  let debit = pick(data.accounts);
  let credit = pick(data.accounts);
  while (credit === debit) {
    credit = pick(data.accounts);
  }
  const body = {
    debit_account_id: debit,
    credit_account_id: credit,
    amount: 1 + Math.floor(Math.random() * 100),
    currency: CURRENCY,
  };
  const key = idempotencyKey();
  const res = postTransfer(body, key, tags);
  const ok = check(res, { "transfer: 201": (r) => r.status === 201 }, tags);
  if (ok) {
    lastTransfer = { body, key, id: res.json("id") };
  }
}

export function reads(data) {
  const tags = { phase: phase(P.ramp) };
  const res = getAccount(pick(data.accounts), tags);
  check(res, {
    "read: 200": (r) => r.status === 200,
    "read: balance is an integer": (r) => r.status === 200 && Number.isInteger(r.json("balance")),
  }, tags);
}

export function tokens() {
  issueToken({ phase: phase(P.ramp) });
}
