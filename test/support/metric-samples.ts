/**
 * Sums the samples of one metric in the Prometheus text format: all of them, or those whose labels
 * include every one of `labels`.
 */
export function sumOfSamples(
  text: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (match?.[1] !== name) continue;
    const have = (match[2] ?? "").split(",");
    if (wanted.every((label) => have.includes(label))) sum += Number(match[3]);
  }
  return sum;
}

/**
 * The sum of a Prometheus metric's samples (those whose labels include every one of `labels`, or
 * all; 0 when there is none) on a service's ops endpoint.
 */
export async function metricSum(
  opsPort: number,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> {
  const page = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  return sumOfSamples(page, name, labels);
}
