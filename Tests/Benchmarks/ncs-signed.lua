-- wrk script: a distinct, correctly signed NCS callback per request (new random noticeId, sid
-- and sequence each time), so the receiver runs its whole pipeline and appends every one.
-- The HMAC-SHA256 comes from OpenSSL's libcrypto through LuaJIT's FFI (wrk embeds LuaJIT).
-- Secret: NCS_BENCH_SECRET, default ncs-fixture-secret.
-- NCS_BENCH_SIDS=<n>: the callbacks belong to n recording sessions (sids), as Agora's traffic
-- does, instead of a new sid for each (the default). Each stays distinct: the sequence grows.
-- NCS_BENCH_TYPES=<n>: the callbacks cycle through n event types (at most 20, none that
-- restarts or fails over a recording), as Agora's mix does, instead of 33 only (the default).
local ffi = require("ffi")
ffi.cdef[[
unsigned char *HMAC(const void *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
const void *EVP_sha256(void);
]]
local crypto = ffi.load("crypto")
local secret = os.getenv("NCS_BENCH_SECRET") or "ncs-fixture-secret"
local digest = ffi.new("unsigned char[32]")
local digestLength = ffi.new("unsigned int[1]")
local hex = {}
for i = 0, 255 do hex[i] = string.format("%02x", i) end

-- LuaJIT starts every state on the same seed: without this, two runs would send the same ids.
math.randomseed(os.time())
local sessions = tonumber(os.getenv("NCS_BENCH_SIDS") or "")
local catalogue = {33, 1, 2, 3, 4, 13, 30, 40, 41, 42, 43, 44, 45, 60, 61, 70, 72, 73, 80, 90}
local types = {}
for i = 1, math.min(tonumber(os.getenv("NCS_BENCH_TYPES") or "1") or 1, #catalogue) do types[i] = catalogue[i] end
local counter = 0
local prefix = tostring(math.random(1, 1e9)) .. "-" .. tostring(os.time())

local function sign(body)
  crypto.HMAC(crypto.EVP_sha256(), secret, #secret, body, #body, digest, digestLength)
  local out = {}
  for i = 0, 31 do out[i + 1] = hex[digest[i]] end
  return table.concat(out)
end

setup = function(thread)
  thread:set("threadPrefix", tostring(math.random(1, 1e9)))
end

request = function()
  counter = counter + 1
  -- A random hex noticeId, as Agora sends (32-hex strings, UUIDs); the counter keeps it unique:
  -- sequential ids would land side by side in a B-tree and flatter any index on them.
  local id = string.format("%08x%08x%08x%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff),
    math.random(0, 0x7fffffff), tonumber(threadPrefix) or 0, counter)
  local sid = sessions and (prefix .. "-" .. (threadPrefix or "t") .. "-s" .. (counter % sessions)) or id
  local eventType = types[(counter % #types) + 1]
  local body = '{"noticeId":"' .. id .. '","productId":3,"eventType":' .. eventType .. ',"notifyMs":1718600001023,' ..
    '"payload":{"cname":"bench_room","uid":"527841","sid":"sid-' .. sid .. '","sequence":' .. counter ..
    ',"sendts":1718600001000,"serviceType":2,"details":{"msgName":"uploading_progress","progress":"' .. (counter % 100) .. '"}}}'
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Agora-Signature-V2"] = sign(body),
  }, body)
end

response = function(status, headers, body)
  if status ~= 200 then
    errors = (errors or 0) + 1
    if errors <= 3 then io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n") end
  end
end
