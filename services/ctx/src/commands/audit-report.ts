import { writeFileSync } from "node:fs";
import { ConfigError } from "@ctx/config";
import { type AuditReport, collectAuditReport } from "../audit-report/collect.ts";
import { renderHtml, renderMarkdown, renderPdf } from "../audit-report/render.ts";
import { createOutput, type View } from "../cli/output.ts";
import { withCtxEnv } from "../ctx-env.ts";
import { loadCheckpointKeys } from "./audit.ts";

export type ReportFormat = "md" | "html" | "pdf";

export interface AuditReportOptions {
  readonly from?: Date;
  readonly to?: Date;
  readonly format: ReportFormat;
  readonly out?: string;
  readonly keys?: string;
  readonly eventKeys?: string;
}

/** What `ctx audit report` wrote. */
export interface AuditReportWritten {
  readonly format: ReportFormat;
  /** The file, or undefined when the report went to stdout. */
  readonly file?: string;
  readonly bytes: number;
  readonly breaks: number;
}

export const auditReportWrittenView: View<AuditReportWritten> = {
  text: (w) =>
    w.file === undefined
      ? []
      : [`audit report (${w.format}, ${w.bytes} bytes) written to ${w.file}`],
  exitCode: (w) => (w.breaks > 0 ? 1 : 0),
};

export const auditReportDataView: View<AuditReport> = {
  text: () => [],
  exitCode: (r) => (r.verification.breaks.length > 0 ? 1 : 0),
};

const WEEK_MS = 7 * 86_400_000;

/** The period asked for: `to` defaults to now, `from` to a week before `to`. */
export function reportPeriod(options: Pick<AuditReportOptions, "from" | "to">): {
  from: Date;
  to: Date;
} {
  const to = options.to ?? new Date();
  const from = options.from ?? new Date(to.getTime() - WEEK_MS);
  if (from >= to) {
    throw new ConfigError([{ variable: "--from", message: "must be before --to" }]);
  }
  return { from, to };
}

/**
 * `ctx audit report [--from T] [--to T] [--format md|html|pdf] [--out F] [--keys D]`: the period's
 * events per type, actor and day, the whole history verified (chains, checkpoints), parked events,
 * repairs and rebuilds; as data with --json. Exits 1 when the verification found a break, so a
 * scheduled run fails visibly.
 */
export async function collectReport(options: AuditReportOptions): Promise<AuditReport> {
  const period = reportPeriod(options);
  const keys = {
    keys: options.keys === undefined ? undefined : loadCheckpointKeys(options.keys),
    eventKeys:
      options.eventKeys === undefined
        ? undefined
        : loadCheckpointKeys(options.eventKeys, "--event-keys"),
  };
  // Progress goes to stderr: stdout may be the report itself.
  const progress = createOutput({
    json: false,
    write: (line) => process.stderr.write(`${line}\n`),
  });
  return await withCtxEnv((env) => collectAuditReport(env, period, keys, progress));
}

export async function writeReport(options: AuditReportOptions): Promise<AuditReportWritten> {
  if (options.format === "pdf" && options.out === undefined && process.stdout.isTTY) {
    throw new ConfigError([
      { variable: "--out", message: "a PDF goes to a file (--out report.pdf) or a pipe" },
    ]);
  }
  const report = await collectReport(options);
  const bytes =
    options.format === "pdf"
      ? await renderPdf(report)
      : new TextEncoder().encode(
          options.format === "html" ? await renderHtml(report) : renderMarkdown(report),
        );
  if (options.out === undefined) {
    process.stdout.write(bytes);
  } else {
    writeFileSync(options.out, bytes, { mode: 0o640 });
  }
  return {
    format: options.format,
    ...(options.out === undefined ? {} : { file: options.out }),
    bytes: bytes.length,
    breaks: report.verification.breaks.length,
  };
}
