/**
 * Lua scripts of the cluster engine (src/store/redis/cluster.ts). Each is one atomic
 * step, so a message is either handed to the mailboxes of the nodes that hold the
 * recipient's receiving sessions or held in its inbox — never both, never neither — even
 * while the recipient logs in or out on another node at the same moment.
 *
 * Presence of a client: hash `{p}sess:{client}`, field `NODE/SESSION`, value `L S`
 * flags as "1 1" (receives live, takes stored). A node's mailbox: stream `{p}mail:{node}`
 * with fields `k` (d: direct, b: broadcast, c: control), `r` (recipient), `p` (bytes).
 */

/** Appends one held message (the ENQUEUE script's step without bounds), as a Lua function. */
const HOLD_FN = `
local function hold(p, recipient, sender, at, data, room)
  local inbox = p .. 'inbox:' .. recipient
  local seq = redis.call('INCR', p .. 'seq')
  if room and room ~= '' then
    redis.call('XADD', inbox, seq .. '-0', 's', sender, 't', at, 'r', room, 'd', data)
  else
    redis.call('XADD', inbox, seq .. '-0', 's', sender, 't', at, 'd', data)
  end
  redis.call('HINCRBY', inbox .. ':senders', sender, 1)
  redis.call('HINCRBY', inbox .. ':totals', 'count', 1)
  redis.call('HINCRBY', inbox .. ':totals', 'bytes', #data)
  redis.call('SADD', p .. 'recipients', recipient)
  redis.call('INCR', p .. 'pending')
end
`;

/**
 * Tell every node but `self` that holds a session of `recipient` taking stored messages
 * that some were held (a control entry `{"op":"stored","client":…}`), as a Lua function.
 */
const NOTIFY_FN = `
local function notifyTakers(p, recipient, self)
  local f = redis.call('HGETALL', p .. 'sess:' .. recipient)
  local told = {}
  for i = 1, #f, 2 do
    local node = string.match(f[i], '^([^/]+)/')
    if node and node ~= self and not told[node] and string.sub(f[i + 1], 3, 3) == '1' then
      told[node] = true
      redis.call('XADD', p .. 'mail:' .. node, '*', 'k', 'c', 'r', '', 'p', '{"op":"stored","client":"' .. recipient .. '"}')
    end
  end
end
`;

/**
 * Reap a node whose lease expired, as a Lua function: its sessions leave presence (a
 * client left with none is recorded offline, last seen now), and
 * the direct and room messages still in its mailbox are held for their recipients, in
 * mailbox order (room ones with their room; bounds do not apply: they were accepted).
 * Returns removed sessions, held messages.
 */
const REAP_FN = `
local function reapNode(p, node)
  local removed, held = 0, 0
  local now = redis.call('TIME')[1]
  local clients = p .. 'node:' .. node .. ':clients'
  for _, client in ipairs(redis.call('SMEMBERS', clients)) do
    local key = p .. 'sess:' .. client
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if string.sub(field, 1, #node + 1) == node .. '/' then
        redis.call('HDEL', key, field)
        removed = removed + 1
      end
    end
    -- No session left anywhere: offline in the registry too (what 'clients' shows).
    local ck = p .. 'client:' .. client
    if redis.call('HLEN', key) == 0 and redis.call('EXISTS', ck) == 1 then
      redis.call('HSET', ck, 'online', '0', 'last_seen', now)
    end
  end
  local mail = p .. 'mail:' .. node
  for _, e in ipairs(redis.call('XRANGE', mail, '-', '+')) do
    local f = e[2]
    local kind, recipient, data, room, holdData
    for j = 1, #f, 2 do
      if f[j] == 'k' then kind = f[j + 1] elseif f[j] == 'r' then recipient = f[j + 1] elseif f[j] == 'p' then data = f[j + 1]
      elseif f[j] == 'm' then room = f[j + 1] elseif f[j] == 'h' then holdData = f[j + 1] end
    end
    if kind == 'd' then
      -- data is the delivered C2C: byte0 || sender (16) || message data
      local s = string.sub(data, 2, 17)
      local hex = string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end)
      local sender = string.sub(hex, 1, 8) .. '-' .. string.sub(hex, 9, 12) .. '-' .. string.sub(hex, 13, 16) .. '-' .. string.sub(hex, 17, 20) .. '-' .. string.sub(hex, 21, 32)
      hold(p, recipient, sender, now, holdData or string.sub(data, 18), room)
      notifyTakers(p, recipient, node)
      held = held + 1
    end
  end
  redis.call('DEL', mail, clients)
  redis.call('SREM', p .. 'nodes', node)
  return removed, held
end
`;

/**
 * Route one direct or room message. KEYS: none (single Redis; see docs/CLUSTER.md).
 * ARGV: prefix, this node, recipient, sender, at, plain (the C2C as delivered:
 * byte0 || sender (16) || data), max_messages, max_bytes, max_per_sender, and
 * optionally room ("" for a direct message), the data to hold (for a room message: its
 * data without the room header; default: plain after the 17-byte header), and "1" to
 * refuse a recipient that is not registered or is revoked.
 * Mailbox entries of a room message carry `m` (room) and `h` (data to hold), so that
 * REAP can hold it with its room.
 * Returns {local, remote, held}: local = 1 when this node holds a live session of the
 * recipient (the caller delivers), remote = mailboxes written, held = 0 not held,
 * 1 held, 2..4 refused by a bound (count, bytes, sender), 5 unknown recipient.
 * A node in the recipient's presence whose lease lapsed is reaped first (REAP_FN).
 * When it holds, each other node holding a session that takes stored messages gets a
 * control entry `{"op":"stored","client":…}` (start taking).
 */
export const ROUTE = `${HOLD_FN}${NOTIFY_FN}${REAP_FN}
local p, self, recipient, sender, at, plain = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local room = ARGV[10] or ''
local data = ARGV[11]
if not data or (room == '' and data == '') then data = string.sub(plain, 18) end
if ARGV[12] == '1' then
  local ck = p .. 'client:' .. recipient
  if redis.call('EXISTS', ck) == 0 or redis.call('HEXISTS', ck, 'revoked_at') == 1 then
    return {0, 0, 5}
  end
end
local fields = redis.call('HGETALL', p .. 'sess:' .. recipient)
-- A node holding a session whose lease lapsed is reaped first: what its mailbox holds
-- is held ahead of this message, so the sender's order stays.
local reaped = false
for i = 1, #fields, 2 do
  local node = string.match(fields[i], '^([^/]+)/')
  if node and node ~= self and redis.call('EXISTS', p .. 'node:' .. node) == 0 then
    reapNode(p, node)
    reaped = true
  end
end
if reaped then fields = redis.call('HGETALL', p .. 'sess:' .. recipient) end
local localLive, remote, seen = 0, 0, {}
for i = 1, #fields, 2 do
  local node = string.match(fields[i], '^([^/]+)/')
  if string.sub(fields[i + 1], 1, 1) == '1' and node then
    if node == self then
      localLive = 1
    elseif not seen[node] then
      seen[node] = true
      if room == '' then
        redis.call('XADD', p .. 'mail:' .. node, '*', 'k', 'd', 'r', recipient, 'p', plain)
      else
        redis.call('XADD', p .. 'mail:' .. node, '*', 'k', 'd', 'r', recipient, 'p', plain, 'm', room, 'h', data)
      end
      remote = remote + 1
    end
  end
end
if localLive == 1 or remote > 0 then return {localLive, remote, 0} end
local inbox = p .. 'inbox:' .. recipient
local count = tonumber(redis.call('HGET', inbox .. ':totals', 'count') or '0')
local bytes = tonumber(redis.call('HGET', inbox .. ':totals', 'bytes') or '0')
local fromSender = tonumber(redis.call('HGET', inbox .. ':senders', sender) or '0')
if count >= tonumber(ARGV[7]) then return {0, 0, 2} end
if bytes + #data > tonumber(ARGV[8]) then return {0, 0, 3} end
if fromSender >= tonumber(ARGV[9]) then return {0, 0, 4} end
hold(p, recipient, sender, at, data, room)
notifyTakers(p, recipient, self)
return {0, 0, 1}
`;

/**
 * A broadcast to every other live node's mailbox. ARGV: prefix, this node, data.
 * Returns the number of nodes written to.
 */
export const BROADCAST = `
local p, self = ARGV[1], ARGV[2]
local n = 0
for _, node in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do
  if node ~= self and redis.call('EXISTS', p .. 'node:' .. node) == 1 then
    redis.call('XADD', p .. 'mail:' .. node, '*', 'k', 'b', 'r', '', 'p', ARGV[3])
    n = n + 1
  end
end
return n
`;

/**
 * Add or remove a session. ARGV: prefix, node, client, session, flags ("" removes).
 * Returns the client's sessions after the change.
 */
export const SESSION = `
local p, node, client = ARGV[1], ARGV[2], ARGV[3]
local key = p .. 'sess:' .. client
local field = node .. '/' .. ARGV[4]
if ARGV[5] == '' then
  redis.call('HDEL', key, field)
else
  redis.call('HSET', key, field, ARGV[5])
  redis.call('SADD', p .. 'node:' .. node .. ':clients', client)
end
return redis.call('HLEN', key)
`;

/**
 * Add a session and name the other nodes already holding a session with the same key
 * (which it replaces: only the later of two logins sees the earlier one, so two logins
 * at the same instant do not end each other). ARGV: prefix, node, client, session,
 * flags. Returns those nodes.
 */
export const SESSION_CLAIM = `
local p, node, client, session = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key = p .. 'sess:' .. client
local others = {}
for _, field in ipairs(redis.call('HKEYS', key)) do
  local n = string.match(field, '^([^/]+)/')
  if n and n ~= node and string.sub(field, #n + 2) == session then others[#others + 1] = n end
end
redis.call('HSET', key, node .. '/' .. session, ARGV[5])
redis.call('SADD', p .. 'node:' .. node .. ':clients', client)
return others
`;

/**
 * Take or refresh this node's lease. KEYS: lease key, nodes set. ARGV: node, info, ms.
 * Returns 1 when the lease was still held, 0 when it had expired (and was taken again).
 */
export const LEASE = `
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('PEXPIRE', KEYS[1], ARGV[3]) == 1 then return 1 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 0
`;

/**
 * Reap a node whose lease expired (see REAP_FN). ARGV: prefix, node. Returns
 * {sessions removed, messages held}; does nothing (returns {-1, 0}) when the node's
 * lease is alive again.
 */
export const REAP = `${HOLD_FN}${NOTIFY_FN}${REAP_FN}
local p, node = ARGV[1], ARGV[2]
if redis.call('EXISTS', p .. 'node:' .. node) == 1 then return {-1, 0} end
local removed, held = reapNode(p, node)
return {removed, held}
`;

/**
 * Give up a client's stored-message taker lease if `token` still holds it.
 * KEYS: the lease key. ARGV: token. Returns 1 when it was released.
 */
export const TAKER_RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * Extend a client's taker lease if `token` still holds it.
 * KEYS: the lease key. ARGV: token, ms. Returns 1 when extended.
 */
export const TAKER_RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;
