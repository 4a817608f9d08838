import { create, toJson } from "@bufbuild/protobuf";
import { ContextEventSchema } from "@ctx/proto";
import { expect } from "vitest";
import type { ContextEventData, DomainEvent } from "../context-event.ts";
import { domainEvents } from "./event-data.ts";

/** The three functions of a decider, as `DeciderSpec.for` takes them. */
export interface Decider<C, S> {
  readonly decide: (command: C, state: S) => readonly ContextEventData[];
  readonly evolve: (state: S, event: DomainEvent) => S;
  readonly initialState: () => S;
}

/** A decider spec before `when`: the history so far. */
export interface DeciderSpecGiven<C> {
  /** The story's history: versions and times are assigned in order, from 1. */
  given(events: readonly ContextEventData[]): DeciderSpecWhen<C>;
  /** Shorthand for `given([])`. */
  when(command: C): DeciderSpecThen;
}

export interface DeciderSpecWhen<C> {
  when(command: C): DeciderSpecThen;
}

export interface DeciderSpecThen {
  /** Asserts the events, compared as proto JSON so a failure shows a readable field-by-field diff. */
  then(expected: readonly ContextEventData[]): void;
  /** Asserts that the command is accepted and changes nothing. */
  thenNothing(): void;
  /**
   * Asserts that `decide` throws an instance of `errorType` whose message matches `message`, and
   * returns the error for checks of its fields.
   */
  thenThrows<E extends Error>(errorType: abstract new (...args: never[]) => E, message?: RegExp): E;
}

/**
 * Given/when/then specs for a decider: the history is folded with the decider's own `evolve`, so a
 * spec also proves that evolve keeps what decide needs.
 *
 * ```ts
 * DeciderSpec.for({ decide, evolve, initialState: () => initialState(storyId("s-1")) })
 *   .given([eventData.contextCreated({ title: "T" })])
 *   .when({ type: "ArchiveContext", reason: "done" })
 *   .then([eventData.contextArchived({ reason: "done" })]);
 * ```
 */
export const DeciderSpec = {
  for<C, S>(decider: Decider<C, S>): DeciderSpecGiven<C> {
    const given = (events: readonly ContextEventData[]): DeciderSpecWhen<C> => ({
      when: (command) => outcome(() => decider.decide(command, history(decider, events))),
    });
    return { given, when: (command) => given([]).when(command) };
  },
};

function history<C, S>(decider: Decider<C, S>, events: readonly ContextEventData[]): S {
  let state = decider.initialState();
  for (const event of domainEvents(events)) {
    state = decider.evolve(state, event);
  }
  return state;
}

function outcome(decide: () => readonly ContextEventData[]): DeciderSpecThen {
  return {
    // biome-ignore lint/suspicious/noThenProperty: given/when/then is the house vocabulary (STYLE.md); a spec is never awaited.
    then(expected) {
      expect(decide().map(readable)).toEqual(expected.map(readable));
    },
    thenNothing() {
      expect(decide().map(readable)).toEqual([]);
    },
    thenThrows<E extends Error>(
      errorType: abstract new (...args: never[]) => E,
      message?: RegExp,
    ): E {
      let produced: readonly ContextEventData[];
      try {
        produced = decide();
      } catch (e) {
        expect(e).toBeInstanceOf(errorType);
        if (message !== undefined) {
          expect((e as E).message).toMatch(message);
        }
        return e as E;
      }
      return expect.fail(
        `expected ${errorType.name} to be thrown, but decide returned ${JSON.stringify(produced.map(readable), null, 2)}`,
      );
    },
  };
}

// `{ decisionAdded: { decisionId: "d1", … } }`: the payload as proto JSON with every field shown, so
// proto3 defaults compare equal to unset fields and a failing spec diffs field by field.
function readable(data: ContextEventData): unknown {
  const envelope = toJson(ContextEventSchema, create(ContextEventSchema, { payload: data }), {
    alwaysEmitImplicit: true,
  }) as Record<string, unknown>;
  return { [data.case]: envelope[data.case] };
}
