-- wrk script: the load of transfers.lua held near a target rate. RATE (requests/s over all
-- connections) and CONNECTIONS (wrk's -c) come from the environment; each connection waits
-- between requests so that together they send about RATE per second.
dofile(os.getenv("SCRIPT_DIR") .. "/transfers.lua")

local pause_ms = 0

local base_init = init
function init(args)
    base_init(args)
    local rate = tonumber(os.getenv("RATE"))
    local connections = tonumber(os.getenv("CONNECTIONS"))
    pause_ms = connections * 1000 / rate
end

function delay()
    return pause_ms
end
