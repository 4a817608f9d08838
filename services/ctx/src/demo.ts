import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { loadConfig } from "@ctx/config";
import type { StoryId } from "@ctx/domain";
import { openReadModel, readModelKinds } from "@ctx/projector-service";
import { type CommandResult, ContextCommandService, SubtaskStatus } from "@ctx/proto";
import { ctxConfigSchema } from "./ctx-env.ts";
import { ctxCredentials } from "./grpc-credentials.ts";

type Commands = Client<typeof ContextCommandService>;

/**
 * Tells a short story through the command service: a context with decisions, subtasks and a
 * dependency. Every step has a command id, so running it again appends nothing new.
 */
export async function runDemo(
  commandUrl: string,
  storyId: string,
  print: (line: string) => void,
  interceptors: Interceptor[] = ctxCredentials(),
): Promise<number> {
  const client: Commands = createClient(
    ContextCommandService,
    createGrpcTransport({ baseUrl: commandUrl, interceptors }),
  );
  let version = 0;
  const step = async (
    what: string,
    call: () => Promise<{ result?: CommandResult | undefined }>,
  ) => {
    const { result } = await call();
    version = result?.version ?? version;
    print(`  v${result?.version ?? "?"}  ${what}${result?.deduplicated ? "  (already done)" : ""}`);
  };
  print(`story ${storyId} via ${commandUrl}`);
  await step("created the context", () =>
    client.createContext({
      storyId,
      commandId: `${storyId}-create`,
      title: "Checkout revamp",
      description: "Replace the legacy checkout with a single-page flow",
    }),
  );
  await step("added subtasks api, ui and rollout (one atomic append)", () =>
    client.applyChanges({
      storyId,
      commandId: `${storyId}-plan`,
      changes: [
        { change: { case: "addSubtask", value: { subtaskId: "api", title: "Payment API" } } },
        {
          change: {
            case: "addSubtask",
            value: { subtaskId: "ui", title: "Checkout UI", dependsOn: ["api"] },
          },
        },
        {
          change: { case: "addSubtask", value: { subtaskId: "rollout", title: "Staged rollout" } },
        },
      ],
    }),
  );
  await step("decided to use the payment provider's hosted fields", () =>
    client.addDecision({
      storyId,
      commandId: `${storyId}-decide-hosted`,
      decisionId: "hosted-fields",
      title: "Use hosted payment fields",
      rationale: "Keeps card data out of our PCI scope",
      madeBy: "ana",
      alternatives: ["Own card form with tokenisation"],
      affectsSubtaskIds: ["api", "ui"],
    }),
  );
  await step("rollout depends on ui", () =>
    client.addSubtaskDependency({
      storyId,
      commandId: `${storyId}-dep`,
      subtaskId: "rollout",
      dependsOnSubtaskId: "ui",
    }),
  );
  await step("api in progress, assigned to bo", () =>
    client.updateSubtask({
      storyId,
      commandId: `${storyId}-api-start`,
      subtaskId: "api",
      status: SubtaskStatus.IN_PROGRESS,
      assignee: "bo",
    }),
  );
  await step("a new decision supersedes the first", () =>
    client.applyChanges({
      storyId,
      commandId: `${storyId}-redecide`,
      changes: [
        {
          change: {
            case: "addDecision",
            value: {
              decisionId: "drop-in-ui",
              title: "Use the provider's drop-in UI",
              rationale: "Covers wallets too; less UI work",
              madeBy: "cy",
              alternatives: ["Hosted fields"],
              affectsSubtaskIds: ["ui"],
            },
          },
        },
        {
          change: {
            case: "supersedeDecision",
            value: { decisionId: "hosted-fields", supersededByDecisionId: "drop-in-ui" },
          },
        },
      ],
    }),
  );
  return version;
}

/** Waits until the projectors have put the story, at that version, into both read models. */
export async function waitForReadModels(
  storyId: string,
  version: number,
  print: (line: string) => void,
): Promise<void> {
  const config = loadConfig(ctxConfigSchema);
  for (const kind of readModelKinds) {
    const model = openReadModel(kind, config);
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const generation = await model.projection.activeGeneration();
        const held = await model.projection.readContext(generation, storyId as StoryId);
        if (held && held.version >= version) {
          print(
            `  ${kind} read model holds the story at v${held.version} (generation ${generation})`,
          );
          break;
        }
        if (Date.now() > deadline)
          throw new Error(`${kind} read model did not reach v${version} in 30 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await model.close();
    }
  }
}
