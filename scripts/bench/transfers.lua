-- wrk script: durable POST /v1/transfers between random accounts, each request with a new
-- Idempotency-Key. Reads account ids (one per line) from the file named by ACCOUNTS_FILE;
-- every account is funded enough that transfers of 1 minor unit never fail.
local ids = {}
local counter = 0
local thread_tag = ""

function setup(thread)
    -- The time keeps keys of one run apart from the last run's (Lua's default seed is fixed).
    thread:set("tag", tostring(os.time() * 1000 + math.random(1, 999)))
end

function init(args)
    thread_tag = tag or tostring(math.random(1, 1e9))
    local path = os.getenv("ACCOUNTS_FILE")
    for line in io.lines(path) do
        ids[#ids + 1] = line
    end
    math.randomseed(tonumber(thread_tag))
end

function request()
    counter = counter + 1
    local a = math.random(#ids)
    local b = math.random(#ids - 1)
    if b >= a then b = b + 1 end
    local body = '{"debit_account_id":"' .. ids[a] .. '","credit_account_id":"' .. ids[b] ..
                 '","amount":1,"currency":"EUR"}'
    local headers = {
        ["Content-Type"] = "application/json",
        ["Idempotency-Key"] = "bench-" .. thread_tag .. "-" .. counter,
    }
    return wrk.format("POST", "/v1/transfers", headers, body)
end

function response(status, headers, body)
    if status ~= 201 then
        errors = (errors or 0) + 1
    end
end
