import { create } from "@bufbuild/protobuf";
import {
  type ContextEventData,
  currentSchemaVersion,
  type DomainEvent,
  eventTypeOf,
  fold,
  type StoryId,
  storyId,
  streamVersion,
  toContextMessage,
} from "@ctx/domain";
import { type RecordedEvent, streamSequence } from "@ctx/event-store";
import { ContextEventSchema, ContextSchema, SubtaskStatus } from "@ctx/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isVersionConflictError } from "../errors.ts";
import type { Projection, ProjectionBatch } from "../projection.ts";

let sequence = 1;

/**
 * A recorded event as the runtime would hand it over (envelope fields filled in); an empty payload
 * (`{ case: undefined }`) stands for a stored event its upcaster drops.
 */
export function recorded<D extends RecordedEvent["data"]>(
  story: StoryId,
  version: number,
  data: D,
): RecordedEvent & { readonly data: D } {
  const occurredAt = new Date(Date.UTC(2026, 0, 1, 0, 0, version));
  const seq = sequence++;
  return {
    sequence: streamSequence(seq),
    storyId: story,
    version: streamVersion(version),
    eventId: `evt-${story}-${version}`,
    eventType: data.case === undefined ? "Dropped" : eventTypeOf(data),
    schemaVersion: data.case === undefined ? 1 : currentSchemaVersion[eventTypeOf(data)],
    occurredAt,
    data,
    envelope: create(ContextEventSchema, { storyId: story, version, payload: data }),
  };
}

const e = {
  created: (title: string): ContextEventData => ({
    case: "contextCreated",
    value: { $typeName: "context.v1.ContextCreated", title, description: `about ${title}` },
  }),
  subtask: (id: string, dependsOn: string[] = []): ContextEventData => ({
    case: "subtaskAdded",
    value: { $typeName: "context.v1.SubtaskAdded", subtaskId: id, title: `do ${id}`, dependsOn },
  }),
  update: (id: string, status: SubtaskStatus, assignee: string): ContextEventData => ({
    case: "subtaskUpdated",
    value: { $typeName: "context.v1.SubtaskUpdated", subtaskId: id, status, assignee },
  }),
  dependency: (id: string, on: string): ContextEventData => ({
    case: "subtaskDependencyAdded",
    value: {
      $typeName: "context.v1.SubtaskDependencyAdded",
      subtaskId: id,
      dependsOnSubtaskId: on,
    },
  }),
  decision: (id: string, affects: string[]): ContextEventData => ({
    case: "decisionAdded",
    value: {
      $typeName: "context.v1.DecisionAdded",
      decisionId: id,
      title: `decide ${id}`,
      rationale: "because",
      madeBy: "ana",
      alternatives: ["other"],
      affectsSubtaskIds: affects,
    },
  }),
  supersede: (id: string, by: string): ContextEventData => ({
    case: "decisionSuperseded",
    value: {
      $typeName: "context.v1.DecisionSuperseded",
      decisionId: id,
      supersededByDecisionId: by,
    },
  }),
  archived: (): ContextEventData => ({
    case: "contextArchived",
    value: { $typeName: "context.v1.ContextArchived", reason: "done" },
  }),
};

/** Every event type, in an order the domain accepts: a complete little story. */
export function sampleHistory(story: StoryId): RecordedEvent[] {
  const data = [
    e.created(`story ${story}`),
    e.subtask("a"),
    e.subtask("b", ["a"]),
    e.subtask("c"),
    e.dependency("c", "b"),
    e.decision("d1", ["a", "b"]),
    e.update("a", SubtaskStatus.IN_PROGRESS, "bo"),
    e.decision("d2", ["c"]),
    e.supersede("d1", "d2"),
    e.update("a", SubtaskStatus.DONE, "bo"),
  ];
  return data.map((d, i) => recorded(story, i + 1, d));
}

/** The model's view must equal the fold of the events: the one truth every read model answers to. */
export function expectedContext(story: StoryId, events: readonly DomainEvent[]) {
  return toContextMessage(fold(story, events));
}

let storyCounter = 0;
const newStory = (prefix: string) =>
  storyId(`${prefix}-${Date.now().toString(36)}-${(storyCounter++).toString(36)}`);

/**
 * The behaviour every Projection must have, as a vitest suite: run it from each implementation's
 * integration spec with a factory that returns a fresh, initialised projection.
 */
export function projectionContract(name: string, factory: () => Promise<Projection>): void {
  describe(`Projection contract: ${name}`, () => {
    let projection: Projection;
    // Each run works in its own generation numbers, so parallel files and reruns do not meet.
    const base = 1000 + Math.floor(Math.random() * 1_000_000) * 10;

    beforeAll(async () => {
      projection = await factory();
      await projection.init();
      await projection.init();
    });
    afterAll(async () => {
      for (const g of [base, base + 1, base + 2]) await projection.dropGeneration(g);
      await projection.close();
    });

    const batch = (
      generation: number,
      checkpoint: number,
      stories: ProjectionBatch["stories"],
    ) => ({
      generation,
      partition: 3,
      checkpoint,
      stories,
    });

    it("applies a story's events and then equals their fold", async () => {
      const story = newStory("fold");
      const events = sampleHistory(story);
      await projection.apply(
        batch(base, 10, [
          { storyId: story, expectedVersion: streamVersion(0), events: events.slice(0, 4) },
        ]),
      );
      await projection.apply(
        batch(base, 20, [
          { storyId: story, expectedVersion: streamVersion(4), events: events.slice(4) },
        ]),
      );
      const read = await projection.readContext(base, story);
      expect(read?.version).toBe(10);
      expect(read?.stale).toBe(false);
      const expected = expectedContext(story, events);
      expect(create(ContextSchema, read?.context)).toEqual(expected);
      const positions = await projection.positions(base, [story, newStory("absent")]);
      expect([...positions.values()]).toEqual([
        { version: 10, stale: false },
        { version: 0, stale: false },
      ]);
      expect(await projection.checkpoint(base, 3)).toBe(20);
      expect(await projection.checkpoint(base, 4)).toBe(0);
    });

    it("applies the parts of a split stored event and a dropped one, reaching the stored version", async () => {
      // What upcasting can hand a model: version 2 split into two parts, version 3 dropped.
      const story = newStory("upcast");
      const events: RecordedEvent[] = [
        recorded(story, 1, e.created("split and dropped")),
        { ...recorded(story, 2, e.subtask("a")), part: 0 },
        { ...recorded(story, 2, e.update("a", SubtaskStatus.BLOCKED, "cy")), part: 1 },
        recorded(story, 3, { case: undefined }),
        recorded(story, 4, e.subtask("b", ["a"])),
      ];
      await projection.apply(
        batch(base, 30, [
          { storyId: story, expectedVersion: streamVersion(0), events: events.slice(0, 2) },
        ]),
      );
      await projection.apply(
        batch(base, 31, [
          { storyId: story, expectedVersion: streamVersion(2), events: events.slice(2) },
        ]),
      );
      const read = await projection.readContext(base, story);
      expect(read?.version).toBe(4);
      expect(create(ContextSchema, read?.context)).toEqual(expectedContext(story, events));
    });

    it("applies many stories in one batch", async () => {
      const stories = Array.from({ length: 25 }, () => newStory("many"));
      await projection.apply(
        batch(
          base,
          30,
          stories.map((s) => ({
            storyId: s,
            expectedVersion: streamVersion(0),
            events: sampleHistory(s),
          })),
        ),
      );
      for (const s of stories) {
        expect((await projection.readContext(base, s))?.context).toEqual(
          expectedContext(s, sampleHistory(s)),
        );
      }
    });

    it("refuses a write whose version guard does not hold, and leaves the story as it was", async () => {
      const story = newStory("guard");
      const events = sampleHistory(story);
      await projection.apply(
        batch(base, 40, [
          { storyId: story, expectedVersion: streamVersion(0), events: events.slice(0, 3) },
        ]),
      );
      const again = projection.apply(
        batch(base, 41, [
          { storyId: story, expectedVersion: streamVersion(1), events: events.slice(1, 5) },
        ]),
      );
      await expect(again).rejects.toSatisfy(isVersionConflictError);
      expect((await projection.readContext(base, story))?.version).toBe(3);
      expect((await projection.readContext(base, story))?.context).toEqual(
        expectedContext(story, events.slice(0, 3)),
      );
    });

    it("marks a story stale, and a story replacement clears it", async () => {
      const story = newStory("stale");
      const events = sampleHistory(story);
      await projection.apply(
        batch(base, 50, [
          { storyId: story, expectedVersion: streamVersion(0), events: events.slice(0, 2) },
        ]),
      );
      await projection.markStale(base, story, "poison event at version 3");
      expect((await projection.positions(base, [story])).get(story)).toEqual({
        version: 2,
        stale: true,
      });
      await projection.replaceStory(base, fold(story, events));
      expect((await projection.positions(base, [story])).get(story)).toEqual({
        version: 10,
        stale: false,
      });
      expect((await projection.readContext(base, story))?.context).toEqual(
        expectedContext(story, events),
      );
    });

    it("keeps generations apart, switches the active one, and drops one", async () => {
      const story = newStory("gen");
      const events = sampleHistory(story);
      await projection.apply(
        batch(base + 1, 60, [{ storyId: story, expectedVersion: streamVersion(0), events }]),
      );
      expect(await projection.readContext(base + 2, story)).toBeUndefined();
      expect((await projection.readContext(base + 1, story))?.version).toBe(10);
      expect(await projection.generations()).toContain(base + 1);

      const before = await projection.activeGeneration();
      await projection.activateGeneration(base + 1);
      expect(await projection.activeGeneration()).toBe(base + 1);
      await projection.activateGeneration(before);

      await projection.dropGeneration(base + 1);
      expect(await projection.readContext(base + 1, story)).toBeUndefined();
      expect(await projection.checkpoint(base + 1, 3)).toBe(0);
      expect(await projection.generations()).not.toContain(base + 1);
    });

    it("never takes a story back in time with a replacement", async () => {
      const story = newStory("back");
      const events = sampleHistory(story);
      await projection.apply(
        batch(base, 70, [{ storyId: story, expectedVersion: streamVersion(0), events }]),
      );
      await projection.replaceStory(base, fold(story, events.slice(0, 4)));
      const read = await projection.readContext(base, story);
      expect(read?.version).toBe(10);
      expect(read?.context).toEqual(expectedContext(story, events));
    });

    it("applies an archived story and a replacement of a story it never had", async () => {
      const story = newStory("archived");
      const events = [...sampleHistory(story), recorded(story, 11, e.archived())];
      await projection.replaceStory(base, fold(story, events));
      const read = await projection.readContext(base, story);
      expect(read?.version).toBe(11);
      expect(read?.context).toEqual(expectedContext(story, events));
    });
  });
}
