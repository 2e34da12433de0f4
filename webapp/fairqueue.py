"""Fair order between users in front of the RQ queue (see docs/queue.md).

Each user's waiting generations sit in Redis sorted sets of their own, one per provider
(score: the generation id, so a user's own work keeps its order). A dispatcher moves
them into the RQ queue in weighted round robin by user (stride scheduling: each user
has a "pass"; the user with the lowest pass goes next and their pass grows by
1/weight), at most ``depth`` per user waiting in RQ at a time, and never more of one
provider's work than its cap allows (counting what is in RQ and what runs). Jobs sit
in RQ in the order of their turn (their tag: the pass they were handed out at), so a
newcomer, whose turn starts at the virtual time (the turn of the latest job to start),
goes before the backlog others keep in RQ. Every
step is one Lua script, so any number of web processes and workers on any hosts can
add, dispatch, start, finish and withdraw at once without losing or doubling work.

A generation's marker (``gen:<id>``) says where it is: ``waiting`` in its user's line,
``dispatched`` (its RQ job is queued), or ``running``. This module only knows Redis;
webapp.scheduling decides when to call it.

RQ details relied on (rq 3.0, as workers/threaded.py): a job saved with status ``deferred`` is
left alone by RQ until the dispatcher sets its ``status`` to ``queued`` and puts its id in the
queue's list (what ``Queue.enqueue_job`` does with RPUSH; here it may be LINSERTed before later
turns), with the key names RQ's classes give.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq.job import Job
from rq.queue import Queue
from rq.utils import utcformat

KEY_PREFIX = "switchboard:fair"
# A user counts as active (for the share) this long after their last work ended: a chatter between two
# messages still has their share kept free, rather than the flood filling every slot in that moment.
# (The app passes FAIR_SHARE_ACTIVE_SECONDS; this is the default for callers that do not.)
ACTIVE_GRACE_SECONDS = 60
_scripts: dict = {}

# -- Lua ----------------------------------------------------------------------------------
# Keys are built inside the scripts from the prefix (ARGV[1]): every key of one queue shares it.

_ADD = """
local P, gid, uid, prov = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local marker = P .. 'gen:' .. gid
if redis.call('EXISTS', marker) == 1 then return 0 end
redis.call('HSET', marker, 'user', uid, 'provider', prov, 'job', ARGV[5], 'model', ARGV[6],
           'state', 'waiting', 'since', ARGV[8])
redis.call('ZADD', P .. 'line:' .. uid .. ':' .. prov, tonumber(gid), gid)
redis.call('SADD', P .. 'lines:' .. uid, prov)
redis.call('SADD', P .. 'providers', prov)
redis.call('HSET', P .. 'weight', uid, ARGV[7])
if not redis.call('ZSCORE', P .. 'pass', uid) then
  -- A user who joins starts at the current virtual time, or later if they used more than
  -- their share before leaving: coming and going never jumps the line.
  local vt = tonumber(redis.call('GET', P .. 'vt') or '0')
  local last = tonumber(redis.call('HGET', P .. 'lastpass', uid) or '0')
  redis.call('ZADD', P .. 'pass', tostring(math.max(vt, last)), uid)
end
return 1
"""

_DISPATCH = """
local P, depth, limit, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local job_prefix, rq_queue, rq_queues, now_iso = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local share, active_since = tonumber(ARGV[9]), tonumber(now) - tonumber(ARGV[10])
-- A user's turn is never earlier than the virtual time: one held back (at the depth, the share or a
-- provider's cap) while the others' turns went by does not catch up with a run of starts afterwards.
local vt = tonumber(redis.call('GET', P .. 'vt') or '0')
redis.call('ZREMRANGEBYSCORE', P .. 'active', '-inf', '(' .. active_since)
-- Someone else is about: another user has work waiting, handed out or running, or had some end lately.
local function others_active(uid)
  local waiting = redis.call('ZCARD', P .. 'pass') - (redis.call('ZSCORE', P .. 'pass', uid) and 1 or 0)
  if waiting > 0 then return true end
  return redis.call('ZCARD', P .. 'active') - (redis.call('ZSCORE', P .. 'active', uid) and 1 or 0) > 0
end
local function within_share(uid, weight)
  return share <= 0 or redis.call('SCARD', P .. 'held:' .. uid) < share * weight or not others_active(uid)
end
local caps = {}
local stored = redis.call('HGETALL', P .. 'caps')
for i = 1, #stored, 2 do caps[stored[i]] = tonumber(stored[i + 1]) end
local function has_room(prov)
  local cap = caps[prov]
  return cap == nil or redis.call('SCARD', P .. 'busy:' .. prov) < cap
end
local out = {}
while #out < limit do
  local users = redis.call('ZRANGE', P .. 'pass', 0, -1, 'WITHSCORES')
  local picked = false
  for i = 1, #users, 2 do
    local uid, pass = users[i], math.max(tonumber(users[i + 1]), vt)
    local weight = tonumber(redis.call('HGET', P .. 'weight', uid) or '1')
    if redis.call('SCARD', P .. 'inq:' .. uid) < depth and within_share(uid, weight) then
      local best, best_score, best_prov = nil, nil, nil
      for _, prov in ipairs(redis.call('SMEMBERS', P .. 'lines:' .. uid)) do
        if has_room(prov) then
          local head = redis.call('ZRANGE', P .. 'line:' .. uid .. ':' .. prov, 0, 0, 'WITHSCORES')
          if head[1] and (best == nil or tonumber(head[2]) < best_score) then
            best, best_score, best_prov = head[1], tonumber(head[2]), prov
          end
        end
      end
      if best then
        local line = P .. 'line:' .. uid .. ':' .. best_prov
        redis.call('ZREM', line, best)
        if redis.call('ZCARD', line) == 0 then redis.call('SREM', P .. 'lines:' .. uid, best_prov) end
        redis.call('SADD', P .. 'inq:' .. uid, best)
        redis.call('SADD', P .. 'held:' .. uid, best)
        redis.call('ZADD', P .. 'active', 'inf', uid)  -- active while it holds work (see _LEAVE)
        redis.call('SADD', P .. 'busy:' .. best_prov, best)
        local marker = P .. 'gen:' .. best
        redis.call('HSET', marker, 'state', 'dispatched', 'since', now)
        local next_pass = pass + 1 / weight
        if redis.call('SCARD', P .. 'lines:' .. uid) == 0 then
          redis.call('ZREM', P .. 'pass', uid)
          redis.call('HSET', P .. 'lastpass', uid, tostring(next_pass))
        else
          redis.call('ZADD', P .. 'pass', tostring(next_pass), uid)
        end
        local fields = redis.call('HMGET', marker, 'job', 'model', 'user')
        -- Its RQ job (saved as deferred when it joined the line) enters the RQ queue in this same step:
        -- nothing is ever handed out without its job, whoever dispatches and whatever happens next.
        redis.call('HSET', job_prefix .. fields[1], 'status', 'queued', 'enqueued_at', now_iso)
        -- In RQ the jobs stay in the order of their turn (tag): this one goes before the first job whose
        -- turn comes later, so a newcomer does not wait behind the backlog others keep in RQ.
        redis.call('HSET', P .. 'tag', fields[1], tostring(pass))
        local queued = redis.call('LRANGE', rq_queue, 0, -1)
        local pivot = nil
        if #queued > 0 then
          local tags = redis.call('HMGET', P .. 'tag', unpack(queued))
          for j = 1, #queued do
            if tags[j] and tonumber(tags[j]) > pass then pivot = queued[j]; break end
          end
        end
        if pivot == nil or redis.call('LINSERT', rq_queue, 'BEFORE', pivot, fields[1]) < 0 then
          redis.call('RPUSH', rq_queue, fields[1])
        end
        redis.call('SADD', rq_queues, rq_queue)
        table.insert(out, {best, fields[1], fields[2], fields[3]})
        picked = true
        break
      end
    end
  end
  if not picked then break end
end
return out
"""

# ARGV: prefix, gid, job id, mode ('start' | 'finish' | 'withdraw'). 'start' and 'finish' act only
# for the job the marker names (a stale duplicate job changes nothing); 'withdraw' for any.
_LEAVE = """
local P, gid, job, mode, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local marker = P .. 'gen:' .. gid
local f = redis.call('HMGET', marker, 'user', 'provider', 'job', 'state')
local uid, prov, state = f[1], f[2], f[4]
if not uid then return false end
if mode ~= 'withdraw' and f[3] ~= job then return false end
if state == 'waiting' then
  if mode == 'start' then return state end  -- not handed out by the dispatcher: leave it in line
  local line = P .. 'line:' .. uid .. ':' .. prov
  redis.call('ZREM', line, gid)
  if redis.call('ZCARD', line) == 0 then redis.call('SREM', P .. 'lines:' .. uid, prov) end
  if redis.call('SCARD', P .. 'lines:' .. uid) == 0 then
    local pass = redis.call('ZSCORE', P .. 'pass', uid)
    if pass then
      redis.call('ZREM', P .. 'pass', uid)
      redis.call('HSET', P .. 'lastpass', uid, pass)
    end
  end
else
  redis.call('SREM', P .. 'inq:' .. uid, gid)
  if mode ~= 'start' then
    redis.call('SREM', P .. 'held:' .. uid, gid)
    -- Its user stays active for the dispatcher's grace after their last work ends (they may send more).
    if redis.call('SCARD', P .. 'held:' .. uid) == 0 then redis.call('ZADD', P .. 'active', now, uid) end
  end
end
local tag = redis.call('HGET', P .. 'tag', f[3])
if tag then
  redis.call('HDEL', P .. 'tag', f[3])
  -- The virtual time is the turn of the latest job to start: a newcomer's turn begins there.
  if mode == 'start' and tonumber(tag) > tonumber(redis.call('GET', P .. 'vt') or '0') then
    redis.call('SET', P .. 'vt', tag)
  end
end
if mode == 'start' then
  redis.call('HSET', marker, 'state', 'running')
else
  redis.call('SREM', P .. 'busy:' .. prov, gid)
  redis.call('DEL', marker)
end
return state
"""

# ARGV: prefix, gid, job id, provider. A fallback of another provider answers the running generation: its
# slot moves there (the marker names it, so the end frees it), unless that provider is at its cap (0). Only
# for the job the marker names; a generation holding no slot (not in the structure, or still in its line) may
# go anywhere (1).
_MOVE = """
local P, gid, job, to = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local marker = P .. 'gen:' .. gid
local f = redis.call('HMGET', marker, 'provider', 'job', 'state')
local from = f[1]
if not from or f[2] ~= job or f[3] == 'waiting' or from == to then return 1 end
local cap = tonumber(redis.call('HGET', P .. 'caps', to) or '')
if cap and redis.call('SCARD', P .. 'busy:' .. to) >= cap then return 0 end
redis.call('SREM', P .. 'busy:' .. from, gid)
redis.call('SADD', P .. 'busy:' .. to, gid)
redis.call('SADD', P .. 'providers', to)
redis.call('HSET', marker, 'provider', to)
return 1
"""

# The place of a waiting generation in the fair order: the jobs in RQ whose turn comes first, the
# user's own earlier work, and each other user's waiting work whose turn comes first.
_POSITION = """
local P, gid, rq_key = ARGV[1], ARGV[2], ARGV[3]
local marker = P .. 'gen:' .. gid
local f = redis.call('HMGET', marker, 'user', 'provider', 'job', 'state')
local uid, state = f[1], f[4]
if not uid then return {'none', false} end
if state == 'dispatched' then
  local index = redis.call('LPOS', rq_key, f[3])
  return {state, index}
end
if state ~= 'waiting' then return {state, false} end
local own = 0
for _, prov in ipairs(redis.call('SMEMBERS', P .. 'lines:' .. uid)) do
  own = own + redis.call('ZCOUNT', P .. 'line:' .. uid .. ':' .. prov, '-inf', '(' .. gid)
end
local ahead = own
-- Turns as the dispatcher counts them: never before the virtual time.
local vt = tonumber(redis.call('GET', P .. 'vt') or '0')
local my_pass = math.max(tonumber(redis.call('ZSCORE', P .. 'pass', uid) or '0'), vt)
local my_weight = tonumber(redis.call('HGET', P .. 'weight', uid) or '1')
local tag = my_pass + own / my_weight
-- Jobs in RQ whose turn is not later than ours (and any job queued there outside the fair order).
local queued = redis.call('LRANGE', rq_key, 0, -1)
if #queued > 0 then
  local tags = redis.call('HMGET', P .. 'tag', unpack(queued))
  for j = 1, #queued do
    if not tags[j] or tonumber(tags[j]) <= tag then ahead = ahead + 1 end
  end
end
local users = redis.call('ZRANGE', P .. 'pass', 0, -1, 'WITHSCORES')
for i = 1, #users, 2 do
  local other = users[i]
  if other ~= uid then
    local waiting = 0
    for _, prov in ipairs(redis.call('SMEMBERS', P .. 'lines:' .. other)) do
      waiting = waiting + redis.call('ZCARD', P .. 'line:' .. other .. ':' .. prov)
    end
    local weight = tonumber(redis.call('HGET', P .. 'weight', other) or '1')
    -- their items j = 0, 1, ... come at pass + j/weight; count those before our tag (ties: lower id string first)
    local x = (tag - math.max(tonumber(users[i + 1]), vt)) * weight
    local before
    if x < -1e-9 then
      before = 0
    else
      local whole = math.floor(x + 1e-9)
      if math.abs(x - whole) < 1e-9 then
        before = whole
        if other < uid then before = before + 1 end
      else
        before = math.ceil(x)
      end
    end
    ahead = ahead + math.min(waiting, before)
  end
end
return {state, ahead}
"""

_MEMBERS = """
local P = ARGV[1]
local out = {}
for _, uid in ipairs(redis.call('ZRANGE', P .. 'pass', 0, -1)) do
  for _, prov in ipairs(redis.call('SMEMBERS', P .. 'lines:' .. uid)) do
    for _, gid in ipairs(redis.call('ZRANGE', P .. 'line:' .. uid .. ':' .. prov, 0, -1)) do
      table.insert(out, gid)
    end
  end
end
for _, prov in ipairs(redis.call('SMEMBERS', P .. 'providers')) do
  for _, gid in ipairs(redis.call('SMEMBERS', P .. 'busy:' .. prov)) do table.insert(out, gid) end
end
return out
"""


@dataclass(frozen=True)
class Dispatched:
    generation_id: int
    job_id: str
    model_id: str
    user_id: int


@dataclass(frozen=True)
class Place:
    state: str  # "waiting", "dispatched", "running" or "none" (not in the fair structure)
    ahead: int | None  # generations that will start before this one (None when unknown)


class FairQueue:
    """The fair lines of one RQ queue (all keys share ``switchboard:fair:<queue>:``)."""

    def __init__(self, connection: redis.Redis, queue_name: str, rq_queue_key: str):
        self.connection = connection
        self.prefix = f"{KEY_PREFIX}:{queue_name}:"
        self.rq_queue_key = rq_queue_key

    def _run(self, script: str, *args):
        if script not in _scripts:  # a Script keeps its SHA1 and loads itself on first use on any client
            _scripts[script] = self.connection.register_script(script)
        return _scripts[script](args=[self.prefix, *args], client=self.connection)

    def add(self, generation_id: int, user_id: int, provider: str, job_id: str, model_id: str, weight: float) -> bool:
        """Put a generation at the end of its user's line; False if it is already in the structure."""
        return bool(self._run(_ADD, generation_id, user_id, provider, job_id, model_id, float(weight), time.time()))

    def set_caps(self, caps: dict[str, int]) -> None:
        """Provider -> most generations handed out or running at once (absent: unlimited)."""
        pipe = self.connection.pipeline()
        pipe.delete(f"{self.prefix}caps")
        # "=set" marks caps as given (an empty hash would not exist): see has_caps.
        pipe.hset(f"{self.prefix}caps", mapping={"=set": 1, **{p: int(n) for p, n in caps.items()}})
        pipe.execute()

    def has_caps(self) -> bool:
        """False after Redis lost its data (or before the first setting): the caps must be given again."""
        return bool(self.connection.exists(f"{self.prefix}caps"))

    def caps(self) -> dict[str, int]:
        raw = self.connection.hgetall(f"{self.prefix}caps")
        return {k.decode(): int(v) for k, v in raw.items() if k != b"=set"}

    def dispatch(
        self, depth: int, share: int = 0, limit: int = 50, grace: float = ACTIVE_GRACE_SECONDS
    ) -> list[Dispatched]:
        """Hand out the next generations in fair order: each one's RQ job (saved as deferred) is queued.

        ``share`` (0: none): while another user is active, at most this many (times the user's weight) of
        one user's generations are handed out or running at once; alone, a user may have every slot."""
        now = datetime.now(UTC)
        rows = self._run(
            _DISPATCH,
            max(1, depth),
            limit,
            now.timestamp(),
            Job.redis_job_namespace_prefix,
            self.rq_queue_key,
            Queue.redis_queues_keys,
            utcformat(now),
            max(0, share),
            grace,
        )
        return [Dispatched(int(g), j.decode(), m.decode(), int(u)) for g, j, m, u in rows]

    def started(self, generation_id: int, job_id: str) -> str | None:
        """The job for the generation began: it no longer counts against its user's depth."""
        return _text(self._run(_LEAVE, generation_id, job_id, "start", time.time()))

    def finished(self, generation_id: int, job_id: str) -> str | None:
        """The job ended: the generation leaves the structure and frees its provider's slot."""
        return _text(self._run(_LEAVE, generation_id, job_id, "finish", time.time()))

    def move_slot(self, generation_id: int, job_id: str, provider: str) -> bool:
        """A fallback of ``provider`` answers the generation: its provider slot moves there (the first one frees).
        False, and nothing changes, when ``provider`` is at its cap."""
        return bool(self._run(_MOVE, generation_id, job_id, provider))

    def withdraw(self, generation_id: int) -> str | None:
        """Take a generation out wherever it is (Stop, a refusal, a re-queue); returns the state it was in."""
        return _text(self._run(_LEAVE, generation_id, "", "withdraw", time.time()))

    def place(self, generation_id: int) -> Place:
        state, ahead = self._run(_POSITION, generation_id, self.rq_queue_key)
        return Place(state.decode(), None if ahead is None else int(ahead))

    def marker(self, generation_id: int) -> dict[str, str]:
        raw = self.connection.hgetall(f"{self.prefix}gen:{generation_id}")
        return {k.decode(): v.decode() for k, v in raw.items()}

    def members(self) -> set[int]:
        """Every generation in a line or holding a provider slot (for the recovery sweep's check)."""
        return {int(g) for g in self._run(_MEMBERS)}

    def summary(self) -> dict:
        """Waiting count per user and busy count per provider (the admin home)."""
        users = [u.decode() for u in self.connection.zrange(f"{self.prefix}pass", 0, -1)]
        waiting = {}
        for uid in users:
            providers = [p.decode() for p in self.connection.smembers(f"{self.prefix}lines:{uid}")]
            waiting[int(uid)] = sum(self.connection.zcard(f"{self.prefix}line:{uid}:{p}") for p in providers)
        busy = {
            p.decode(): self.connection.scard(f"{self.prefix}busy:{p.decode()}")
            for p in self.connection.smembers(f"{self.prefix}providers")
        }
        return {"waiting": waiting, "busy": busy}


def _text(value) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
