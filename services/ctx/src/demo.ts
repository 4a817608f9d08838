import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type CommandResult, ContextCommandService, SubtaskStatus } from "@ctx/proto";

type Commands = Client<typeof ContextCommandService>;

/**
 * Tells a short story through the command service: a context with decisions, subtasks and a
 * dependency. Every step has a command id, so running it again appends nothing new.
 */
export async function runDemo(commandUrl: string, storyId: string, print: (line: string) => void) {
  const client: Commands = createClient(
    ContextCommandService,
    createGrpcTransport({ baseUrl: commandUrl }),
  );
  const step = async (
    what: string,
    call: () => Promise<{ result?: CommandResult | undefined }>,
  ) => {
    const { result } = await call();
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
}
