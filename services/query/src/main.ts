import { createLogger, isConfigError } from "@ctx/config";
import { startQueryApp } from "./app.ts";
import { loadQueryConfig } from "./config.ts";

// Entry point: `node services/query/src/main.ts`. Configuration: see config.ts and docs/QUERY.md.
const boot = createLogger({ name: "query-service" });
try {
  const config = loadQueryConfig();
  const logger = createLogger({ name: "query-service", level: config.LOG_LEVEL });
  const app = await startQueryApp(config, logger);
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
  else boot.fatal({ err: e }, "query service failed to start");
  process.exitCode = 1;
}
