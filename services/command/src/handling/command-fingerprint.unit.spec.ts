import { createHash } from "node:crypto";
import { type Command, decideAll, initialState, storyId } from "@ctx/domain";
import { SubtaskStatus } from "@ctx/proto";
import { describe, expect, it } from "vitest";
import {
  canonicalJson,
  commandFingerprint,
  commandsOf,
  fingerprintBytes,
  fingerprintFromEvents,
  fingerprintOf,
  isComparable,
} from "./command-fingerprint.ts";

const decision = (over: Partial<Extract<Command, { type: "AddDecision" }>> = {}): Command => ({
  type: "AddDecision",
  decisionId: "d",
  title: "T",
  rationale: "R",
  madeBy: "ana",
  alternatives: ["x", "y"],
  affectsSubtaskIds: [],
  ...over,
});

describe("commandFingerprint", () => {
  it("is a format byte and 8 bytes of a SHA-256, the same for the same commands", () => {
    const fingerprint = commandFingerprint([decision()]);
    expect(fingerprint).toHaveLength(9);
    expect(fingerprint.charCodeAt(0)).toBe(2);
    expect(isComparable(fingerprint)).toBe(true);
    expect(commandFingerprint([decision()])).toBe(fingerprint);
    // Field order in the object does not count: the canonical form fixes it.
    const reordered = { ...decision(), title: "T", type: "AddDecision" } as Command;
    expect(commandFingerprint([reordered])).toBe(fingerprint);
  });

  it("differs for any other content, order or number of commands", () => {
    const base = commandFingerprint([decision()]);
    const others = [
      [decision({ title: "U" })],
      [decision({ alternatives: ["y", "x"] })],
      [decision({ alternatives: ["x,y"] })],
      [decision({ rationale: "R", madeBy: "" }), decision()],
      [decision(), decision()],
      [{ type: "ArchiveContext", reason: "R" } as Command],
    ].map((commands) => commandFingerprint(commands));
    expect(new Set([base, ...others]).size).toBe(others.length + 1);
  });

  it("takes an UNSPECIFIED status for no status, and tells an unset assignee from an empty one", () => {
    const update = (over: object): Command => ({ type: "UpdateSubtask", subtaskId: "s", ...over });
    expect(commandFingerprint([update({ status: SubtaskStatus.UNSPECIFIED, assignee: "a" })])).toBe(
      commandFingerprint([update({ assignee: "a" })]),
    );
    expect(commandFingerprint([update({ status: SubtaskStatus.DONE })])).not.toBe(
      commandFingerprint([update({ status: SubtaskStatus.DONE, assignee: "" })]),
    );
  });

  it("round-trips through the bytes an envelope stores", () => {
    const fingerprint = commandFingerprint([decision({ title: "日本🙂" })]);
    const bytes = fingerprintBytes(fingerprint);
    expect(bytes).toHaveLength(9);
    expect(fingerprintOf(bytes)).toBe(fingerprint);
    expect(fingerprintOf(new Uint8Array(0))).toBe("");
    expect(isComparable("")).toBe(false);
    expect(isComparable(fingerprintOf(new Uint8Array([3, 1, 2])))).toBe(false);
  });

  it("reads a format 1 fingerprint (the whole SHA-256, stored by earlier releases) as format 2", () => {
    const commands = [decision({ title: "older" })];
    const format1 = new Uint8Array([
      1,
      ...createHash("sha256").update(canonicalJson(commands)).digest(),
    ]);
    expect(fingerprintOf(format1)).toBe(commandFingerprint(commands));
    expect(isComparable(fingerprintOf(format1))).toBe(true);
  });

  it("reads every byte value, also from a view into a larger buffer (as decoded envelopes are)", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const framed = new Uint8Array(300);
    framed.set(all, 7);
    const view = framed.subarray(7, 7 + 256);
    expect(fingerprintOf(view)).toBe(String.fromCharCode(...all));
    expect(fingerprintBytes(fingerprintOf(view))).toEqual(all);
  });
});

describe("commandsOf", () => {
  // Given a request of every kind of command, each giving every field its event keeps...
  const full: Command[] = [
    { type: "CreateContext", title: "Story", description: "What it is" },
    { type: "AddSubtask", subtaskId: "a", title: "First", dependsOn: [] },
    { type: "AddSubtask", subtaskId: "b", title: "Second", dependsOn: ["a"] },
    { type: "AddSubtask", subtaskId: "c", title: "Third", dependsOn: [] },
    decision({ decisionId: "d1", affectsSubtaskIds: ["a"] }),
    decision({ decisionId: "d2", alternatives: [] }),
    { type: "SupersedeDecision", decisionId: "d1", supersededByDecisionId: "d2" },
    { type: "AddSubtaskDependency", subtaskId: "c", dependsOnSubtaskId: "b" },
    { type: "UpdateSubtask", subtaskId: "a", status: SubtaskStatus.IN_PROGRESS, assignee: "ana" },
    { type: "ArchiveContext", reason: "done" },
  ];

  it("gives back the request from the events it decided into, and so its fingerprint", () => {
    // ...when it is decided...
    const events = decideAll(full, initialState(storyId("s-1")));
    // ...then the events give the request back: same canonical JSON, same fingerprint.
    expect(canonicalJson(commandsOf(events) ?? [])).toBe(canonicalJson(full));
    expect(fingerprintFromEvents(events)).toBe(commandFingerprint(full));
  });

  it("gives something else when the request said less than its events (the handler then stores the fingerprint)", () => {
    // An UpdateSubtask naming only the status: its event carries the assignee as well.
    const partial: Command = {
      type: "UpdateSubtask",
      subtaskId: "a",
      status: SubtaskStatus.BLOCKED,
    };
    const events = decideAll([...full.slice(0, 2), partial], initialState(storyId("s-1")));
    const derived = commandsOf(events.slice(2));
    expect(derived).toHaveLength(1);
    expect(canonicalJson(derived ?? [])).not.toBe(canonicalJson([partial]));
  });

  it("gives nothing for events no command makes", () => {
    expect(commandsOf([{ case: undefined }])).toBeUndefined();
    expect(fingerprintFromEvents([{ case: undefined }])).toBe("");
    expect(fingerprintFromEvents([])).toBe("");
  });
});
