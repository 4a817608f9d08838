/**
 * The value of one series of a Prometheus metric on a service's ops endpoint: the series named
 * `name` whose labels include every one of `labels`, summed; 0 when there is none.
 */
export async function metricValue(
  opsPort: number,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const labelText = match[2] ?? "";
    if (wanted.every((l) => labelText.includes(l))) sum += Number(match[3]);
  }
  return sum;
}
