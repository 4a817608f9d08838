import { valkeyScript } from "./valkey-script.ts";

/**
 * Writes one story, atomically: its hash (version, context, updated_at), its by-update score and
 * the moves of its subtasks between status sets. With an expected version, only if the stored
 * version (absent: 0) is that one, so the moves apply to the sets of the state they were computed
 * from; without (a replacement), unless the stored version is newer (a replacement never takes a
 * story back in time, whatever races it): the story's status sets are emptied first, and the stale
 * flag is cleared. Returns {1, new version} when written, {0, stored version} when not.
 *
 * KEYS: story hash, by-update zset, then (when there are moves or for a replacement) one status set
 *       per subtask status name.
 * ARGV: expected version ('' for a replacement), version, context, updated_at ms ('' for none),
 *       story id, then per moved subtask: its id, the number of the status set it leaves and of
 *       the one it joins (1 for the first status set, 0 for none).
 */
export const writeStoryScript = valkeyScript(
  "write-story",
  `
local story = KEYS[1]
local stored = redis.call('HGET', story, 'version') or '0'
local replace = ARGV[1] == ''
if not replace and tonumber(stored) ~= tonumber(ARGV[1]) then
  return {0, stored}
end
if replace and tonumber(stored) > tonumber(ARGV[2]) then
  return {0, stored}
end
if ARGV[4] == '' then
  redis.call('HSET', story, 'version', ARGV[2], 'context', ARGV[3])
  redis.call('HDEL', story, 'updated_at')
  redis.call('ZREM', KEYS[2], ARGV[5])
else
  redis.call('HSET', story, 'version', ARGV[2], 'context', ARGV[3], 'updated_at', ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
end
if replace then
  redis.call('HDEL', story, 'stale', 'stale_reason')
  redis.call('DEL', unpack(KEYS, 3))
end
for a = 6, #ARGV, 3 do
  local from, to = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if from > 0 then redis.call('SREM', KEYS[2 + from], ARGV[a]) end
  if to > 0 then redis.call('SADD', KEYS[2 + to], ARGV[a]) end
end
return {1, ARGV[2]}
`,
);

/**
 * Records the generation as one that has data, and stores a partition's checkpoint, only ever
 * raising it, and only when every story of the batch is at least at the version the batch brought
 * it to: a checkpoint never claims an event the model does not hold, whatever happened to the story
 * writes before it. Returns 1 when the stories were there (the checkpoint is stored or was higher
 * already), 0 when not.
 *
 * KEYS: checkpoint hash, generations set, the batch's story hashes.
 * ARGV: partition, checkpoint, generation, then the target version of each story hash.
 */
export const checkpointScript = valkeyScript(
  "checkpoint",
  `
redis.call('SADD', KEYS[2], ARGV[3])
for i = 3, #KEYS do
  if (tonumber(redis.call('HGET', KEYS[i], 'version')) or 0) < tonumber(ARGV[i + 1]) then
    return 0
  end
end
local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0
if tonumber(ARGV[2]) > stored then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
`,
);

/**
 * Runs one read command on a key of the active generation, reading the pointer in the same atomic
 * step, so a reader never mixes two generations. Returns {generation, reply}.
 *
 * The key is built on the server from the pointer, so it is not declared in KEYS: fine on a
 * standalone server or its replicas, not on a cluster.
 *
 * KEYS: the active-generation pointer.
 * ARGV: generation stem (`{prefix}:g`), key suffix, default generation, command, its arguments.
 *
 * Read-only (EVALSHA_RO): the command it is given can never be a write.
 */
export const readActiveScript = valkeyScript(
  "read-active",
  `
local generation = redis.call('GET', KEYS[1]) or ARGV[3]
local key = ARGV[1] .. generation .. ARGV[2]
return {generation, redis.call(ARGV[4], key, unpack(ARGV, 5))}
`,
  { readOnly: true },
);

export const allScripts = [writeStoryScript, checkpointScript, readActiveScript] as const;
