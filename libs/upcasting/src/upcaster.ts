/** Which schema an event is in: its type name and the version of that type's schema. */
export interface EventShape {
  readonly type: string;
  readonly version: number;
}

/** An event's payload with its shape; `P` is whatever the payload decodes to (e.g. a message). */
export interface VersionedEvent<P = unknown> extends EventShape {
  readonly payload: P;
}

/**
 * One step of a chain: takes events of exactly one (type, version) to the next shape(s). Pure and
 * deterministic: the same payload always gives the same events, with no I/O and no clock. `to`
 * declares every shape the step may yield (validated at start-up; yielding another one is an
 * error); an empty `to` is an explicit drop.
 */
export interface Upcaster {
  readonly from: EventShape;
  readonly to: readonly EventShape[];
  /** What the step does, for error messages and `ctx events upcast --dry-run`. */
  readonly description: string;
  upcast(payload: unknown): readonly VersionedEvent[];
}

/**
 * A field-level change within one type: version n to n + 1.
 * @example transform<OldDecision, Decision>("DecisionAdded", 1, (d) => ({ ...d, alternatives: [d.alternative] }))
 */
export function transform<A, B>(
  type: string,
  fromVersion: number,
  fn: (payload: A) => B,
  description = "transform",
): Upcaster {
  const to = { type, version: fromVersion + 1 };
  return {
    from: { type, version: fromVersion },
    to: [to],
    description,
    upcast: (payload) => [{ ...to, payload: fn(payload as A) }],
  };
}

/** A new name (and possibly version) for an event type, with an optional change of payload. */
export function rename<A, B = A>(
  from: EventShape,
  to: EventShape,
  fn: (payload: A) => B = (payload) => payload as unknown as B,
): Upcaster {
  return {
    from,
    to: [to],
    description: `rename to ${to.type}`,
    upcast: (payload) => [{ type: to.type, version: to.version, payload: fn(payload as A) }],
  };
}

/**
 * One event becomes several (or, for some payloads, none), of any of the declared shapes; their
 * order is the order they are applied in.
 */
export function split<A>(
  from: EventShape,
  to: readonly EventShape[],
  fn: (payload: A) => readonly VersionedEvent[],
): Upcaster {
  return {
    from,
    to,
    description: `split into ${to.map((s) => `${s.type} v${s.version}`).join(", ")}`,
    upcast: (payload) => fn(payload as A),
  };
}

/** Events of this shape are no longer part of any reader's view; `reason` says why. */
export function drop(from: EventShape, reason: string): Upcaster {
  return { from, to: [], description: `drop: ${reason}`, upcast: () => [] };
}
