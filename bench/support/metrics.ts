/** Sum and count of a Prometheus histogram (or summary), over the series whose labels match. */
export interface SumCount {
  readonly sum: number;
  readonly count: number;
}

/**
 * One read of a Prometheus text endpoint. Read everything a phase needs from one scrape: collecting
 * resets some metrics (prom-client's event-loop lag restarts at every collect).
 */
export async function scrape(url: string): Promise<string> {
  return (await fetch(url)).text();
}

/**
 * `{name}_sum` and `{name}_count` of a histogram, adding up the series whose label text contains
 * every one of `labels` (e.g. `method="AddSubtask"`).
 */
export function histogram(text: string, name: string, labels: readonly string[] = []): SumCount {
  let sum = 0;
  let count = 0;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const [, metric, labelText = "", value] = match;
    if (!labels.every((l) => labelText.includes(l))) continue;
    if (metric === `${name}_sum`) sum += Number(value);
    if (metric === `${name}_count`) count += Number(value);
  }
  return { sum, count };
}

/** The value of a gauge (its first series); NaN when absent. */
export function gauge(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/**
 * How often prom-client's event-loop monitor (and the benches' own) samples: Node's
 * monitorEventLoopDelay records the whole interval between samples, so an idle loop reads 10 ms.
 */
export const LOOP_MONITOR_RESOLUTION_MS = 10;

/**
 * An event-loop delay gauge of prom-client's default metrics (`nodejs_eventloop_lag_*_seconds`) in
 * milliseconds beyond the sampling interval: the time the loop was actually late.
 */
export function loopDelayMs(text: string, name: string): number {
  return gauge(text, name) * 1000 - LOOP_MONITOR_RESOLUTION_MS;
}

/** Mean in milliseconds of what a histogram observed (in seconds) between two scrapes. */
export function meanMs(before: SumCount, after: SumCount): number {
  const count = after.count - before.count;
  return count > 0 ? ((after.sum - before.sum) / count) * 1000 : Number.NaN;
}

/**
 * The cumulative bucket counts of a histogram (`le` in seconds → observations at or below it),
 * adding up the series whose label text contains every one of `labels`.
 */
export function buckets(
  text: string,
  name: string,
  labels: readonly string[] = [],
): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}_bucket{`)) continue;
    const match = /^[^{]+\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!match) continue;
    const [, labelText = "", value] = match;
    if (!labels.every((l) => labelText.includes(l))) continue;
    const le = /le="([^"]+)"/.exec(labelText)?.[1];
    if (le === undefined) continue;
    const bound = le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
    out.set(bound, (out.get(bound) ?? 0) + Number(value));
  }
  return out;
}

/**
 * What a histogram observed between two scrapes, as the share of observations at or below each
 * bucket bound (bounds in milliseconds), and the smallest bound that holds 99 % of them: a p99 known
 * only to the histogram's resolution.
 */
export function bucketShares(
  before: Map<number, number>,
  after: Map<number, number>,
): {
  readonly shares: readonly { readonly ms: number; readonly share: number }[];
  readonly p99AtMostMs: number;
} {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total =
    (after.get(Number.POSITIVE_INFINITY) ?? 0) - (before.get(Number.POSITIVE_INFINITY) ?? 0);
  const shares = bounds.map((b) => ({
    ms: b * 1000,
    share: total > 0 ? ((after.get(b) ?? 0) - (before.get(b) ?? 0)) / total : Number.NaN,
  }));
  const p99 = shares.find((s) => s.share >= 0.99);
  return { shares, p99AtMostMs: p99?.ms ?? Number.NaN };
}
