import PDFDocument from "pdfkit";
import SVGtoPDF from "svg-to-pdfkit";
import { type ChartOf, chartSvg } from "./charts.ts";
import type { AuditReport, Count } from "./collect.ts";

/** A section of the report: a heading, sentences, and tables (header row first). */
interface Section {
  readonly heading: string;
  readonly lines: readonly string[];
  readonly tables: readonly (readonly (readonly string[])[])[];
  readonly chart?: ChartOf;
}

const BREAKS_LISTED = 50;

/** The report's content, the same whatever the format. */
function sections(r: AuditReport): Section[] {
  const v = r.verification;
  const cp = v.checkpoints;
  const counts = (title: string, list: readonly Count[]) => [
    [title, "events"],
    ...list.map((c) => [c.key, String(c.count)]),
  ];
  const unit = r.events.timeUnit;
  return [
    {
      heading: "Verification of the whole history",
      lines: [
        v.breaks.length === 0
          ? `Every hash chain is intact: ${v.messages} messages of ${v.stories} stories verified from the stored bytes.`
          : `${v.breaks.length} break(s) of the hash chains found in ${v.messages} messages of ${v.stories} stories.`,
        cp === undefined || cp.found === 0
          ? "No signed checkpoint exists: nothing proves the history was not rewritten and hashed again (ctx audit checkpoint)."
          : `${cp.matched} of ${cp.found} signed checkpoints match the stream${cp.signaturesChecked ? ", signatures checked" : "; signatures NOT checked (no keys given)"}.`,
        v.eventSignatures.signed === 0
          ? "No event is signed (EVENT_SIGNING_KEY_FILE of the command service)."
          : `${v.eventSignatures.signed} events are signed${v.eventSignatures.checked ? ", signatures checked" : "; signatures NOT checked (no event keys given)"}; ${v.eventSignatures.unsigned} are not.`,
      ],
      tables:
        v.breaks.length === 0
          ? []
          : [
              [
                ["stream seq", "story", "version", "break", "detail"],
                ...v.breaks
                  .slice(0, BREAKS_LISTED)
                  .map((b) => [
                    String(b.sequence),
                    b.storyId,
                    String(b.version),
                    b.kind,
                    b.detail.slice(0, 160),
                  ]),
              ],
            ],
    },
    {
      heading: `Events stored per ${unit}`,
      lines: [`${r.events.total} events were stored in the period.`],
      tables: [],
      chart: { title: `Events per ${unit}`, counts: r.events.byTime, along: "x", axis: unit },
    },
    {
      heading: "Events per type",
      lines: [],
      tables: [counts("event type", r.events.byType)],
      chart: { title: "Events per type", counts: r.events.byType, along: "y", axis: "event type" },
    },
    {
      heading: "Events per actor",
      lines: [
        "The principal the command service recorded on each event (JWT subject or certificate).",
      ],
      tables: [counts("actor", r.events.byActor)],
      chart: { title: "Events per actor", counts: r.events.byActor, along: "y", axis: "actor" },
    },
    {
      heading: "Signed checkpoints in the period",
      lines: r.checkpoints.length === 0 ? ["None was signed in the period."] : [],
      tables:
        r.checkpoints.length === 0
          ? []
          : [
              [
                ["signed at", "up to stream seq", "messages", "key"],
                ...r.checkpoints.map((c) => [
                  c.signedAt,
                  String(c.lastSequence),
                  String(c.messages),
                  c.keyId,
                ]),
              ],
            ],
    },
    {
      heading: "Parked events (quarantined by the projectors)",
      lines: [
        r.parked.total === 0
          ? "No event was parked in the period."
          : `${r.parked.total} event(s) parked in the period: ${r.parked.byProjection.map((c) => `${c.count} by ${c.key}`).join(", ")}.`,
      ],
      tables:
        r.parked.entries.length === 0
          ? []
          : [
              [
                ["parked at", "model", "story", "stream seq", "type", "reason"],
                ...r.parked.entries.map((p) => [
                  p.parkedAt,
                  p.projection,
                  p.storyId,
                  String(p.sequence),
                  p.eventType,
                  p.reason.slice(0, 120),
                ]),
              ],
            ],
    },
    {
      heading: "Operator repairs (ctx stories repair)",
      lines: r.repairs.length === 0 ? ["No story was repaired in the period."] : [],
      tables:
        r.repairs.length === 0
          ? []
          : [
              [
                ["at", "story", "version", "operator", "set aside", "reason"],
                ...r.repairs.map((x) => [
                  x.at,
                  x.storyId,
                  String(x.version),
                  x.operator,
                  x.setAside.join(" "),
                  x.reason.slice(0, 120),
                ]),
              ],
            ],
    },
    {
      heading: "Rebuilds (ctx projections rebuild)",
      lines: r.operations.length === 0 ? ["No projection was rebuilt in the period."] : [],
      tables:
        r.operations.length === 0
          ? []
          : [
              [
                ["at", "action", "operator", "outcome", "what"],
                ...r.operations.map((o) =>
                  "unreadable" in o
                    ? [o.at, "?", "?", "?", o.unreadable]
                    : [o.at, o.action, o.operator, o.outcome, o.detail.slice(0, 160)],
                ),
              ],
            ],
    },
  ];
}

const title = (r: AuditReport) => `Audit report of ${r.stream}`;
const period = (r: AuditReport) =>
  `From ${r.from} to ${r.to} (stored time, UTC). Generated ${r.generatedAt}.`;

/** Markdown: tables, and bars of text where the other formats draw charts. */
export function renderMarkdown(r: AuditReport): string {
  const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/[\r\n]+/g, " ");
  const out = [`# ${title(r)}`, "", period(r), ""];
  for (const s of sections(r)) {
    out.push(`## ${s.heading}`, "");
    for (const line of s.lines) out.push(line, "");
    if (s.chart?.along === "x") {
      const max = Math.max(1, ...s.chart.counts.map((c) => c.count));
      out.push("```");
      for (const c of s.chart.counts) {
        out.push(`${c.key}  ${"█".repeat(Math.round((30 * c.count) / max)).padEnd(30)} ${c.count}`);
      }
      out.push("```", "");
    }
    for (const [head, ...rows] of s.tables) {
      if (head === undefined) continue;
      out.push(`| ${head.map(cell).join(" | ")} |`, `|${head.map(() => "---").join("|")}|`);
      for (const row of rows) out.push(`| ${row.map(cell).join(" | ")} |`);
      out.push("");
    }
  }
  return out.join("\n");
}

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

/** One self-contained HTML page: the charts inlined as SVG, no script, no outside resource. */
export async function renderHtml(r: AuditReport): Promise<string> {
  const body: string[] = [];
  for (const s of sections(r)) {
    body.push(`<h2>${escapeHtml(s.heading)}</h2>`);
    for (const line of s.lines) body.push(`<p>${escapeHtml(line)}</p>`);
    if (s.chart) body.push(`<figure>${await chartSvg(s.chart)}</figure>`);
    for (const [head, ...rows] of s.tables) {
      if (head === undefined) continue;
      body.push(
        "<table>",
        `<tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr>`,
        ...rows.map((row) => `<tr>${row.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`),
        "</table>",
      );
    }
  }
  return [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(title(r))}</title>`,
    "<style>body{font-family:Helvetica,Arial,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}",
    "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;font-size:.9rem}",
    "figure{margin:1rem 0}</style></head><body>",
    `<h1>${escapeHtml(title(r))}</h1>`,
    `<p>${escapeHtml(period(r))}</p>`,
    ...body,
    "</body></html>",
    "",
  ].join("\n");
}

/** A PDF (A4), drawn with PDFKit; the charts are Vega-Lite's SVG drawn into it. */
export async function renderPdf(r: AuditReport): Promise<Uint8Array> {
  const all = sections(r);
  const charts = new Map<ChartOf, string>();
  for (const s of all) if (s.chart) charts.set(s.chart, await chartSvg(s.chart));
  // A fixed creation date: the same report renders to the same bytes.
  const doc = new PDFDocument({
    size: "A4",
    margin: 50,
    info: { Title: title(r), Creator: "ctx audit report", CreationDate: new Date(r.generatedAt) },
  });
  const chunks: Buffer[] = [];
  doc.on("data", (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<void>((resolve, reject) => {
    doc.on("end", resolve);
    doc.on("error", reject);
  });
  const width = doc.page.width - 100;
  const roomFor = (height: number) => {
    if (doc.y + height > doc.page.height - 50) doc.addPage();
  };
  doc.font("Helvetica-Bold").fontSize(18).text(title(r));
  doc.font("Helvetica").fontSize(9).fillColor("#555").text(period(r)).fillColor("black");
  for (const s of all) {
    roomFor(60);
    doc.moveDown(1).font("Helvetica-Bold").fontSize(13).text(s.heading).moveDown(0.3);
    doc.font("Helvetica").fontSize(10);
    for (const line of s.lines) doc.text(line, { width }).moveDown(0.2);
    const svg = s.chart && charts.get(s.chart);
    if (svg !== undefined) {
      // Scaled down to the page's width when the chart (its labels included) is wider.
      const size = (name: "width" | "height") =>
        Number((name === "width" ? /width="([\d.]+)"/ : /height="([\d.]+)"/).exec(svg)?.[1] ?? 200);
      const scale = Math.min(1, width / size("width"));
      const [w, h] = [size("width") * scale, size("height") * scale];
      roomFor(h + 10);
      SVGtoPDF(doc, svg, 50, doc.y, {
        width: w,
        height: h,
        preserveAspectRatio: "xMinYMin meet",
        assumePt: true,
      });
      doc.y += h + 10;
      doc.x = 50;
    }
    for (const [head, ...rows] of s.tables) {
      if (head === undefined) continue;
      // Each column as wide as its longest cell asks (up to 60 characters), in proportion.
      const weights = head.map((h, i) =>
        Math.max(h.length, 4, ...rows.map((cells) => Math.min(60, (cells[i] ?? "").length))),
      );
      const sum = weights.reduce((a, b) => a + b, 0);
      const columns = weights.map((w) => (width * w) / sum);
      const row = (cells: readonly string[], bold: boolean) => {
        doc.font(bold ? "Helvetica-Bold" : "Helvetica").fontSize(8);
        const height = Math.max(
          ...cells.map((c, i) => doc.heightOfString(c, { width: (columns[i] ?? 0) - 4 })),
        );
        roomFor(height + 4);
        const y = doc.y;
        let x = 50;
        cells.forEach((c, i) => {
          doc.text(c, x, y, { width: (columns[i] ?? 0) - 4 });
          x += columns[i] ?? 0;
        });
        doc.x = 50;
        doc.y = y + height + 4;
      };
      row(head, true);
      for (const cells of rows) row(cells, false);
      doc.fontSize(10).moveDown(0.5);
    }
  }
  doc.end();
  await done;
  return new Uint8Array(Buffer.concat(chunks));
}
