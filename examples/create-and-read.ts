// Creates a story, changes it, and reads it as it was at two times:
//   CTX_TOKEN=... node examples/create-and-read.ts [story-id]
// CTX_COMMAND_URL and CTX_QUERY_URL default to the local stack (make up).
import { createContextClient, SubtaskStatus, timestampDate } from "@ctx/client";

const client = createContextClient({
  commandUrl: process.env.CTX_COMMAND_URL ?? "http://127.0.0.1:50051",
  queryUrl: process.env.CTX_QUERY_URL ?? "http://127.0.0.1:50052",
  token: process.env.CTX_TOKEN,
});
const storyId = process.argv[2] ?? `example-${Date.now()}`;

await client.commands.createContext({ storyId, title: "Checkout redesign" });
// The time of version 1, by the service's clock.
const created = await client.queries.getContextAtVersion({ storyId, version: 1 });
const firstTime = created.asOf;

await client.commands.addSubtask({ storyId, subtaskId: "cart", title: "New cart page" });
await client.commands.addDecision({
  storyId,
  decisionId: "psp",
  title: "Keep the current payment provider",
  madeBy: "example",
  affectsSubtaskIds: ["cart"],
});
const last = await client.commands.updateSubtask({
  storyId,
  subtaskId: "cart",
  status: SubtaskStatus.IN_PROGRESS,
});
const lastTime = (await client.queries.getContextAtVersion({ storyId, version: last.version }))
  .asOf;

for (const timestamp of [firstTime, lastTime]) {
  if (timestamp === undefined) throw new Error("the answer has no time");
  const { version, context } = await client.queries.getContextAtTime({ storyId, timestamp });
  console.log(
    `${storyId} at ${timestampDate(timestamp).toISOString()}: version ${version}, ` +
      `${context?.decisions.length ?? 0} decision(s), ${context?.subtasks.length ?? 0} subtask(s)`,
  );
}
