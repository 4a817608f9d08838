import { createLogger, isConfigError } from "@ctx/config";
import { startCommandApp } from "./app.ts";
import { loadCommandConfig } from "./config.ts";

// Entry point: `node services/command/src/main.ts`. Configuration: see config.ts and docs/OPERATIONS.md.
const boot = createLogger({ name: "command-service" });
try {
  const config = loadCommandConfig();
  const logger = createLogger({ name: "command-service", level: config.LOG_LEVEL });
  const app = await startCommandApp(config, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    app.stop().then(
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
  else boot.fatal({ err: e }, "command service failed to start");
  process.exitCode = 1;
}
