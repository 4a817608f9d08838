import { create, type DescMessage, type Message, toBinary } from "@bufbuild/protobuf";
import { ContextEventType, currentSchemaVersion } from "@ctx/domain";
import {
  ContextEventSchema,
  DecisionAddedSchema,
  legacyV1,
  SubtaskStatus,
  SubtaskUpdatedSchema,
} from "@ctx/proto";
import { createUpcasterRegistry, drop, split } from "@ctx/upcasting";
import { describe, expect, it } from "vitest";
import { createEventUpcaster } from "../codec.ts";
import {
  currentEnvelope,
  decodeEvent,
  decodeStoredEvent,
  followsOn,
  UnreadableEventError,
  verifyChain,
} from "../index.ts";
import { envelopeAsWritten } from "../testing/index.ts";
import { contextUpcasters, legacyPayloadSchemas, subtaskStatusOfV1 } from "./context-upcasters.ts";

/** Where the test messages were stored: story s-1 (a copy without its subject). */
const inStory = { storyId: "s-1" };

const at = new Date("2026-01-02T03:04:05.000Z");

function bytesOf(
  eventType: string,
  schemaVersion: number,
  payloadSchema: DescMessage,
  payload: Message,
) {
  const envelope = envelopeAsWritten("s-1", 1, new Uint8Array(0), {
    eventType,
    schemaVersion,
    payloadSchema,
    payload,
    occurredAt: at,
  });
  return { envelope, bytes: toBinary(ContextEventSchema, envelope) };
}

const decisionV1 = (alternative: string) =>
  bytesOf(
    ContextEventType.DecisionAdded,
    1,
    legacyV1.DecisionAddedSchema,
    create(legacyV1.DecisionAddedSchema, {
      decisionId: "d-1",
      title: "Use NATS",
      rationale: "streams",
      affectsSubtaskIds: ["t-1"],
      alternative,
    }),
  );

const subtaskV1 = (status: string) =>
  bytesOf(
    ContextEventType.SubtaskUpdated,
    1,
    legacyV1.SubtaskUpdatedSchema,
    create(legacyV1.SubtaskUpdatedSchema, { subtaskId: "t-1", status }),
  );

describe("the shipped chains", () => {
  it("reach the current version of every type, and the legacy messages cover every old version", () => {
    for (const [type, version] of Object.entries(currentSchemaVersion)) {
      expect(contextUpcasters.isCurrent({ type, version })).toBe(true);
      for (let v = 1; v < version; v++) {
        expect(contextUpcasters.steps({ type, version: v }).length).toBe(version - v);
        expect(legacyPayloadSchemas[type]?.[v]).toBeDefined();
      }
    }
  });
});

describe("reading a DecisionAdded written with schema version 1", () => {
  it("given v1 bytes, when decoded as stored, then the payload is the legacy message", () => {
    const stored = decodeStoredEvent(decisionV1("Kafka").bytes, 7, inStory);
    expect(stored.schemaVersion).toBe(1);
    expect(stored.payload.$typeName).toBe("context.legacy.v1.DecisionAdded");
    expect(stored.payload).toMatchObject({ alternative: "Kafka", affectsSubtaskIds: ["t-1"] });
  });

  it("given v1 bytes, when decoded, then the event is a v2 DecisionAdded with the one alternative", () => {
    const [event, ...more] = decodeEvent(decisionV1("Kafka").bytes, 7, inStory);
    expect(more).toEqual([]);
    expect(event?.schemaVersion).toBe(2);
    expect(event?.eventType).toBe("DecisionAdded");
    expect(event?.data).toEqual({
      case: "decisionAdded",
      value: create(DecisionAddedSchema, {
        decisionId: "d-1",
        title: "Use NATS",
        rationale: "streams",
        madeBy: "",
        alternatives: ["Kafka"],
        affectsSubtaskIds: ["t-1"],
      }),
    });
  });

  it("given an empty v1 alternative, when decoded, then there are no alternatives", () => {
    const [event] = decodeEvent(decisionV1("  ").bytes, 7, inStory);
    expect(event?.data.case === "decisionAdded" && event.data.value.alternatives).toEqual([]);
  });

  it("given v1 bytes, then the stored envelope still verifies and answers show the current shape", () => {
    const { envelope, bytes } = decisionV1("Kafka");
    const [event] = decodeEvent(bytes, 7, inStory);
    expect(event?.envelope.schemaVersion).toBe(1);
    expect(verifyChain([event?.envelope ?? envelope])).toEqual({ intact: true, events: 1 });
    const shown = event && currentEnvelope(event);
    expect(shown?.schemaVersion).toBe(2);
    expect(shown?.payload).toEqual(event?.data);
    expect(Buffer.from(shown?.hash ?? [])).toEqual(Buffer.from(envelope.hash));
  });
});

describe("reading a SubtaskUpdated written with schema version 1", () => {
  it.each([
    ["todo", SubtaskStatus.TODO],
    [" In Progress ", SubtaskStatus.IN_PROGRESS],
    ["in_progress", SubtaskStatus.IN_PROGRESS],
    ["WIP", SubtaskStatus.IN_PROGRESS],
    ["on-hold", SubtaskStatus.BLOCKED],
    ["Done", SubtaskStatus.DONE],
    ["completed", SubtaskStatus.DONE],
  ])(
    "given status %j, when decoded, then the status is %s and there is no assignee",
    (text, status) => {
      const [event] = decodeEvent(subtaskV1(text).bytes, 3, inStory);
      expect(event?.schemaVersion).toBe(2);
      expect(event?.data).toEqual({
        case: "subtaskUpdated",
        value: create(SubtaskUpdatedSchema, { subtaskId: "t-1", status, assignee: "" }),
      });
    },
  );

  it("given a status word nobody taught the upcaster, when decoded, then it is unreadable, not guessed", () => {
    expect(() => subtaskStatusOfV1("maybe")).toThrow(/unknown v1 subtask status "maybe"/);
    expect(() => decodeEvent(subtaskV1("maybe").bytes, 3, inStory)).toThrow(UnreadableEventError);
    expect(() => decodeEvent(subtaskV1("maybe").bytes, 3, inStory)).toThrow(
      /stream message 3 of story s-1 cannot be read in its current shape: cannot upcast SubtaskUpdated v1/,
    );
  });
});

describe("events the chains do not know", () => {
  it("given a schema version newer than this release's, when decoded, then it is unreadable", () => {
    const { bytes } = bytesOf(
      ContextEventType.SubtaskUpdated,
      3,
      SubtaskUpdatedSchema,
      create(SubtaskUpdatedSchema, { subtaskId: "t-1", status: SubtaskStatus.DONE }),
    );
    expect(() => decodeEvent(bytes, 9, inStory)).toThrow(/newer than the current v2/);
  });

  it("given a current event, when decoded, then it passes through untouched", () => {
    const { envelope, bytes } = bytesOf(
      ContextEventType.SubtaskUpdated,
      2,
      SubtaskUpdatedSchema,
      create(SubtaskUpdatedSchema, {
        subtaskId: "t-1",
        status: SubtaskStatus.DONE,
        assignee: "ann",
      }),
    );
    const [event] = decodeEvent(bytes, 9, inStory);
    expect(event?.data).toEqual(envelope.payload);
    expect(event && currentEnvelope(event)).toBe(event?.envelope);
  });
});

describe("an upcaster that splits or drops (a registry other than the shipped one)", () => {
  // A hypothetical v3 world: SubtaskUpdated v2 splits into a status part and an assignee part, and
  // DecisionAdded v1 is dropped.
  const registry = createUpcasterRegistry({
    current: { ...currentSchemaVersion, SubtaskUpdated: 3 },
    upcasters: [
      drop({ type: "DecisionAdded", version: 1 }, "decisions of v1 are obsolete"),
      contextUpcasters.steps({ type: "SubtaskUpdated", version: 1 })[0] as never,
      split<{ subtaskId: string; status: SubtaskStatus; assignee: string }>(
        { type: "SubtaskUpdated", version: 2 },
        [{ type: "SubtaskUpdated", version: 3 }],
        (p) => [
          {
            type: "SubtaskUpdated",
            version: 3,
            payload: create(SubtaskUpdatedSchema, { ...p, assignee: "" }),
          },
          { type: "SubtaskUpdated", version: 3, payload: create(SubtaskUpdatedSchema, { ...p }) },
        ],
      ),
    ],
  });
  const upcaster = createEventUpcaster({ registry });

  it("given a split, then the parts share the stored version and are numbered", () => {
    const parts = upcaster.decode(subtaskV1("done").bytes, 4, inStory);
    expect(parts.map((p) => [p.version, p.part, p.schemaVersion])).toEqual([
      [1, 0, 3],
      [1, 1, 3],
    ]);
    expect(followsOn(0, parts[0] as never)).toBe(true);
    expect(followsOn(1, parts[1] as never)).toBe(true);
    expect(followsOn(0, parts[1] as never)).toBe(false);
  });

  it("given a drop, then one empty event keeps the version", () => {
    const [event, ...more] = upcaster.decode(decisionV1("x").bytes, 5, inStory);
    expect(more).toEqual([]);
    expect(event?.version).toBe(1);
    expect(event?.data).toEqual({ case: undefined });
  });
});
