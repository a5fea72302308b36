-- wrk script: POST bodies in rotation (JSON texts, or multipart images), and one JSON line of
-- results. Set by environment: BENCH_PATH, BENCH_KIND (json | multipart), BENCH_FILES (a file
-- listing one JSON body per line, or one image path per line).
local path = os.getenv("BENCH_PATH")
local kind = os.getenv("BENCH_KIND")
local list = os.getenv("BENCH_FILES")
local bodies, headers = {}, {}
local boundary = "medaibenchboundary7e3f"
for line in io.lines(list) do
  if kind == "json" then
    table.insert(bodies, line)
  else
    local f = assert(io.open(line, "rb"))
    local data = f:read("*all")
    f:close()
    table.insert(bodies, "--" .. boundary .. "\r\n" ..
      "Content-Disposition: form-data; name=\"file\"; filename=\"image.png\"\r\n" ..
      "Content-Type: application/octet-stream\r\n\r\n" .. data .. "\r\n--" .. boundary .. "--\r\n")
  end
end
if kind == "json" then
  headers["Content-Type"] = "application/json"
else
  headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
end
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  headers["Authorization"] = auth
end
-- one more header, "Name: value" (a kiosk's X-Kiosk-Token)
local extra = os.getenv("BENCH_HEADER")
if extra and extra ~= "" then
  local name, value = extra:match("^([^:]+):%s*(.*)$")
  headers[name] = value
end
local i = math.random(#bodies)
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", path, headers, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "duration_s": %.3f, "p50_ms": %.2f, ' ..
    '"p95_ms": %.2f, "p99_ms": %.2f, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(95) / 1e3, latency:percentile(99) / 1e3, e.status,
    e.connect + e.read + e.write + e.timeout))
end
