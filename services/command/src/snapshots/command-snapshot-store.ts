import type { ContextState, StoryId } from "@ctx/domain";
import { type CommandSnapshotNames, equalBytes } from "@ctx/event-store";
import { collectDirectBatch } from "@ctx/event-store/direct-get";
import { type JetStreamClient, type JetStreamManager, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { CommandEntry, LoadedStory, SnapshotBase } from "../handling/story-cache.ts";
import {
  type CommandPage,
  chainDigest,
  decodePage,
  decodeState,
  encodePage,
  encodeState,
  PAGE_SPAN,
  pageCommands,
  sha256,
} from "./command-snapshot-codec.ts";

/** A snapshot as a load finds it, its pages checked against it; not yet against the event stream. */
export interface StoredSnapshot {
  readonly state: ContextState;
  /** Stream sequence and hash of the event at `state.version`: what the caller checks. */
  readonly sequence: number;
  readonly hash: Uint8Array;
  /** Every command the snapshot covers, as IndexedCommand. */
  readonly commands: Map<string, CommandEntry>;
  readonly base: SnapshotBase;
}

/** What a lookup found: a snapshot, none, or one that must not be used (and why). */
export type SnapshotLookup =
  | { readonly found: "snapshot"; readonly snapshot: StoredSnapshot }
  | { readonly found: "none" }
  | { readonly found: "unusable"; readonly why: string };

export type SnapshotWrite = "written" | "too-large";

/**
 * The command service's snapshots in JetStream (layout: command-snapshot-codec.ts). Only ever an
 * optimisation: the handler checks what a load returns against the event stream, and reads the
 * story from its first event whenever a snapshot is missing, unusable or does not match.
 */
export interface CommandSnapshotStore {
  readonly names: CommandSnapshotNames;
  /** The story's newest snapshot and the command pages it relies on: one or two batched direct gets. */
  load(storyId: StoryId): Promise<SnapshotLookup>;
  /**
   * Stores a snapshot of the story as held: the full pages it does not know to be stored, then the
   * recent page and the state in one atomic batch. Updates `story.snapshot` when it is stored.
   */
  write(story: LoadedStory): Promise<SnapshotWrite>;
}

export interface CommandSnapshotStoreOptions {
  /** Publish and lookup timeout in milliseconds (default 5 s). */
  readonly timeoutMs?: number;
}

/** Room left in a NATS message for the headers of a publish (batch ids, the commit marker). */
const HEADER_ROOM = 4 * 1024;
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
/** Pages asked for in one multi-last direct get (the request lists their subjects). */
const PAGES_PER_REQUEST = 256;

export function createCommandSnapshotStore(
  nc: NatsConnection,
  names: CommandSnapshotNames,
  options: CommandSnapshotStoreOptions = {},
): CommandSnapshotStore {
  return new JetStreamCommandSnapshotStore(nc, names, options.timeoutMs ?? 5_000);
}

class JetStreamCommandSnapshotStore implements CommandSnapshotStore {
  readonly names: CommandSnapshotNames;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #timeout: number;
  #jsm: Promise<JetStreamManager> | undefined;

  constructor(nc: NatsConnection, names: CommandSnapshotNames, timeoutMs: number) {
    this.names = names;
    this.#nc = nc;
    this.#timeout = timeoutMs;
    this.#js = jetstream(nc, { timeout: timeoutMs });
  }

  #subject(storyId: string, part: string): string {
    return `${this.names.subjectPrefix}.${storyId}.${part}`;
  }

  async #lastOn(subjects: readonly string[]): Promise<Map<string, Uint8Array>> {
    this.#jsm ??= this.#js.jetstreamManager(false);
    const jsm = await this.#jsm;
    const messages = await collectDirectBatch(
      jsm,
      this.names.stream,
      { multi_last: [...subjects] },
      this.#timeout,
    );
    return new Map(messages.map((m) => [m.subject, m.data]));
  }

  async load(storyId: StoryId): Promise<SnapshotLookup> {
    const stateSubject = this.#subject(storyId, "state");
    const recentSubject = this.#subject(storyId, "recent");
    const found = await this.#lastOn([stateSubject, recentSubject]);
    const stateBytes = found.get(stateSubject);
    if (stateBytes === undefined) return { found: "none" };
    const snapshot = decodeState(storyId, stateBytes);
    if (snapshot === undefined) return unusable("the state does not decode");
    const { state, pages } = snapshot;
    const recentBytes = found.get(recentSubject);
    const recent = recentBytes && decodePage(storyId, pages * PAGE_SPAN, recentBytes);
    if (
      recentBytes === undefined ||
      recent === undefined ||
      recent.to !== state.version ||
      !equalBytes(sha256(recentBytes), snapshot.recentDigest)
    ) {
      return unusable("its recent command ids are missing or are not the ones it was written with");
    }
    const full = await this.#pages(storyId, pages);
    let digest: Uint8Array = new Uint8Array(0);
    const commands = new Map<string, CommandEntry>();
    for (let k = 0; k < pages; k++) {
      const bytes = full[k];
      const page = bytes && decodePage(storyId, k * PAGE_SPAN, bytes);
      if (bytes === undefined || page === undefined || page.to !== (k + 1) * PAGE_SPAN) {
        return unusable(`its page ${k} of command ids is missing or cannot be read`);
      }
      digest = chainDigest(digest, bytes);
      add(commands, page);
    }
    if (!equalBytes(digest, snapshot.pagesDigest)) {
      return unusable("its pages of command ids are not the ones it was written with");
    }
    add(commands, recent);
    return {
      found: "snapshot",
      snapshot: {
        state,
        sequence: snapshot.sequence,
        hash: snapshot.hash,
        commands,
        base: { version: state.version, pages, pagesDigest: digest },
      },
    };
  }

  /** The bytes of full pages 0..count-1 (undefined where one is missing), by page number. */
  async #pages(storyId: StoryId, count: number): Promise<(Uint8Array | undefined)[]> {
    const subjects = Array.from({ length: count }, (_, k) => this.#subject(storyId, `c.${k}`));
    const chunks: string[][] = [];
    for (let i = 0; i < subjects.length; i += PAGES_PER_REQUEST) {
      chunks.push(subjects.slice(i, i + PAGES_PER_REQUEST));
    }
    const found = await Promise.all(chunks.map((chunk) => this.#lastOn(chunk)));
    const all = new Map(found.flatMap((m) => [...m]));
    return subjects.map((s) => all.get(s));
  }

  async write(story: LoadedStory): Promise<SnapshotWrite> {
    const { state, snapshot: base } = story;
    const storyId = state.storyId;
    const version = state.version;
    const pages = Math.floor(version / PAGE_SPAN);
    // Pages the handler knows to be stored are not written again (a load checked them, or this
    // process wrote them); the others are, with the same bytes any writer would write.
    const known = base.version > 0 && base.pages <= pages ? base.pages : 0;
    let digest = known > 0 ? base.pagesDigest : new Uint8Array(0);
    const maxPayload = (this.#nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD) - HEADER_ROOM;
    const full: [string, Uint8Array][] = [];
    for (let k = known; k < pages; k++) {
      const after = k * PAGE_SPAN;
      const to = after + PAGE_SPAN;
      const bytes = encodePage(storyId, after, to, pageCommands(story.commands, after, to));
      if (bytes.length > maxPayload) return "too-large";
      full.push([this.#subject(storyId, `c.${k}`), bytes]);
      digest = chainDigest(digest, bytes);
    }
    const after = pages * PAGE_SPAN;
    const recent = encodePage(
      storyId,
      after,
      version,
      pageCommands(story.commands, after, version),
    );
    const stateBytes = encodeState({
      state,
      sequence: story.sequence,
      hash: story.hash,
      pages,
      pagesDigest: digest,
      recentDigest: sha256(recent),
    });
    if (recent.length > maxPayload || stateBytes.length > maxPayload) return "too-large";
    for (const [subject, bytes] of full) await this.#js.publish(subject, bytes);
    // The state and the recent page it relies on: both or neither.
    const batch = await this.#js.startBatch(this.#subject(storyId, "recent"), recent);
    await batch.commit(this.#subject(storyId, "state"), stateBytes);
    // Stories move on while a snapshot is written: what is known only grows.
    if (version > base.version) {
      base.version = version;
      base.pages = pages;
      base.pagesDigest = digest;
    }
    return "written";
  }
}

function unusable(why: string): SnapshotLookup {
  return { found: "unusable", why };
}

function add(commands: Map<string, CommandEntry>, page: CommandPage): void {
  for (const { commandId, ...entry } of page.commands) commands.set(commandId, entry);
}
