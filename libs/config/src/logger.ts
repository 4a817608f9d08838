import { type Logger, pino } from "pino";

export type { Logger } from "pino";

export interface LoggerOptions {
  /** Service or component name, on every line. */
  readonly name: string;
  readonly level?: string;
  /** Human-readable output; defaults to "stdout is a terminal". JSON otherwise. */
  readonly pretty?: boolean;
}

/** A pino logger: JSON lines for machines, pretty output on a terminal. */
export function createLogger(options: LoggerOptions): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  return pino({
    name: options.name,
    level: options.level ?? "info",
    ...(pretty
      ? { transport: { target: "pino-pretty", options: { colorize: true, singleLine: true } } }
      : {}),
  });
}
