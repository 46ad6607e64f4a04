-- wrk scenario "tokens": the k6 tokens scenario's shape, POST /oauth/token with client
-- credentials (client_secret_basic). Environment: CLIENT_ID, CLIENT_SECRET, WRK_SUMMARY.
package.path = os.getenv("WRK_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

local function b64(data)
  local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return ((data:gsub(".", function(x)
    local r, byte = "", x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({"", "==", "="})[#data % 3 + 1])
end

local auth

function init(_)
  auth = "Basic " .. b64((os.getenv("CLIENT_ID") or "") .. ":" .. (os.getenv("CLIENT_SECRET") or ""))
end

function request()
  return wrk.format("POST", "/oauth/token",
    {["Authorization"] = auth, ["Content-Type"] = "application/x-www-form-urlencoded"},
    "grant_type=client_credentials")
end
