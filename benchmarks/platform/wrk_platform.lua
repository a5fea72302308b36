-- wrk script for the platform: signed-in clients that upload studies (multipart, share
-- BENCH_UPLOAD_SHARE of requests) and otherwise read the worklist. Counts 201 answers (studies
-- accepted) per thread and prints one JSON line. Environment: BENCH_TOKEN (bearer token),
-- BENCH_FILES (one image path per line), BENCH_UPLOAD_SHARE (0..1).
local token = os.getenv("BENCH_TOKEN")
local share = tonumber(os.getenv("BENCH_UPLOAD_SHARE") or "0.2")
local boundary = "medaiplatformbench51c"
local uploads = {}
for line in io.lines(os.getenv("BENCH_FILES")) do
  local f = assert(io.open(line, "rb"))
  local data = f:read("*all")
  f:close()
  table.insert(uploads, "--" .. boundary .. "\r\n" ..
    "Content-Disposition: form-data; name=\"task\"\r\n\r\ncxr\r\n--" .. boundary .. "\r\n" ..
    "Content-Disposition: form-data; name=\"file\"; filename=\"study.png\"\r\n" ..
    "Content-Type: image/png\r\n\r\n" .. data .. "\r\n--" .. boundary .. "--\r\n")
end
local upload_headers = {["Authorization"] = "Bearer " .. token,
                        ["Content-Type"] = "multipart/form-data; boundary=" .. boundary}
local read_headers = {["Authorization"] = "Bearer " .. token}
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

init = function(args)
  created, listed, other = 0, 0, 0
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

local i = 0
request = function()
  if math.random() < share then
    i = i % #uploads + 1
    return wrk.format("POST", "/api/v1/studies", upload_headers, uploads[i])
  end
  return wrk.format("GET", "/api/v1/studies?limit=50", read_headers)
end

response = function(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 200 then listed = listed + 1
  else other = other + 1 end
end

done = function(summary, latency, requests)
  local c, l, o = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created"); l = l + t:get("listed"); o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "duration_s": %.3f, "p50_ms": %.2f, ' ..
    '"p95_ms": %.2f, "p99_ms": %.2f, "non_2xx": %d, "socket_errors": %d, "created": %d, ' ..
    '"listed": %d, "other": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(95) / 1e3, latency:percentile(99) / 1e3, e.status,
    e.connect + e.read + e.write + e.timeout, c, l, o))
end
