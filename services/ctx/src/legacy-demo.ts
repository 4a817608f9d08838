import { create, type DescMessage, type Message } from "@bufbuild/protobuf";
import { storyId } from "@ctx/domain";
import { createEventStore } from "@ctx/event-store";
import { appendAsWritten, type WrittenEvent } from "@ctx/event-store/testing";
import {
  ContextCreatedSchema,
  DecisionAddedSchema,
  legacyV1,
  SubtaskAddedSchema,
  SubtaskStatus,
} from "@ctx/proto";
import { withCtxEnv } from "./ctx-env.ts";
import type { LegacyDemo } from "./demo.ts";

/**
 * Leaves behind a story as a release of schema version 1 wrote it (DecisionAdded and
 * SubtaskUpdated in their v1 shapes), then one event of today's release on top: what a stream that
 * outlived an upgrade holds. `ctx events stats` then shows both versions, and
 * `ctx events upcast --dry-run --story <id>` how they are read. Skipped when the story exists.
 */
export async function writeLegacyDemo(id: string): Promise<LegacyDemo> {
  return await withCtxEnv(async ({ nc, names }) => {
    const store = createEventStore(nc, { names });
    if (await store.head(storyId(id))) return { story: id, written: false };
    const t0 = Date.now() - 86_400_000;
    const as = (
      i: number,
      eventType: string,
      v: number,
      schema: DescMessage,
      payload: Message,
    ): WrittenEvent => ({
      eventType,
      schemaVersion: v,
      payloadSchema: schema,
      payload,
      occurredAt: new Date(t0 + i * 60_000),
    });
    await appendAsWritten(nc, store, id, [
      as(
        1,
        "ContextCreated",
        1,
        ContextCreatedSchema,
        create(ContextCreatedSchema, {
          title: "Invoice export",
          description: "written before the v2 schema",
        }),
      ),
      as(
        2,
        "SubtaskAdded",
        1,
        SubtaskAddedSchema,
        create(SubtaskAddedSchema, { subtaskId: "csv", title: "CSV export" }),
      ),
      as(
        3,
        "SubtaskUpdated",
        1,
        legacyV1.SubtaskUpdatedSchema,
        create(legacyV1.SubtaskUpdatedSchema, { subtaskId: "csv", status: "In Progress" }),
      ),
      as(
        4,
        "DecisionAdded",
        1,
        legacyV1.DecisionAddedSchema,
        create(legacyV1.DecisionAddedSchema, {
          decisionId: "format",
          title: "CSV, not XLSX",
          rationale: "every tool reads it",
          affectsSubtaskIds: ["csv"],
          alternative: "XLSX",
        }),
      ),
      as(
        5,
        "SubtaskUpdated",
        1,
        legacyV1.SubtaskUpdatedSchema,
        create(legacyV1.SubtaskUpdatedSchema, { subtaskId: "csv", status: "done" }),
      ),
      as(
        6,
        "DecisionAdded",
        2,
        DecisionAddedSchema,
        create(DecisionAddedSchema, {
          decisionId: "encoding",
          title: "UTF-8 with BOM",
          rationale: "spreadsheets",
          madeBy: "ops",
          alternatives: ["UTF-16", "Latin-1"],
        }),
      ),
    ]);
    const [read] = await store.read(storyId(id), { fromVersion: 5, toVersion: 5 });
    const status =
      read?.data.case === "subtaskUpdated" ? SubtaskStatus[read.data.value.status] : "?";
    return { story: id, written: true, subtaskStatus: status ?? "?" };
  });
}
