import { StoryNotFoundError, storyId } from "@ctx/domain";
import { ChainAuditor, type ChainBreak, createEventStore } from "@ctx/event-store";
import { type Output, scanProgress, table, type View } from "../cli/output.ts";
import { withCtxEnv } from "../ctx-env.ts";

/** What `ctx audit verify` found. */
export interface AuditVerification {
  readonly stream: string;
  /** The story verified; absent with --all. */
  readonly story?: string;
  readonly stories: number;
  readonly messages: number;
  readonly seconds: number;
  /** Every break, in stream order (exit code 1 when there is one). */
  readonly breaks: readonly ChainBreak[];
}

const short = (value: string | undefined) =>
  value === undefined || value === "" ? "-" : value.length > 16 ? `${value.slice(0, 16)}…` : value;

export const auditVerifyView: View<AuditVerification> = {
  text: (r) => [
    ...(r.breaks.length === 0
      ? []
      : [
          table([
            ["stream seq", "story", "version", "break", "expected", "actual"],
            ...r.breaks.map((b) => [
              b.sequence,
              b.storyId,
              b.version || "-",
              b.kind,
              short(b.expected),
              short(b.actual),
            ]),
          ]),
          "",
          ...r.breaks.map((b) => `stream message ${b.sequence} (${b.kind}): ${b.detail}`),
          "",
        ]),
    `${r.story ?? r.stream}: ${r.messages} messages of ${r.stories} ${r.stories === 1 ? "story" : "stories"} verified in ${r.seconds.toFixed(1)} s: ${
      r.breaks.length === 0
        ? "every hash chain is intact"
        : `${r.breaks.length} break(s) of the hash chain`
    }`,
  ],
  exitCode: (r) => (r.breaks.length > 0 ? 1 : 0),
};

/**
 * `ctx audit verify --story S | --all`: recomputes the hash chain of a story, or of every story of
 * the stream, from the stored bytes (docs/AUDIT.md), and reports each break with its stream
 * sequence, story, version, kind, and the expected and actual values. Exits 1 on any break.
 */
export async function auditVerify(
  options: { story?: string; all?: boolean },
  output: Output,
): Promise<AuditVerification> {
  return await withCtxEnv(async ({ nc, jsm, names }) => {
    const store = createEventStore(nc, { names });
    const auditor = new ChainAuditor(names);
    const started = performance.now();
    if (options.story !== undefined) {
      const messages = await store.storyMessages(storyId(options.story));
      if (messages.length === 0) throw new StoryNotFoundError(storyId(options.story));
      for (const m of messages) auditor.add(m);
    } else {
      const total = (await jsm.streams.info(names.stream)).state.messages;
      const progress = scanProgress(output, total, "verifying");
      try {
        for await (const m of store.readAllMessages()) {
          auditor.add(m);
          progress.update(auditor.messages);
        }
      } finally {
        progress.stop(auditor.messages);
      }
    }
    const breaks = auditor.finish();
    return {
      stream: names.stream,
      ...(options.story === undefined ? {} : { story: options.story }),
      stories: auditor.stories,
      messages: auditor.messages,
      seconds: (performance.now() - started) / 1000,
      breaks,
    };
  });
}
