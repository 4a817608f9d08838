/** Sums the samples of one metric in the Prometheus text format, whatever their labels. */
export function sumOfSamples(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match?.[1] === name) sum += Number(match[2]);
  }
  return sum;
}
