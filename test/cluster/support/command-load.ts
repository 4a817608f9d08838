import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { ContextCommandService } from "@ctx/proto";

/** What the command service acknowledged for one command: the client's ledger entry. */
export interface LedgerEntry {
  readonly commandId: string;
  readonly storyId: string;
  /** The story's version the service returned (the command's last event). */
  readonly version: number;
  /** Events the command appends (1, or the changes of an ApplyChanges). */
  readonly events: number;
  /** The service answered `deduplicated`: a retry found the command stored already. */
  readonly deduplicated: boolean;
  /** Attempts it took (1: no retry). */
  readonly attempts: number;
}

/** Status codes a client retries with the same command_id: the call may or may not have been applied. */
const retriable: ReadonlySet<Code> = new Set([Code.Unavailable, Code.DeadlineExceeded]);

export interface CommandLoadOptions {
  readonly client: Client<typeof ContextCommandService>;
  /** Stories the load writes to, named `${prefix}-s{n}`. */
  readonly prefix: string;
  readonly stories: number;
  /** Commands in flight at once (each story has at most one). */
  readonly concurrency: number;
  /** Seed of the PRNG that chooses the commands: the same seed gives the same command sequences. */
  readonly seed: number;
  /** The client's deadline per call, in ms. */
  readonly deadlineMs: number;
  /** A command still failing with a retriable code after this many ms is given up (a test failure). */
  readonly giveUpMs: number;
}

/**
 * A gRPC client load on the command service with a ledger of everything acknowledged: bounded
 * concurrency, one command in flight per story (so every command is valid against the story as the
 * client knows it, and nothing conflicts), commands chosen by a seeded PRNG, retries with the same
 * command_id on UNAVAILABLE and DEADLINE_EXCEEDED, and every status code seen counted by phase.
 */
export interface CommandLoad {
  /**
   * Sends commands until the acknowledged events reach `events` and `more` (if given) says no
   * more; resolves when none is in flight. Rejects when a command fails for good.
   */
  runUntil(events: number, more?: () => boolean): Promise<void>;
  /** Labels the status codes counted from now on (e.g. the fault under way). */
  setPhase(phase: string): void;
  /** Acknowledged events so far. */
  events(): number;
  readonly ledger: readonly LedgerEntry[];
  /** Per phase, how many times each status code (by name, "OK" included) was seen. */
  readonly codes: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** Commands that failed with a code no client should ever get here (the test fails on any). */
  readonly failures: readonly {
    readonly commandId: string;
    readonly code: string;
    readonly message: string;
  }[];
  readonly storyIds: readonly string[];
}

/** mulberry32: a small seeded PRNG, deterministic across runs and platforms. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The client's view of one story: enough to send only commands the domain accepts. */
interface StoryPlan {
  readonly id: string;
  readonly random: () => number;
  created: boolean;
  subtasks: number;
  decisions: number;
  sent: number;
}

type Call = (
  signal: AbortSignal,
) => Promise<{ readonly result?: { version: number; deduplicated: boolean } | undefined }>;

/** One command to send: the call (the same on every retry) and what it adds to the story. */
interface Planned {
  readonly commandId: string;
  readonly call: Call;
  readonly events: number;
  readonly adds: { readonly subtasks: number; readonly decisions: number };
}

export function createCommandLoad(options: CommandLoadOptions): CommandLoad {
  const { client } = options;
  const plans: StoryPlan[] = Array.from({ length: options.stories }, (_, i) => ({
    id: `${options.prefix}-s${i}`,
    random: seededRandom(options.seed * 100_003 + i),
    created: false,
    subtasks: 0,
    decisions: 0,
    sent: 0,
  }));
  const ledger: LedgerEntry[] = [];
  const codes = new Map<string, Map<string, number>>();
  const failures: { commandId: string; code: string; message: string }[] = [];
  let phase = "start";
  let acknowledged = 0;
  let nextStory = 0;

  const count = (code: string) => {
    let byCode = codes.get(phase);
    if (byCode === undefined) {
      byCode = new Map();
      codes.set(phase, byCode);
    }
    byCode.set(code, (byCode.get(code) ?? 0) + 1);
  };

  /** The story's next command: valid against what the client knows it holds. */
  function nextCommand(plan: StoryPlan): Planned {
    const commandId = `${plan.id}-c${plan.sent}`;
    const storyId = plan.id;
    const r = plan.random();
    if (!plan.created) {
      return {
        commandId,
        events: 1,
        adds: { subtasks: 0, decisions: 0 },
        call: (signal) =>
          client.createContext(
            { storyId, commandId, title: `story ${storyId}` },
            { signal, timeoutMs: options.deadlineMs },
          ),
      };
    }
    if (plan.subtasks === 0 || r < 0.35) {
      const n = plan.subtasks;
      const dependsOn = n > 0 && plan.random() < 0.5 ? [`t${Math.floor(plan.random() * n)}`] : [];
      return {
        commandId,
        events: 1,
        adds: { subtasks: 1, decisions: 0 },
        call: (signal) =>
          client.addSubtask(
            { storyId, commandId, subtaskId: `t${n}`, title: `task ${n}`, dependsOn },
            { signal, timeoutMs: options.deadlineMs },
          ),
      };
    }
    if (r < 0.65) {
      const subtaskId = `t${Math.floor(plan.random() * plan.subtasks)}`;
      // A new assignee every time: an update that changes nothing stores nothing.
      const assignee = `dev-${plan.sent}`;
      return {
        commandId,
        events: 1,
        adds: { subtasks: 0, decisions: 0 },
        call: (signal) =>
          client.updateSubtask(
            { storyId, commandId, subtaskId, assignee },
            { signal, timeoutMs: options.deadlineMs },
          ),
      };
    }
    if (r < 0.85) {
      const n = plan.decisions;
      const affects = `t${Math.floor(plan.random() * plan.subtasks)}`;
      return {
        commandId,
        events: 1,
        adds: { subtasks: 0, decisions: 1 },
        call: (signal) =>
          client.addDecision(
            {
              storyId,
              commandId,
              decisionId: `d${n}`,
              title: `decision ${n}`,
              madeBy: "load",
              affectsSubtaskIds: [affects],
            },
            { signal, timeoutMs: options.deadlineMs },
          ),
      };
    }
    // Several events in one atomic batch: two subtasks and a decision on the first.
    const n = plan.subtasks;
    const d = plan.decisions;
    return {
      commandId,
      events: 3,
      adds: { subtasks: 2, decisions: 1 },
      call: (signal) =>
        client.applyChanges(
          {
            storyId,
            commandId,
            changes: [
              { change: { case: "addSubtask", value: { subtaskId: `t${n}`, title: `task ${n}` } } },
              {
                change: {
                  case: "addSubtask",
                  value: { subtaskId: `t${n + 1}`, title: `task ${n + 1}`, dependsOn: [`t${n}`] },
                },
              },
              {
                change: {
                  case: "addDecision",
                  value: {
                    decisionId: `d${d}`,
                    title: `decision ${d}`,
                    madeBy: "load",
                    affectsSubtaskIds: [`t${n}`, `t${n + 1}`],
                  },
                },
              },
            ],
          },
          { signal, timeoutMs: options.deadlineMs },
        ),
    };
  }

  async function send(plan: StoryPlan): Promise<void> {
    const { call, events, commandId, adds } = nextCommand(plan);
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await call(AbortSignal.timeout(options.deadlineMs + 5_000));
        count("OK");
        const result = response.result;
        if (result === undefined) throw new Error(`${commandId}: a response without a result`);
        ledger.push({
          commandId,
          storyId: plan.id,
          version: result.version,
          events,
          deduplicated: result.deduplicated,
          attempts: attempt,
        });
        acknowledged += events;
        // The client's view moves on only with what the service acknowledged.
        plan.created = true;
        plan.subtasks += adds.subtasks;
        plan.decisions += adds.decisions;
        plan.sent += 1;
        return;
      } catch (e) {
        const error = ConnectError.from(e);
        const name = Code[error.code] ?? String(error.code);
        count(name);
        if (!retriable.has(error.code) || Date.now() - started > options.giveUpMs) {
          failures.push({ commandId, code: name, message: error.rawMessage });
          const why = retriable.has(error.code)
            ? `still ${name} after ${Date.now() - started} ms`
            : name;
          throw new Error(
            `${phase}: ${plan.id} command ${commandId} failed (${why}): ${error.rawMessage}`,
            {
              cause: error,
            },
          );
        }
        await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * attempt)));
      }
    }
  }

  return {
    ledger,
    codes,
    failures,
    storyIds: plans.map((p) => p.id),
    events: () => acknowledged,
    setPhase(next) {
      phase = next;
    },
    async runUntil(target, more = () => false) {
      const busy = new Set<StoryPlan>();
      const worker = async () => {
        while (acknowledged < target || more()) {
          // The next story that has nothing in flight, round robin.
          let plan: StoryPlan | undefined;
          for (let i = 0; i < plans.length && plan === undefined; i++) {
            const candidate = plans[(nextStory + i) % plans.length] as StoryPlan;
            if (!busy.has(candidate)) plan = candidate;
          }
          nextStory = (nextStory + 1) % plans.length;
          if (plan === undefined) return;
          busy.add(plan);
          try {
            await send(plan);
          } finally {
            busy.delete(plan);
          }
        }
      };
      await Promise.all(Array.from({ length: options.concurrency }, worker));
    },
  };
}
