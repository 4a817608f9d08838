import { createRegistry, type JsonValue, type Message, toJson } from "@bufbuild/protobuf";
import { type StoryId, storyId } from "@ctx/domain";
import { createEventStore, currentEnvelope, type RecordedEvent } from "@ctx/event-store";
import { file_context_v1_events, legacyV1 } from "@ctx/proto";
import type { Output, View } from "../cli/output.ts";
import { scanProgress, table } from "../cli/output.ts";
import { withCtxEnv } from "../ctx-env.ts";

// Every payload message a stored event may carry, current and legacy, for printing as JSON.
const payloadTypes = createRegistry(file_context_v1_events, legacyV1.file_context_legacy_v1_events);

/** An event's type, schema version and payload as JSON (none: dropped; unknown type: its name). */
export interface EventShape {
  readonly type: string;
  readonly schemaVersion: number;
  readonly payloadType: string | null;
  readonly payload?: JsonValue;
}

function shape(type: string, schemaVersion: number, message: Message | undefined): EventShape {
  if (message === undefined) return { type, schemaVersion, payloadType: null };
  const schema = payloadTypes.getMessage(message.$typeName);
  return schema
    ? {
        type,
        schemaVersion,
        payloadType: message.$typeName,
        payload: toJson(schema, message, { alwaysEmitImplicit: true }),
      }
    : { type, schemaVersion, payloadType: message.$typeName };
}

const shapeText = (s: EventShape) =>
  `${s.type} v${s.schemaVersion} ${
    s.payload !== undefined
      ? JSON.stringify(s.payload)
      : s.payloadType === null
        ? "(nothing: dropped)"
        : `(${s.payloadType})`
  }`;

/** One row of `ctx events stats`: a (type, schema version), or a kind of message readers skip. */
export interface EventKindCount {
  readonly type: string;
  /** null for the rows of unreadable and set-aside messages. */
  readonly schemaVersion: number | null;
  readonly count: number;
  readonly readAs: string;
  /** No reader can read these (exit code 1). */
  readonly unreadable: boolean;
  /** Where the first of an unreadable or set-aside kind is. */
  readonly first?: string;
}

export interface EventStats {
  readonly stream: string;
  readonly events: number;
  readonly kinds: readonly EventKindCount[];
}

export const eventStatsView: View<EventStats> = {
  text: ({ stream, events, kinds }) => [
    `${stream}: ${events} events`,
    ...(kinds.length === 0
      ? []
      : [
          table([
            ["event type", "schema", "events", "read as"],
            ...kinds.map((k) => [
              k.type,
              k.schemaVersion === null ? "-" : `v${k.schemaVersion}`,
              k.count,
              k.first === undefined ? k.readAs : `${k.readAs}; first: ${k.first}`,
            ]),
          ]),
        ]),
  ],
  exitCode: ({ kinds }) => (kinds.some((k) => k.unreadable) ? 1 : 0),
};

/**
 * `ctx events stats`: how many events of each (type, schema version) the stream holds, and how
 * each reaches today's shape. Scans the whole stream once (a progress bar on a terminal).
 */
export async function eventStats(output: Output): Promise<EventStats> {
  return await withCtxEnv(async ({ nc, jsm, names }) => {
    const store = createEventStore(nc, { names });
    const total = (await jsm.streams.info(names.stream)).state.messages;
    const progress = scanProgress(output, total, "scanning");
    const counts = new Map<string, { type: string; version: number; count: number }>();
    // Messages no reader can read, and messages an operator set aside, by kind: their own rows.
    const other = new Map<string, EventKindCount & { count: number }>();
    let scanned = 0;
    try {
      for await (const event of store.readAllStored()) {
        scanned += 1;
        progress.update(scanned);
        const problem = event.unreadable?.error;
        if (problem !== undefined || event.setAside !== undefined) {
          const readAs =
            problem !== undefined
              ? `UNREADABLE (${problem.name}): see ctx stories check`
              : "set aside (EventsSetAside)";
          const key = `${event.eventType} ${readAs}`;
          const entry = other.get(key) ?? {
            type: event.eventType,
            schemaVersion: null,
            readAs,
            unreadable: problem !== undefined,
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
      progress.stop(scanned);
    }
    const { registry } = store.upcaster;
    const kinds: EventKindCount[] = [...counts.values()]
      .sort((a, b) => a.type.localeCompare(b.type) || a.version - b.version)
      .map(({ type, version, count }) => {
        const steps = registry.steps({ type, version });
        const current = registry.isCurrent({ type, version });
        return {
          type,
          schemaVersion: version,
          count,
          readAs: current
            ? "current"
            : steps.length > 0
              ? `upcast: ${steps.map((s) => `v${s.from.version} ${s.description}`).join(", then ")}`
              : "UNREADABLE: no upcaster reads it",
          unreadable: !current && steps.length === 0,
        };
      });
    return { stream: names.stream, events: scanned, kinds: [...kinds, ...other.values()] };
  });
}

/** One stored event of `ctx events upcast`: as stored, and as every reader sees it. */
export interface UpcastEntry {
  readonly version: number;
  readonly sequence: number;
  /** Set aside by `ctx stories repair`: the problem recorded (and no shapes). */
  readonly setAside?: string;
  readonly stored?: EventShape;
  readonly read?: readonly EventShape[];
  /** Why no reader can read it. */
  readonly unreadable?: string;
}

export interface UpcastDryRun {
  readonly story: string;
  readonly events: readonly UpcastEntry[];
  readonly upcast: number;
}

export const upcastDryRunView: View<UpcastDryRun> = {
  text: ({ story, events, upcast }) => {
    const rows: string[][] = [["version", "as stored", "as read (upcast)"]];
    for (const e of events) {
      if (e.setAside !== undefined) {
        rows.push([String(e.version), `SET ASIDE (stream message ${e.sequence})`, e.setAside]);
        continue;
      }
      const before = e.stored === undefined ? "" : shapeText(e.stored);
      const after =
        e.unreadable !== undefined
          ? [`UNREADABLE: ${e.unreadable}`]
          : (e.read ?? []).map(shapeText);
      after.forEach((line, i) => {
        rows.push([i === 0 ? String(e.version) : "", i === 0 ? before : "", line]);
      });
    }
    return [
      table(rows),
      `${story}: ${events.length} events, ${upcast} upcast on read; nothing was written`,
    ];
  },
};

/**
 * `ctx events upcast --dry-run --story S`: each event of a story as stored and as every reader sees
 * it, side by side. Stored events are never rewritten: upcasting happens when events are read, so
 * there is nothing to run for real.
 */
export async function upcastDryRun(options: {
  story: string;
  dryRun?: boolean;
}): Promise<UpcastDryRun> {
  if (!options.dryRun) {
    throw new Error(
      "stored events are never rewritten (every reader upcasts them when it reads them); use --dry-run to see both shapes",
    );
  }
  return await withCtxEnv(async ({ nc, names }) => {
    const store = createEventStore(nc, { names });
    const id: StoryId = storyId(options.story);
    const stored = await store.readStored(id, { mustExist: true });
    let upcast = 0;
    const events = stored.map((event): UpcastEntry => {
      const at = { version: event.version, sequence: event.sequence };
      if (event.setAside !== undefined) return { ...at, setAside: event.setAside.problem };
      const before = shape(event.eventType, event.schemaVersion, event.payload);
      try {
        const read: readonly RecordedEvent[] = store.upcaster.upcast(event);
        if (read.length !== 1 || read[0]?.schemaVersion !== event.schemaVersion) upcast += 1;
        return {
          ...at,
          stored: before,
          read: read.map((e) =>
            shape(e.eventType, e.schemaVersion, currentEnvelope(e).payload.value),
          ),
        };
      } catch (e) {
        return { ...at, stored: before, unreadable: (e as Error).message };
      }
    });
    return { story: options.story, events, upcast };
  });
}

/** One line of a story's history in `ctx events list`. */
export interface ListedEvent {
  readonly version: number;
  readonly sequence: number;
  readonly occurredAt: string;
  readonly type: string;
  readonly schemaVersion: number;
  readonly setAside: boolean;
  /** Who issued the command; null when written with AUTH=off or before principals were recorded. */
  readonly principal: string | null;
  readonly commandId: string | null;
  readonly correlationId: string | null;
}

export interface StoryEvents {
  readonly story: string;
  readonly events: readonly ListedEvent[];
}

export const storyEventsView: View<StoryEvents> = {
  text: ({ events }) => [
    table([
      ["version", "occurred at", "event", "principal", "command id", "correlation id"],
      ...events.map((e) => [
        e.version,
        e.occurredAt,
        e.setAside ? "(set aside)" : `${e.type} v${e.schemaVersion}`,
        e.principal ?? "-",
        e.commandId ?? "-",
        e.correlationId ?? "-",
      ]),
    ]),
  ],
};

/**
 * `ctx events list --story S`: a story's history, one line per stored event: when, what, who (the
 * principal the command service authenticated; "-" for events written without authentication or
 * before it was recorded), and the command and correlation ids that tie it to logs.
 */
export async function listStoryEvents(options: { story: string }): Promise<StoryEvents> {
  return await withCtxEnv(async ({ nc, names }) => {
    const store = createEventStore(nc, { names });
    const stored = await store.readStored(storyId(options.story), { mustExist: true });
    return {
      story: options.story,
      events: stored.map(
        ({ version, sequence, occurredAt, eventType, schemaVersion, setAside, envelope }) => ({
          version,
          sequence,
          occurredAt: occurredAt.toISOString(),
          type: eventType,
          schemaVersion,
          setAside: setAside !== undefined,
          principal: envelope.principal || null,
          commandId: envelope.commandId || null,
          correlationId: envelope.correlationId || null,
        }),
      ),
    };
  });
}
