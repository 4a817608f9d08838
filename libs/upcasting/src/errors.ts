import type { EventShape } from "./upcaster.ts";

const shape = (s: EventShape) => `${s.type} v${s.version}`;

/** Base of every error of this library. */
export class UpcastingError extends Error {
  override name = "UpcastingError";
}

/**
 * The registry is not a sound set of chains: a stored version cannot reach the current one, two
 * steps read the same version, steps form a cycle, or a step reads or writes a version the current
 * schema does not have. Thrown when the registry is built, so a service never starts with it.
 */
export class UpcasterChainError extends UpcastingError {
  override name = "UpcasterChainError";
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid upcaster chains:\n  - ${problems.join("\n  - ")}`);
    this.problems = problems;
  }
}

/**
 * One event cannot be brought to its current shape: its (type, version) has no step and is not
 * current (e.g. written by a newer release), or a step refused its payload. A projector parks such
 * an event; a query answers with an error rather than a misread.
 */
export class UpcastError extends UpcastingError {
  override name = "UpcastError";
  readonly event: EventShape;

  constructor(event: EventShape, reason: string, options?: ErrorOptions) {
    super(`cannot upcast ${shape(event)}: ${reason}`, options);
    this.event = { type: event.type, version: event.version };
  }
}

export const isUpcastError = (e: unknown): e is UpcastError => e instanceof UpcastError;
export const isUpcasterChainError = (e: unknown): e is UpcasterChainError =>
  e instanceof UpcasterChainError;

export { shape as describeShape };
