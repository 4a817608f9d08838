// The page's module: reads a story's current context from the query service with Connect-Web or
// gRPC-Web (fetch), as a browser does. The service must allow the page's origin (RPC_CORS_ORIGINS).
import { createContextClient, SubtaskStatus } from "@ctx/client";

/**
 * The story as the page shows it.
 * @param {{ queryUrl: string, token: string, storyId: string, protocol?: "connect" | "grpc-web", fetch?: typeof fetch }} options
 * @returns {Promise<{ title: string, version: number, lines: string[] }>}
 */
export async function loadStory({ queryUrl, token, storyId, protocol, fetch }) {
  const client = createContextClient({
    queryUrl,
    token,
    transport: "web",
    protocol: protocol ?? "connect",
    ...(fetch ? { fetch } : {}),
  });
  const { context, version } = await client.queries.getContext({ storyId });
  const lines = [
    ...(context?.decisions ?? []).map((d) => `decision ${d.decisionId}: ${d.title}`),
    ...(context?.subtasks ?? []).map(
      (t) => `subtask ${t.subtaskId}: ${t.title} (${SubtaskStatus[t.status] ?? t.status})`,
    ),
  ];
  return { title: context?.title ?? "", version, lines };
}

/**
 * Shows a story (or the error) in the page.
 * @param {HTMLElement} element
 * @param {{ queryUrl: string, token: string, storyId: string, protocol?: "connect" | "grpc-web" }} options
 */
export async function showStory(element, options) {
  element.replaceChildren();
  try {
    const story = await loadStory(options);
    const heading = document.createElement("h2");
    heading.textContent = `${story.title} (version ${story.version})`;
    const list = document.createElement("ul");
    for (const line of story.lines) {
      const item = document.createElement("li");
      item.textContent = line;
      list.append(item);
    }
    element.append(heading, list);
  } catch (e) {
    element.textContent = e instanceof Error ? `${e.name}: ${e.message}` : `Error: ${String(e)}`;
  }
}
