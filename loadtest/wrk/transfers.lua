-- wrk scenario "transfers": the k6 transfers scenario's shape. POST /v1/transfers between
-- random funded accounts (amounts 1..100), a fresh Idempotency-Key per request, and 2% of
-- requests replaying an earlier key with its body (answered 201 from the store). The replayed
-- request is HISTORY requests old: wrk cannot tell which request a response answers, and a
-- key still in flight on another connection would rightly get 409 in_flight.
-- Environment: ACCOUNTS_FILE (one account id per line), CURRENCY, COFRE_TOKEN, WRK_SUMMARY.
package.path = os.getenv("WRK_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local HISTORY = 1024
local accounts, currency, counter, run_id
local sent_keys, sent_bodies = {}, {}

setup = common.setup
done = common.done

function init(_)
  accounts = common.read_lines(os.getenv("ACCOUNTS_FILE"))
  currency = os.getenv("CURRENCY") or "EUR"
  run_id = os.getenv("RUN_ID") or tostring(os.time())
  counter = 0
  math.randomseed(os.time() + (tid or 0) * 7919)
end

function request()
  local old = (counter + 1) % HISTORY + 1 -- the oldest entry: HISTORY - 1 requests ago
  if sent_keys[old] and math.random() < 0.02 then
    -- Each key is replayed once: two replays of one key at once would make the second 409.
    local key = sent_keys[old]
    sent_keys[old] = nil
    return wrk.format("POST", "/v1/transfers",
      common.headers({["Content-Type"] = "application/json", ["Idempotency-Key"] = key}),
      sent_bodies[old])
  end
  counter = counter + 1
  local debit = accounts[math.random(#accounts)]
  local credit = debit
  while credit == debit do credit = accounts[math.random(#accounts)] end
  local body = string.format(
    '{"debit_account_id":"%s","credit_account_id":"%s","amount":%d,"currency":"%s"}',
    debit, credit, math.random(100), currency)
  local key = string.format("wrk-%s-%d-%d", run_id, tid or 0, counter)
  local slot = counter % HISTORY + 1
  sent_keys[slot], sent_bodies[slot] = key, body
  return wrk.format("POST", "/v1/transfers",
    common.headers({["Content-Type"] = "application/json", ["Idempotency-Key"] = key}), body)
end
