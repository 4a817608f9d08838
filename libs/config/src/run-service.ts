import { setFlagsFromString } from "node:v8";
import { isConfigError } from "./config-error.ts";
import { createLogger, type Logger } from "./logger.ts";

/** A started service: how to stop it gracefully. */
export interface StoppableService {
  stop(): Promise<void>;
}

/**
 * V8 flags every service runs with, set before any work starts.
 *
 * `--no-allocation-site-pretenuring`: V8 allocates the objects of an allocation site straight in
 * the old generation once enough of them have survived young collections. In the query bench it
 * did so for the messages a request decodes (snapshots, segments, events), which die within
 * milliseconds: a heap sampling profile of what outlived young collections was mostly those, the
 * old generation grew by about 5 MB per young collection, and each young collection (every
 * 0.2–0.3 s) took 8–15 ms scanning the references from them. protobuf-es builds every message at a
 * few shared allocation sites, the likely reason the decision spreads. Without pretenuring: 2–3 ms
 * and 0.5 MB per young collection, and GetContextAtTime's p99 on a 10,000-event story 5.5 and
 * 8.4 ms against 15.7 and 14.7 ms in alternating runs (docs/BENCHMARKS.md).
 */
const V8_FLAGS = ["--no-allocation-site-pretenuring"];

/**
 * The entry point every service shares: set the V8 flags, load the configuration (a bad variable
 * stops the process with a message naming it), start, and stop gracefully on SIGTERM or SIGINT
 * (once), exiting 0 on a clean stop and 1 otherwise.
 */
export async function runService<C extends { readonly LOG_LEVEL: string }>(
  name: string,
  load: () => C,
  start: (config: C, logger: Logger) => Promise<StoppableService>,
): Promise<void> {
  for (const flag of V8_FLAGS) setFlagsFromString(flag);
  const boot = createLogger({ name });
  try {
    const config = load();
    const logger = createLogger({ name, level: config.LOG_LEVEL });
    const service = await start(config, logger);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, "stopping");
      service.stop().then(
        () => process.exit(0),
        (e: unknown) => {
          logger.error({ err: e }, "unclean stop");
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  } catch (e) {
    if (isConfigError(e)) boot.fatal(e.message);
    else boot.fatal({ err: e }, `${name} failed to start`);
    process.exitCode = 1;
    // What the start opened before it failed (a NATS connection, a store client) would keep the
    // process alive, not serving: exit once the log line is out.
    setTimeout(() => process.exit(1), 500).unref();
  }
}
