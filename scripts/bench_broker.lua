-- wrk script for scripts/bench_broker.py: replays pre-signed requests, each once.
--
--   wrk -t T -c C -d D -s scripts/bench_broker.lua URL -- REQUESTS_FILE T
--
-- REQUESTS_FILE has one request a line: METHOD <tab> PATH <tab> ATTESTATION <tab> BODY (the
-- attestation binds method, path and body and has a jti of its own, so every request is new to
-- the broker). Thread k of T takes lines k, k+T, k+2T, ...; a thread that has sent all of its
-- lines stops and says so in the summary (the run was then shorter than D for it). At the end
-- one JSON line: requests, non-2xx answers, socket errors, latency p50/p99/max in microseconds.

local next_id = 0
local threads = {}

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path, parts = args[1], tonumber(args[2])
  reqs, idx, ran_out = {}, 0, 0
  local k = 0
  for line in io.lines(path) do
    if k % parts == id then
      local method, p, token, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = { ["Authorization"] = "JitAttest " .. token }
      if body ~= "" then
        headers["Content-Type"] = "application/json"
      else
        body = nil
      end
      table.insert(reqs, wrk.format(method, p, headers, body))
    end
    k = k + 1
  end
end

function request()
  idx = idx + 1
  if idx > #reqs then
    -- Out of pre-signed requests: never replay one (the broker would refuse it); stop.
    ran_out = 1
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  return reqs[idx]
end

function done(summary, latency, requests)
  local out_of = 0
  for _, t in ipairs(threads) do
    out_of = out_of + (t:get("ran_out") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, "threads_out_of_requests": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, out_of))
end
