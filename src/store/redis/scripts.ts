/**
 * The Lua scripts of the Redis store. Each state change that must be atomic is one
 * script (Redis runs a script with nothing interleaved), so bounds are checked and
 * counters moved in the same step as the write. Keys are passed in KEYS so that the
 * scripts stay correct under Redis Cluster hash tags later (docs/CLUSTER.md § Layout).
 */

/**
 * Register a client. KEYS: client hash, names hash, clients zset, registry version.
 * ARGV: id, name, name_key, public_key, fingerprint, created_at, and optionally
 * revoked_at and last_seen ("" for none; set by `migrate`).
 * Returns "OK", "NAME_TAKEN" or "ID_TAKEN".
 */
export const ADD_CLIENT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'ID_TAKEN' end
if redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[1]) == 0 then return 'NAME_TAKEN' end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[2], 'name_key', ARGV[3],
  'public_key', ARGV[4], 'fingerprint', ARGV[5], 'created_at', ARGV[6], 'online', '0')
if ARGV[7] and ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'revoked_at', ARGV[7]) end
if ARGV[8] and ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'last_seen', ARGV[8]) end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
redis.call('INCR', KEYS[4])
return 'OK'
`;

/**
 * Revoke, raising the revocation serial in the same step. KEYS: client hash, registry
 * version, revocation serial. ARGV: at. Returns 1 when revoked now.
 */
export const REVOKE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'revoked_at') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'revoked_at', ARGV[1])
redis.call('INCR', KEYS[2])
redis.call('INCR', KEYS[3])
return 1
`;

/** Presence of existing clients. KEYS: client hashes. ARGV: per key, at and 0/1. */
export const PRESENCE = `
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'last_seen', ARGV[2 * i - 1], 'online', ARGV[2 * i])
  end
end
return 0
`;

/**
 * Hold messages for one recipient within its bounds, each checked as if the ones before
 * it were already held; nothing is evicted.
 * KEYS: inbox stream, inbox totals hash, per-sender counts hash, sequence counter,
 *       recipients set, pending counter.
 * ARGV: recipient, max_messages, max_bytes, max_per_sender, then (sender, at, room, data)
 *       per message (room "" for a direct message).
 * Returns one entry per message: 0 (held), 1 (count bound), 2 (byte bound), 3 (sender bound).
 */
export const ENQUEUE = `
local maxMessages, maxBytes, maxPerSender = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local count = tonumber(redis.call('HGET', KEYS[2], 'count') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
local out = {}
local held = 0
for i = 5, #ARGV, 4 do
  local sender, at, room, data = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local fromSender = tonumber(redis.call('HGET', KEYS[3], sender) or '0')
  if count >= maxMessages then
    out[#out + 1] = 1
  elseif bytes + #data > maxBytes then
    out[#out + 1] = 2
  elseif fromSender >= maxPerSender then
    out[#out + 1] = 3
  else
    local seq = redis.call('INCR', KEYS[4])
    if room == '' then
      redis.call('XADD', KEYS[1], seq .. '-0', 's', sender, 't', at, 'd', data)
    else
      redis.call('XADD', KEYS[1], seq .. '-0', 's', sender, 't', at, 'r', room, 'd', data)
    end
    redis.call('HINCRBY', KEYS[3], sender, 1)
    count = count + 1
    bytes = bytes + #data
    held = held + 1
    out[#out + 1] = 0
  end
end
if held > 0 then
  redis.call('HSET', KEYS[2], 'count', count, 'bytes', bytes)
  redis.call('SADD', KEYS[5], ARGV[1])
  redis.call('INCRBY', KEYS[6], held)
end
return out
`;

/**
 * Delete one recipient's held messages through a sequence number (mode "seq"), those
 * queued before a time ("age"), or those from one sender ("sender"), moving the
 * counters with them.
 * KEYS: inbox stream, inbox totals hash, per-sender counts hash, recipients set, pending.
 * ARGV: mode, bound (sequence, unix s or sender ID), recipient member name.
 * Returns how many were deleted.
 */
export const REMOVE = `
local entries
if ARGV[1] == 'seq' then
  entries = redis.call('XRANGE', KEYS[1], '-', ARGV[2] .. '-0')
else
  entries = {}
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
    local f = e[2]
    local at, sender
    for j = 1, #f, 2 do
      if f[j] == 't' then at = tonumber(f[j + 1]) elseif f[j] == 's' then sender = f[j + 1] end
    end
    if ARGV[1] == 'sender' then
      if sender == ARGV[2] then entries[#entries + 1] = e end
    elseif at and at < tonumber(ARGV[2]) then
      entries[#entries + 1] = e
    else
      break
    end
  end
end
if #entries == 0 then return 0 end
local bytes = 0
for _, e in ipairs(entries) do
  local f = e[2]
  local sender, data
  for j = 1, #f, 2 do
    if f[j] == 's' then sender = f[j + 1] elseif f[j] == 'd' then data = f[j + 1] end
  end
  bytes = bytes + #data
  if redis.call('HINCRBY', KEYS[3], sender, -1) <= 0 then redis.call('HDEL', KEYS[3], sender) end
  redis.call('XDEL', KEYS[1], e[1])
end
local left = redis.call('HINCRBY', KEYS[2], 'count', -#entries)
redis.call('HINCRBY', KEYS[2], 'bytes', -bytes)
redis.call('DECRBY', KEYS[5], #entries)
if left <= 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('SREM', KEYS[4], ARGV[3])
end
return #entries
`;

/**
 * Create a room with its owner as first member. KEYS: room hash, members hash, owner's
 * rooms set, member sequence, registry version (moved: other nodes re-read rooms). ARGV: name, owner, public (0/1), created_at, room key.
 * Returns "OK" or "NAME_TAKEN".
 */
export const CREATE_ROOM = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'NAME_TAKEN' end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'owner', ARGV[2], 'public', ARGV[3], 'created_at', ARGV[4])
local seq = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[2], ARGV[2], 'member ' .. ARGV[4] .. ' ' .. seq)
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('INCR', KEYS[5])
return 'OK'
`;

/**
 * Set (or remove, state "") a client's place in a room; when no member is left the room
 * and its invitations go. KEYS: room hash, members hash, the client's rooms set, member
 * sequence, registry version (moved by every change). ARGV: client, state, at, room key, prefix. Returns 1 when the room was deleted.
 * A state equal to the current one changes nothing (its arrival order and time stay).
 */
export const SET_MEMBERSHIP = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local current = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then
  if current and string.match(current, '^(%S+)') == ARGV[2] then return 0 end
  local seq = redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. seq)
  redis.call('SADD', KEYS[3], ARGV[4])
  redis.call('INCR', KEYS[5])
  return 0
end
redis.call('INCR', KEYS[5])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[4])
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
  if string.match(v, '^(%S+)') == 'member' then return 0 end
end
for _, client in ipairs(redis.call('HKEYS', KEYS[2])) do
  redis.call('SREM', ARGV[5] .. 'rooms:of:' .. client, ARGV[4])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
return 1
`;
