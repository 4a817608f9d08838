/** An event's place: in the stream, and in its story. */
interface Placed {
  readonly sequence: number;
  readonly version: number;
}

/**
 * A story's events from its subjects' events, each part in stream order: merged by stream sequence,
 * or undefined when the result is not gapless from version `first` (a part is missing events, e.g.
 * a subject that got its first event after the subjects were listed).
 */
export function mergeSubjects<E extends Placed>(
  parts: readonly (readonly E[])[],
  first = 1,
): E[] | undefined {
  const all = parts.flat();
  if (parts.length > 1) all.sort((a, b) => a.sequence - b.sequence);
  for (let i = 0; i < all.length; i++) {
    if ((all[i] as E).version !== first + i) return undefined;
  }
  return all;
}
