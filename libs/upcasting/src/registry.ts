import { describeShape as show, UpcastError, UpcasterChainError } from "./errors.ts";
import type { EventShape, Upcaster, VersionedEvent } from "./upcaster.ts";

export interface UpcasterRegistryOptions {
  /** The version every event type is written with today; readers see only these shapes. */
  readonly current: Readonly<Record<string, number>>;
  readonly upcasters: readonly Upcaster[];
  /**
   * The first version of a type, when it is not 1 (a type introduced by a rename or a split never
   * had the earlier versions). Every version from it up to the current one needs a step.
   */
  readonly firstVersion?: Readonly<Record<string, number>>;
}

/**
 * The upcasters of an application, checked as a whole: built once at start-up, it either holds
 * sound chains (every stored version reaches the current one, no gaps, no cycles) or throws an
 * UpcasterChainError that names each missing or conflicting step.
 */
export interface UpcasterRegistry {
  /** The current version of each type. */
  readonly current: ReadonlyMap<string, number>;
  /** Whether events of this shape are already current (readers use them as they are). */
  isCurrent(shape: EventShape): boolean;
  /**
   * Brings an event to its current shape: itself when current, else the events its chain yields
   * (one for a transform or rename, several for a split, none for a drop), in order.
   * @throws UpcastError when the shape has no step and is not current, or a step refuses it.
   */
  upcast<P = unknown>(event: VersionedEvent): readonly VersionedEvent<P>[];
  /** The steps an event of this shape goes through, first one first (empty when current). */
  steps(shape: EventShape): readonly Upcaster[];
  /**
   * Checks shapes found in a stream (e.g. by `ctx events stats`) against the chains.
   * @throws UpcasterChainError naming every shape that cannot reach a current one.
   */
  checkStored(shapes: Iterable<EventShape>): void;
}

const key = (s: EventShape) => `${s.type}\u0000${s.version}`;

/** @throws UpcasterChainError when the chains are not sound (the message names each problem). */
export function createUpcasterRegistry(options: UpcasterRegistryOptions): UpcasterRegistry {
  const current = new Map(Object.entries(options.current));
  const byFrom = new Map<string, Upcaster>();
  const problems: string[] = [];
  const isCurrent = (s: EventShape) => current.get(s.type) === s.version;

  for (const [type, version] of current) {
    if (!isVersion(version))
      problems.push(`${type}: current version ${version} is not a positive integer`);
  }
  for (const step of options.upcasters) {
    const at = `upcaster from ${show(step.from)}`;
    if (!isVersion(step.from.version)) problems.push(`${at}: versions are positive integers`);
    const twin = byFrom.get(key(step.from));
    if (twin) {
      problems.push(
        `two upcasters read ${show(step.from)} (${twin.description}; ${step.description})`,
      );
      continue;
    }
    byFrom.set(key(step.from), step);
    const now = current.get(step.from.type);
    if (now !== undefined && step.from.version >= now) {
      problems.push(
        `${at}: ${step.from.type} is current at v${now}; current events are never upcast`,
      );
    }
    for (const out of step.to) {
      const outNow = current.get(out.type);
      if (!isVersion(out.version))
        problems.push(`${at}: yields ${show(out)}, not a positive version`);
      else if (outNow !== undefined && out.version > outNow) {
        problems.push(`${at}: yields ${show(out)}, beyond the current v${outNow}`);
      }
    }
  }
  // Every version of a current type below the current one is in stored streams: each needs a step.
  for (const [type, version] of current) {
    const first = options.firstVersion?.[type] ?? 1;
    for (let v = first; v < version; v++) {
      if (!byFrom.has(key({ type, version: v }))) {
        problems.push(
          `missing step: no upcaster from ${type} v${v} (${type} is written as v${version}; stored v${v} events could not be read)`,
        );
      }
    }
  }
  // What a step yields must be current or go on through another step.
  for (const step of byFrom.values()) {
    for (const out of step.to) {
      // (Another version of a current type without a step is reported above already.)
      const outNow = current.get(out.type);
      const reported = outNow !== undefined && out.version !== outNow;
      if (!isCurrent(out) && !byFrom.has(key(out)) && !reported) {
        problems.push(
          `missing step: ${show(out)}, yielded by the upcaster from ${show(step.from)}, has no upcaster and is not current`,
        );
      }
    }
  }
  problems.push(...cycles(byFrom));
  if (problems.length > 0) throw new UpcasterChainError(problems);

  // Compiled chains, per shape: the steps are fixed now, so each shape's route is found once.
  const routes = new Map<string, readonly Upcaster[]>();
  const route = (s: EventShape): readonly Upcaster[] => {
    const k = key(s);
    let found = routes.get(k);
    if (!found) {
      const steps: Upcaster[] = [];
      for (let at = byFrom.get(k); at !== undefined; ) {
        steps.push(at);
        const [only] = at.to;
        at = at.to.length === 1 && only ? byFrom.get(key(only)) : undefined;
      }
      found = steps;
      routes.set(k, found);
    }
    return found;
  };

  // Steps by type, then version: the lookup a replay does per old event, without building keys.
  const stepsByType = new Map<string, Map<number, Upcaster>>();
  for (const step of byFrom.values()) {
    const versions = stepsByType.get(step.from.type) ?? new Map<number, Upcaster>();
    versions.set(step.from.version, step);
    stepsByType.set(step.from.type, versions);
  }

  function upcastOne(event: VersionedEvent, out: VersionedEvent[]): void {
    if (current.get(event.type) === event.version) {
      out.push(event);
      return;
    }
    const step = stepsByType.get(event.type)?.get(event.version);
    if (!step) {
      const now = current.get(event.type);
      throw new UpcastError(
        event,
        now === undefined
          ? "the type is not current and no upcaster reads it"
          : event.version > now
            ? `newer than the current v${now} (written by a newer release?)`
            : "no upcaster reads it",
      );
    }
    let yielded: readonly VersionedEvent[];
    try {
      yielded = step.upcast(event.payload);
    } catch (e) {
      throw new UpcastError(event, `${step.description} failed: ${(e as Error).message}`, {
        cause: e,
      });
    }
    for (const next of yielded) {
      if (!declares(step, next)) {
        throw new UpcastError(
          event,
          `${step.description} yielded ${show(next)}, which it does not declare`,
        );
      }
      upcastOne(next, out);
    }
  }

  return {
    current,
    isCurrent,
    upcast<P>(event: VersionedEvent): readonly VersionedEvent<P>[] {
      if (current.get(event.type) === event.version) return [event as VersionedEvent<P>];
      const out: VersionedEvent[] = [];
      upcastOne(event, out);
      return out as VersionedEvent<P>[];
    },
    steps: route,
    checkStored(shapes) {
      const bad: string[] = [];
      const seen = new Set<string>();
      for (const s of shapes) {
        const k = key(s);
        if (seen.has(k)) continue;
        seen.add(k);
        if (!isCurrent(s) && !byFrom.has(k)) {
          bad.push(`stored ${show(s)} has no upcaster and is not current`);
        }
      }
      if (bad.length > 0) throw new UpcasterChainError(bad);
    },
  };
}

function declares(step: Upcaster, shape: EventShape): boolean {
  for (const s of step.to) if (s.type === shape.type && s.version === shape.version) return true;
  return false;
}

function isVersion(n: number): boolean {
  return Number.isInteger(n) && n >= 1;
}

/** Each cycle of the step graph, as "A v1 → B v1 → A v1". */
function cycles(byFrom: ReadonlyMap<string, Upcaster>): string[] {
  const found: string[] = [];
  const state = new Map<string, "open" | "done">();
  const path: EventShape[] = [];
  const visit = (s: EventShape) => {
    const k = key(s);
    const mark = state.get(k);
    if (mark === "done") return;
    if (mark === "open") {
      const start = path.findIndex((p) => key(p) === k);
      found.push(`cycle: ${[...path.slice(start), s].map(show).join(" → ")}`);
      return;
    }
    const step = byFrom.get(k);
    if (!step) return;
    state.set(k, "open");
    path.push(s);
    for (const out of step.to) visit(out);
    path.pop();
    state.set(k, "done");
  };
  for (const step of byFrom.values()) visit(step.from);
  return found;
}
