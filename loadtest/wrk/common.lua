-- Shared by the wrk scenarios (wrk runs one Lua state per thread): the accounts file, the
-- bearer token, and done(), which writes the run's numbers as JSON for run.sh to judge.
local M = {}

function M.read_lines(path)
  local lines = {}
  local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  for line in f:lines() do
    if line ~= "" then lines[#lines + 1] = line end
  end
  f:close()
  assert(#lines >= 2, "need at least two accounts in " .. path)
  return lines
end

function M.headers(extra)
  local h = extra or {}
  local token = os.getenv("COFRE_TOKEN")
  if token and token ~= "" then h["Authorization"] = "Bearer " .. token end
  return h
end

-- Thread ids for unique idempotency keys, set from the main state.
local next_tid = 0
function M.setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
end

function M.done(summary, latency, _)
  local path = os.getenv("WRK_SUMMARY")
  if not path then return end
  local errs = summary.errors
  local f = assert(io.open(path, "w"))
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, errs.status, errs.connect, errs.read, errs.write,
    errs.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max))
  f:close()
end

return M
