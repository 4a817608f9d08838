import { createLogger } from "@ctx/config";
import type { EventStreamSettings } from "@ctx/event-store";
import { loadQueryConfig, startQueryApp } from "@ctx/query-service";
import { runVerifyChain, stack, storeEnv, testAuth, uniqueName } from "@ctx/test-support";

const logger = createLogger({ name: "python-verifier", level: "silent", pretty: false });

/** What tools/audit/verify_chain.py --all --json said, and its exit code. */
export interface PythonVerdict {
  readonly code: number | null;
  readonly result: {
    readonly messages: number;
    readonly stories: number;
    readonly checkpoints: { found: number; matched: number; signatures_checked: boolean };
    readonly breaks: readonly { sequence: number; story: string; version: number; kind: string }[];
  };
}

/**
 * The independent verifier run over a whole stream as an auditor runs it: against a query service
 * started for the stream (its ContextAuditService), with `extra` arguments (e.g. --keys D).
 */
export async function pythonVerifyAll(
  settings: EventStreamSettings,
  ...extra: string[]
): Promise<PythonVerdict> {
  const s = stack();
  const app = await startQueryApp(
    loadQueryConfig({
      ...s.natsEnv,
      ...storeEnv(s, "query"),
      ...testAuth().env,
      EVENT_STREAM: settings.stream,
      EVENT_SUBJECT_PREFIX: settings.subjectPrefix,
      EVENT_PARTITIONS: String(settings.partitions),
      READ_MODEL_NAMESPACE: uniqueName("verify"),
      QUERY_LISTEN: "127.0.0.1:0",
      QUERY_OPS_LISTEN: "127.0.0.1:0",
      SNAPSHOTS: "off",
      SNAPSHOTTER: "off",
      SHUTDOWN_GRACE_MS: "1000",
      LOG_LEVEL: "silent",
    }),
    logger,
  );
  try {
    return await runVerifyChain<PythonVerdict["result"]>(`http://127.0.0.1:${app.rpcPort}`, [
      "--all",
      ...extra,
    ]);
  } finally {
    await app.stop();
  }
}
