import { isConfigError } from "./config-error.ts";
import { createLogger, type Logger } from "./logger.ts";

/** A started service: how to stop it gracefully. */
export interface StoppableService {
  stop(): Promise<void>;
}

/**
 * The entry point every service shares: load the configuration (a bad variable stops the process
 * with a message naming it), start, and stop gracefully on SIGTERM or SIGINT (once), exiting 0 on a
 * clean stop and 1 otherwise.
 */
export async function runService<C extends { readonly LOG_LEVEL: string }>(
  name: string,
  load: () => C,
  start: (config: C, logger: Logger) => Promise<StoppableService>,
): Promise<void> {
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
  }
}
