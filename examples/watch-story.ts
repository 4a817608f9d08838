// Prints a story's every version as it lands, until Ctrl-C (or --count versions):
//   CTX_TOKEN=... node examples/watch-story.ts <story-id> [--from <version>] [--count <n>]
// It reconnects by itself when the connection drops, without missing or repeating a version.
import { parseArgs } from "node:util";
import { createContextClient, SubtaskStatus } from "@ctx/client";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { from: { type: "string" }, count: { type: "string" } },
});
const storyId = positionals[0];
if (storyId === undefined) {
  console.error("usage: watch-story.ts <story-id> [--from <version>] [--count <n>]");
  process.exit(2);
}
const client = createContextClient({
  queryUrl: process.env.CTX_QUERY_URL ?? "http://127.0.0.1:50052",
  token: process.env.CTX_TOKEN,
});

const stop = new AbortController();
process.once("SIGINT", () => stop.abort());
let left = values.count === undefined ? Number.POSITIVE_INFINITY : Number(values.count);
for await (const { version, context } of client.watch(storyId, {
  signal: stop.signal,
  ...(values.from === undefined ? {} : { fromVersion: Number(values.from) }),
})) {
  const subtasks = (context?.subtasks ?? []).map(
    (t) => `${t.subtaskId} ${SubtaskStatus[t.status]}`,
  );
  console.log(`version ${version}: ${context?.title}, ${subtasks.join(", ") || "no subtasks"}`);
  if (--left <= 0) break;
}
