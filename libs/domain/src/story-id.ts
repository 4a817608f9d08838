/**
 * Identifies a story. Branded so that a story id cannot be confused with a decision or subtask id
 * (all plain strings on the wire).
 */
export type StoryId = string & { readonly __brand: "StoryId" };

// A story id is a NATS subject token (context.events.{story_id}.{event_type}): the same rule as the
// story_id field of every command request.
const storyIdPattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/**
 * Brands a string as a {@link StoryId}.
 *
 * Checks the id because it ends up as a NATS subject token, where a `.`, `*`, `>` or space would
 * silently address other stories. Request validation rejects such ids first; reaching this throw is a
 * programming error.
 *
 * @throws RangeError when `s` is not 1–64 letters, digits, `_` or `-` starting with a letter or digit.
 */
export function storyId(s: string): StoryId {
  if (!storyIdPattern.test(s)) {
    throw new RangeError(
      `invalid story id ${JSON.stringify(s)}: expected 1-64 letters, digits, '_' or '-', starting with a letter or digit`,
    );
  }
  return s as StoryId;
}
