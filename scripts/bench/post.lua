-- POST scenarios for scripts/bench/wrk.ts, chosen by BENCH_MODE:
--   token     OAuth2 password form (urlencoded), rotating over the seeded users
--             <BENCH_PREFIX><i>@example.com, i in [0, BENCH_USERS)
--   register  JSON {email, password} with an email unique per request (run prefix + thread id +
--             counter), so every request is a real registration (one bcrypt hash), never a 409/400
-- With BENCH_FORWARD set (a run number, 1-255) every request comes from a client address of its own,
-- X-Forwarded-For 10.<run>.<b>.<c> (unique per thread and request), for a server that trusts one proxy
-- and keeps its per-address limits on: one wrk is then many clients, none of them known to the server.
-- Every response is counted by status so the bench can say what any non-2xx actually were.
local mode = os.getenv('BENCH_MODE') or 'token'
local forward = os.getenv('BENCH_FORWARD') or ''
local prefix = os.getenv('BENCH_PREFIX') or 'bench-'
local password = os.getenv('BENCH_PASSWORD') or 'bench-password-1234'
local users = tonumber(os.getenv('BENCH_USERS') or '1')

local threads = {}
local next_id = 0

function setup(thread)
  thread:set('id', next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local counter = 0
local sent = 0
statuses = {}

function init(args)
  -- threads start on different users so they do not log the same user in at the same moment
  counter = id * 7
end

-- 32768 addresses per thread (two threads fill the 65536 of 10.<run>.0.0/16)
local function headers(content_type)
  local h = { ['Content-Type'] = content_type }
  if forward ~= '' then
    sent = sent + 1
    local n = id * 32768 + sent % 32768
    h['X-Forwarded-For'] = '10.' .. forward .. '.' .. math.floor(n / 256) .. '.' .. n % 256
  end
  return h
end

function request()
  counter = counter + 1
  if mode == 'token' then
    local body = 'grant_type=password&username=' .. prefix .. (counter % users)
      .. '%40example.com&password=' .. password
    return wrk.format('POST', '/token', headers('application/x-www-form-urlencoded'), body)
  end
  local email = prefix .. 'new-' .. id .. '-' .. counter .. '@example.com'
  local body = '{"email":"' .. email .. '","password":"' .. password .. '"}'
  return wrk.format('POST', '/register', headers('application/json'), body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get('statuses')) do
      total[status] = (total[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    table.insert(parts, status .. '=' .. n)
  end
  table.sort(parts)
  io.write('statuses: ' .. table.concat(parts, ' ') .. '\n')
end
