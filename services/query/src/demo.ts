import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  type Context,
  ContextQueryService,
  ContextStatus,
  DecisionStatus,
  type GetContextResponse,
  SubtaskStatus,
} from "@ctx/proto";

/**
 * Time travel for `bin/ctx`: prints a story's context as it was halfway through its history and as
 * it is now, then what changed in between, all through the query service (GetContext,
 * ListEvents, GetContextAtTime, DiffContext).
 */
export async function printContextAtTwoTimes(
  queryUrl: string,
  storyId: string,
  print: (line: string) => void,
  /** E.g. one that sends a bearer token. */
  interceptors: Interceptor[] = [],
): Promise<void> {
  const client = createClient(
    ContextQueryService,
    createGrpcTransport({ baseUrl: queryUrl, interceptors }),
  );
  const now = await client.getContext({ storyId });
  const middle = Math.max(1, Math.ceil(now.version / 2));
  const [event] = (await client.listEvents({ storyId, fromVersion: middle, pageSize: 1 })).events;
  if (event?.occurredAt === undefined) throw new Error(`story ${storyId} has no version ${middle}`);
  const then = await client.getContextAtTime({ storyId, timestamp: event.occurredAt });

  print(`story ${storyId} via ${queryUrl}`);
  for (const answer of [then, now]) printContext(answer, print);
  const diff = await client.diffContext({
    storyId,
    from: { point: { case: "version", value: then.version } },
    to: { point: { case: "version", value: now.version } },
  });
  print(`  between v${diff.fromVersion} and v${diff.toVersion}: ${diff.events.length} events`);
  for (const e of diff.events) print(`    v${e.version}  ${e.eventType}`);
}

function printContext(answer: GetContextResponse, print: (line: string) => void): void {
  const c: Context | undefined = answer.context;
  const at = answer.asOf ? timestampDate(answer.asOf).toISOString() : "?";
  print(`  at ${at} (v${answer.version}): "${c?.title}" ${ContextStatus[c?.status ?? 0]}`);
  for (const d of c?.decisions ?? []) {
    const by = d.supersededByDecisionId ? ` by ${d.supersededByDecisionId}` : "";
    print(`    decision ${d.decisionId}: ${d.title} (${DecisionStatus[d.status]}${by})`);
  }
  for (const s of c?.subtasks ?? []) {
    const who = s.assignee ? `, ${s.assignee}` : "";
    const deps = s.dependsOn.length > 0 ? `, after ${s.dependsOn.join(", ")}` : "";
    print(`    subtask ${s.subtaskId}: ${s.title} (${SubtaskStatus[s.status]}${who}${deps})`);
  }
}
