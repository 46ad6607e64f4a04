-- wrk scenario "reads": the k6 reads scenario's shape, GET /v1/accounts/{id} of random accounts.
-- Environment: ACCOUNTS_FILE, COFRE_TOKEN, WRK_SUMMARY.
package.path = os.getenv("WRK_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local accounts

setup = common.setup
done = common.done

function init(_)
  accounts = common.read_lines(os.getenv("ACCOUNTS_FILE"))
  math.randomseed(os.time() + (tid or 0) * 7919)
end

function request()
  return wrk.format("GET", "/v1/accounts/" .. accounts[math.random(#accounts)], common.headers())
end
