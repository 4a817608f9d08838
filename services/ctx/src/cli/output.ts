import { SingleBar } from "cli-progress";

// How ctx reports: every command that reports something returns a structured result, and this
// file renders it, once, as the human text (the command's view) or as one JSON document (--json).

/** How a command's result reads to a person, and what it means for the exit code. */
export interface View<T> {
  /** The lines a person reads on stdout. */
  text(result: T): readonly string[];
  /** The exit code the result calls for (default 0): e.g. 1 when a check found a problem. */
  exitCode?(result: T): number;
  /** An error to fail with after the result is shown (a rebuild that failed, a restore that differs). */
  failure?(result: T): Error | undefined;
}

/** Where and how a command reports while it runs. */
export interface Output {
  /** One JSON document on stdout, nothing else there. */
  readonly json: boolean;
  /** Progress bars (and their ANSI codes) on stderr: a terminal, NO_COLOR unset, not --json. */
  readonly bars: boolean;
  /** A line while the command runs (progress where there is no bar, a step done): none with --json. */
  note(line: string): void;
}

export interface OutputSettings {
  readonly json: boolean;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Whether stderr, where progress bars go, is a terminal. */
  readonly stderrIsTty?: boolean;
  readonly write?: (line: string) => void;
}

/** NO_COLOR (https://no-color.org): set and not empty, no colours or bars. */
function colourAllowed(env: Readonly<Record<string, string | undefined>>): boolean {
  return (env.NO_COLOR ?? "") === "";
}

export function createOutput(settings: OutputSettings): Output {
  const env = settings.env ?? process.env;
  const write = settings.write ?? ((line: string) => console.log(line));
  const tty = settings.stderrIsTty ?? process.stderr.isTTY === true;
  return {
    json: settings.json,
    bars: !settings.json && tty && colourAllowed(env),
    note: (line) => {
      if (!settings.json) write(line);
    },
  };
}

/**
 * Shows a command's result: its view's lines, or the result as one JSON document. Returns the exit
 * code the result calls for; throws the view's failure, if any, after the result is out.
 */
export function render<T>(
  result: T,
  view: View<T>,
  output: Pick<Output, "json">,
  write: (line: string) => void = (line) => console.log(line),
): number {
  if (output.json) write(JSON.stringify(result));
  else for (const line of view.text(result)) write(line);
  const failure = view.failure?.(result);
  if (failure !== undefined) throw failure;
  return view.exitCode?.(result) ?? 0;
}

/**
 * Progress of a scan over `total` stored messages: a bar on a terminal (see Output.bars), nothing
 * otherwise. `update` is cheap to call for every message.
 */
export function scanProgress(
  output: Output,
  total: number,
  label: string,
): { update(done: number): void; stop(done: number): void } {
  const bar =
    output.bars && total > 0
      ? new SingleBar({
          format: `${label} [{bar}] {percentage}% | {value}/{total} messages | ETA {eta_formatted}`,
        })
      : undefined;
  bar?.start(total, 0);
  return {
    update(done) {
      if (done % 1_000 === 0) bar?.update(done);
    },
    stop(done) {
      bar?.update(done);
      bar?.stop();
    },
  };
}

/** A failure as ctx prints it on stderr: `ctx: message`, or with --json `{"error": {...}}`. */
export function failureText(
  message: string,
  json: boolean,
  extra: { readonly name?: string; readonly exitCode: number },
): string {
  return json
    ? JSON.stringify({
        error: { message, ...(extra.name ? { name: extra.name } : {}), exitCode: extra.exitCode },
      })
    : `ctx: ${message}`;
}

/** A plain text table: the first row is the header. */
export function table(rows: readonly (readonly (string | number)[])[]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0]?.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length))) ?? [];
  return cells
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** ctx's exit codes (docs/OPERATIONS.md, "Exit codes"). */
export const exitCodes = {
  /** Done; a check found nothing wrong. */
  ok: 0,
  /** The operation failed, or a check found a problem it reports (events stats, stories check). */
  failed: 1,
  /** Usage: an unknown command or option, a missing or bad value. */
  usage: 2,
  /** Interrupted (Ctrl-C) and stopped cleanly. */
  interrupted: 130,
} as const;
