import { createLogger, isConfigError } from "@ctx/config";
import { startProjectorApp } from "./app.ts";
import { loadProjectorConfig } from "./config.ts";

// Entry point: `PROJECTION=neo4j|valkey node services/projector/src/main.ts`; see docs/OPERATIONS.md.
const boot = createLogger({ name: "projector" });
try {
  const config = loadProjectorConfig();
  const logger = createLogger({ name: `projector-${config.PROJECTION}`, level: config.LOG_LEVEL });
  const app = await startProjectorApp(config, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping: handing partitions over");
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
  else boot.fatal({ err: e }, "projector failed to start");
  process.exitCode = 1;
}
