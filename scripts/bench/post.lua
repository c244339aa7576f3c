-- POST scenarios for scripts/bench.ts, chosen by BENCH_MODE:
--   token     OAuth2 password form (urlencoded), rotating over the seeded users
--             <BENCH_PREFIX><i>@example.com, i in [0, BENCH_USERS)
--   register  JSON {email, password} with an email unique per request (run prefix + thread id +
--             counter), so every request is a real registration (one bcrypt hash), never a 409/400
-- Every response is counted by status so the bench can say what any non-2xx actually were.
local mode = os.getenv('BENCH_MODE') or 'token'
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
statuses = {}

function init(args)
  -- threads start on different users so they do not log the same user in at the same moment
  counter = id * 7
end

function request()
  counter = counter + 1
  if mode == 'token' then
    local body = 'grant_type=password&username=' .. prefix .. (counter % users)
      .. '%40example.com&password=' .. password
    return wrk.format('POST', '/token', { ['Content-Type'] = 'application/x-www-form-urlencoded' }, body)
  end
  local email = prefix .. 'new-' .. id .. '-' .. counter .. '@example.com'
  local body = '{"email":"' .. email .. '","password":"' .. password .. '"}'
  return wrk.format('POST', '/register', { ['Content-Type'] = 'application/json' }, body)
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
