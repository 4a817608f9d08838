import { eventStreamSchema, loadConfig, readModelSchema } from "@ctx/config";
import { type EventStreamNames, type SigningKey, signingKeyFromConfig } from "@ctx/event-store";
import type { ParkingNames } from "@ctx/projector";

import { connectNats, natsConnectionOf, natsConnectionSchema } from "@ctx/service";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { type NatsConnection, errors as natsErrors } from "@nats-io/transport-node";
import { z } from "zod";

/** ctx reads the same environment variables as the services (see docs/OPERATIONS.md). */
export const ctxConfigSchema = eventStreamSchema
  .extend(readModelSchema.shape)
  .extend(natsConnectionSchema.shape)
  .extend({
    /** The command service's event signing key: ctx signs the repairs it appends with it. */
    EVENT_SIGNING_KEY_FILE: z.string().min(1).optional(),
  });
export type CtxConfig = z.infer<typeof ctxConfigSchema>;

/** The signing key EVENT_SIGNING_KEY_FILE names, if any. @throws ConfigError */
export function ctxSigningKey(config: CtxConfig): SigningKey | undefined {
  return signingKeyFromConfig(config.EVENT_SIGNING_KEY_FILE, "EVENT_SIGNING_KEY_FILE");
}

export interface CtxEnv {
  readonly config: CtxConfig;
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly names: EventStreamNames;
  readonly parking: ParkingNames;
  close(): Promise<void>;
}

export async function openCtxEnv(): Promise<CtxEnv> {
  const config = loadConfig(ctxConfigSchema);
  // The operator's identity (NATS_NKEY_SEED_FILE, NATS_CREDS, ...; see docs/OPERATIONS.md).
  const nc = await connectNats(natsConnectionOf(config), { name: "ctx", timeout: 5_000 });
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    await untilJetStreamAnswers(jsm);
    return {
      config,
      nc,
      jsm,
      names: { stream: config.EVENT_STREAM, subjectPrefix: config.EVENT_SUBJECT_PREFIX },
      parking: { stream: config.PARKED_STREAM, subjectPrefix: config.PARKED_SUBJECT_PREFIX },
      close: () => nc.drain(),
    };
  } catch (e) {
    // An open connection keeps the process alive: the command would hang after its error.
    await nc.close().catch(() => undefined);
    throw e;
  }
}

/**
 * Asks for the account's JetStream info until it comes, for up to `waitMs`. In a cluster the
 * JetStream API goes unanswered while the servers elect a new meta leader (a few seconds after
 * the leader was lost): an operator's command waits for the election instead of failing in it.
 */
export async function untilJetStreamAnswers(
  jsm: JetStreamManager,
  waitMs = jetStreamWaitMs,
): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await jsm.getAccountInfo();
      return;
    } catch (e) {
      if (!(e instanceof natsErrors.TimeoutError) || Date.now() + retryPauseMs >= deadline) throw e;
      await new Promise((r) => setTimeout(r, retryPauseMs));
    }
  }
}

/** How long a command waits for JetStream to answer: longer than a meta leader election. */
const jetStreamWaitMs = 30_000;
const retryPauseMs = 250;

/** Runs a command with the environment open, closing it whatever happens. */
export async function withCtxEnv<T>(run: (env: CtxEnv) => Promise<T>): Promise<T> {
  const env = await openCtxEnv();
  try {
    return await run(env);
  } finally {
    await env.close();
  }
}
