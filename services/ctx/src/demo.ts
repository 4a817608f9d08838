import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { loadConfig } from "@ctx/config";
import type { StoryId } from "@ctx/domain";
import { openReadModel, readModelKinds } from "@ctx/projector-service";
import { type CommandResult, ContextCommandService, SubtaskStatus } from "@ctx/proto";
import type { View } from "./cli/output.ts";
import { ctxConfigSchema } from "./ctx-env.ts";
import { ctxCredentials } from "./grpc-credentials.ts";

type Commands = Client<typeof ContextCommandService>;

/** One command of the demo and the version it left the story at. */
export interface DemoStep {
  readonly what: string;
  readonly version: number | null;
  /** The command id was seen before: nothing new was appended. */
  readonly deduplicated: boolean;
}

/** A read model holding the demo story. */
export interface DemoReadModel {
  readonly kind: string;
  readonly version: number;
  readonly generation: number;
}

/** What `ctx demo` did. */
export interface DemoRun {
  readonly story: string;
  readonly commandUrl: string;
  readonly steps: readonly DemoStep[];
  readonly readModels: readonly DemoReadModel[];
  /** The query service's time travel over the story, as lines (`printContextAtTwoTimes`). */
  readonly timeTravel: readonly string[];
  readonly legacy: LegacyDemo;
}

/** The story left as schema v1 wrote it (legacy-demo.ts). */
export interface LegacyDemo {
  readonly story: string;
  /** false: it existed already and was left alone. */
  readonly written: boolean;
  /** How today's release reads its subtask's v1 status word. */
  readonly subtaskStatus?: string;
}

export const demoView: View<DemoRun> = {
  text: (d) => [
    `story ${d.story} via ${d.commandUrl}`,
    ...d.steps.map(
      (s) => `  v${s.version ?? "?"}  ${s.what}${s.deduplicated ? "  (already done)" : ""}`,
    ),
    ...d.readModels.map(
      (m) => `  ${m.kind} read model holds the story at v${m.version} (generation ${m.generation})`,
    ),
    ...d.timeTravel,
    d.legacy.written
      ? `story ${d.legacy.story}: 6 events, 3 of them in schema v1 (read today as v2; subtask csv is ${d.legacy.subtaskStatus})`
      : `story ${d.legacy.story} (written by schema v1) exists already`,
  ],
};

/**
 * Tells a short story through the command service: a context with decisions, subtasks and a
 * dependency. Every step has a command id, so running it again appends nothing new.
 */
export async function runDemo(
  commandUrl: string,
  storyId: string,
  interceptors: Interceptor[] = ctxCredentials(),
): Promise<{ version: number; steps: DemoStep[] }> {
  const steps: DemoStep[] = [];
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
    steps.push({
      what,
      version: result?.version ?? null,
      deduplicated: result?.deduplicated ?? false,
    });
  };
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
  return { version, steps };
}

/** Waits until the projectors have put the story, at that version, into both read models. */
export async function waitForReadModels(
  storyId: string,
  version: number,
): Promise<DemoReadModel[]> {
  const config = loadConfig(ctxConfigSchema);
  const held: DemoReadModel[] = [];
  for (const kind of readModelKinds) {
    const model = openReadModel(kind, config);
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const generation = await model.projection.activeGeneration();
        const context = await model.projection.readContext(generation, storyId as StoryId);
        if (context && context.version >= version) {
          held.push({ kind, version: context.version, generation });
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
  return held;
}
