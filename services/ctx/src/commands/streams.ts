import { provisionEventStream } from "@ctx/event-store";
import { provisionParking } from "@ctx/projector";
import { withCtxEnv } from "../ctx-env.ts";

/** `ctx streams provision`: creates or updates the event and parked streams (idempotent). */
export async function provisionStreams(print: (line: string) => void): Promise<void> {
  await withCtxEnv(async ({ config, jsm, parking }) => {
    const info = await provisionEventStream(jsm, {
      stream: config.EVENT_STREAM,
      subjectPrefix: config.EVENT_SUBJECT_PREFIX,
      partitions: config.EVENT_PARTITIONS,
      replicas: config.EVENT_STREAM_REPLICAS,
      duplicateWindowMs: config.EVENT_DUPLICATE_WINDOW_MS,
    });
    print(
      `${info.config.name}: ${info.state.messages} events, ${config.EVENT_PARTITIONS} partitions, replicas ${info.config.num_replicas}, subjects ${info.config.subjects?.join(" ")}`,
    );
    await provisionParking(jsm, parking, config.EVENT_STREAM_REPLICAS);
    print(`${parking.stream}: ready`);
  });
}
