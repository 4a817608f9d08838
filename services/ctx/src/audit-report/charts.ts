import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { Count } from "./collect.ts";

/** A chart of the report: its title and its counts, drawn as bars. */
export interface ChartOf {
  readonly title: string;
  readonly counts: readonly Count[];
  /** Bars along x (a time line), or along y (categories, largest first). */
  readonly along: "x" | "y";
  readonly axis: string;
}

/** At most this many categories in a chart (the tables list them all). */
const MAX_BARS = 15;

/**
 * The chart as SVG, drawn by Vega-Lite without a browser or a canvas (vega's SVG string
 * renderer): inlined in the HTML report and drawn into the PDF.
 */
export async function chartSvg(chart: ChartOf): Promise<string> {
  const values = (chart.along === "y" ? chart.counts.slice(0, MAX_BARS) : chart.counts).map(
    (c) => ({ key: c.key, count: c.count }),
  );
  const category = {
    field: "key",
    type: "ordinal" as const,
    title: chart.axis,
    sort: chart.along === "y" ? ("-x" as const) : null,
  };
  const amount = { field: "count", type: "quantitative" as const, title: "events" };
  const spec: TopLevelSpec = {
    width: 440,
    height: chart.along === "y" ? Math.max(60, 18 * values.length) : 160,
    title: chart.title,
    background: "white",
    data: { values },
    mark: { type: "bar", color: "#4c78a8" },
    encoding: chart.along === "x" ? { x: category, y: amount } : { y: category, x: amount },
    config: { font: "Helvetica", view: { stroke: null } },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
