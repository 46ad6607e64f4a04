-- wrk script: transfers.lua with a pause after every answer, for a load below saturation.
-- Each connection sends, waits for the answer, then waits PACE_MS milliseconds; the total rate
-- is about connections / (PACE_MS + latency). Needs BENCH_DIR (where transfers.lua is).
dofile(os.getenv("BENCH_DIR") .. "/transfers.lua")

local pace_ms = tonumber(os.getenv("PACE_MS") or "10")

function delay()
    return pace_ms
end
