import { createRegistry, type Message, toJsonString } from "@bufbuild/protobuf";
import { type StoryId, storyId } from "@ctx/domain";
import { createEventStore, currentEnvelope, type RecordedEvent } from "@ctx/event-store";
import { file_context_v1_events, legacyV1 } from "@ctx/proto";
import { SingleBar } from "cli-progress";
import { table, withCtxEnv } from "../ctx-env.ts";

// Every payload message a stored event may carry, current and legacy, for printing as JSON.
const payloadTypes = createRegistry(file_context_v1_events, legacyV1.file_context_legacy_v1_events);

function json(message: Message | undefined): string {
  if (message === undefined) return "(nothing: dropped)";
  const schema = payloadTypes.getMessage(message.$typeName);
  return schema
    ? toJsonString(schema, message, { alwaysEmitImplicit: true })
    : `(${message.$typeName})`;
}

/**
 * `ctx events stats`: how many events of each (type, schema version) the stream holds, and how
 * each reaches today's shape. Scans the whole stream once (progress on stderr).
 */
export async function eventStats(print: (line: string) => void): Promise<void> {
  await withCtxEnv(async ({ nc, jsm, names }) => {
    const store = createEventStore(nc, { names });
    const total = (await jsm.streams.info(names.stream)).state.messages;
    const bar =
      process.stderr.isTTY === true && total > 0
        ? new SingleBar({
            format: "scanning [{bar}] {percentage}% | {value}/{total} events | ETA {eta_formatted}",
          })
        : undefined;
    bar?.start(total, 0);
    const counts = new Map<string, { type: string; version: number; count: number }>();
    // Messages no reader can read, and messages an operator set aside, by kind: their own rows.
    const other = new Map<string, { type: string; read: string; count: number; first: string }>();
    let scanned = 0;
    try {
      for await (const event of store.readAllStored()) {
        scanned += 1;
        if (scanned % 1_000 === 0) bar?.update(scanned);
        const problem = event.unreadable?.error;
        if (problem !== undefined || event.setAside !== undefined) {
          const read =
            problem !== undefined
              ? `UNREADABLE (${problem.name}): see ctx stories check`
              : "set aside (EventsSetAside)";
          const key = `${event.eventType} ${read}`;
          const entry = other.get(key) ?? {
            type: event.eventType,
            read,
            count: 0,
            first: `story ${event.storyId}, stream message ${event.sequence}`,
          };
          entry.count += 1;
          other.set(key, entry);
          continue;
        }
        const key = `${event.eventType} ${event.schemaVersion}`;
        const entry = counts.get(key) ?? {
          type: event.eventType,
          version: event.schemaVersion,
          count: 0,
        };
        entry.count += 1;
        counts.set(key, entry);
      }
    } finally {
      bar?.update(scanned);
      bar?.stop();
    }
    const { registry } = store.upcaster;
    const rows = [...counts.values()]
      .sort((a, b) => a.type.localeCompare(b.type) || a.version - b.version)
      .map(({ type, version, count }) => {
        const steps = registry.steps({ type, version });
        const read = registry.isCurrent({ type, version })
          ? "current"
          : steps.length > 0
            ? `upcast: ${steps.map((s) => `v${s.from.version} ${s.description}`).join(", then ")}`
            : "UNREADABLE: no upcaster reads it";
        return [type, `v${version}`, count, read];
      });
    for (const { type, read, count, first } of other.values()) {
      rows.push([type, "-", count, `${read}; first: ${first}`]);
    }
    print(`${names.stream}: ${scanned} events`);
    if (rows.length > 0) print(table([["event type", "schema", "events", "read as"], ...rows]));
    if (rows.some((r) => String(r[3]).startsWith("UNREADABLE"))) process.exitCode = 1;
  });
}

/**
 * `ctx events upcast --dry-run --story S`: each event of a story as stored and as every reader sees
 * it, side by side. Stored events are never rewritten: upcasting happens when events are read, so
 * there is nothing to run for real.
 */
export async function upcastDryRun(
  options: { story: string; dryRun?: boolean },
  print: (line: string) => void,
): Promise<void> {
  if (!options.dryRun) {
    throw new Error(
      "stored events are never rewritten (every reader upcasts them when it reads them); use --dry-run to see both shapes",
    );
  }
  await withCtxEnv(async ({ nc, names }) => {
    const store = createEventStore(nc, { names });
    const id: StoryId = storyId(options.story);
    const stored = await store.readStored(id, { mustExist: true });
    const rows: string[][] = [["version", "as stored", "as read (upcast)"]];
    let upcastCount = 0;
    for (const event of stored) {
      if (event.setAside !== undefined) {
        const seq = `stream message ${event.sequence}`;
        rows.push([String(event.version), `SET ASIDE (${seq})`, event.setAside.problem]);
        continue;
      }
      const before = `${event.eventType} v${event.schemaVersion} ${json(event.payload)}`;
      let after: string[];
      try {
        const read: readonly RecordedEvent[] = store.upcaster.upcast(event);
        after = read.map((e) => {
          const envelope = currentEnvelope(e);
          return `${e.eventType} v${e.schemaVersion} ${json(envelope.payload.value)}`;
        });
        if (read.length !== 1 || read[0]?.schemaVersion !== event.schemaVersion) upcastCount += 1;
      } catch (e) {
        after = [`UNREADABLE: ${(e as Error).message}`];
      }
      after.forEach((line, i) => {
        rows.push([i === 0 ? String(event.version) : "", i === 0 ? before : "", line]);
      });
    }
    print(table(rows));
    print(
      `${options.story}: ${stored.length} events, ${upcastCount} upcast on read; nothing was written`,
    );
  });
}

/**
 * `ctx events list --story S`: a story's history, one line per stored event: when, what, who (the
 * principal the command service authenticated; "-" for events written without authentication or
 * before it was recorded), and the command and correlation ids that tie it to logs.
 */
export async function listStoryEvents(
  options: { story: string },
  print: (line: string) => void,
): Promise<void> {
  await withCtxEnv(async ({ nc, names }) => {
    const store = createEventStore(nc, { names });
    const stored = await store.readStored(storyId(options.story), { mustExist: true });
    const rows: string[][] = [
      ["version", "occurred at", "event", "principal", "command id", "correlation id"],
    ];
    for (const event of stored) {
      const envelope = event.envelope;
      rows.push([
        String(event.version),
        event.occurredAt.toISOString(),
        event.setAside !== undefined ? "(set aside)" : `${event.eventType} v${event.schemaVersion}`,
        envelope.principal || "-",
        envelope.commandId || "-",
        envelope.correlationId || "-",
      ]);
    }
    print(table(rows));
  });
}
