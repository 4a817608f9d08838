import { type LatencySummary, summarize } from "./stats.ts";

export interface ClosedLoopOptions {
  /** Workers, each with one call in flight at a time. */
  readonly concurrency: number;
  /**
   * Either a fixed number of calls (all measured), or a time window: `warmupMs` of calls that are not
   * counted, then `durationMs` whose completions are.
   */
  readonly count?: number;
  readonly warmupMs?: number;
  readonly durationMs?: number;
  /** One call; `worker` is 0 … concurrency-1, `index` counts calls across workers. */
  readonly call: (worker: number, index: number) => Promise<unknown>;
}

export interface LoadResult {
  readonly concurrency: number;
  /** Calls that succeeded in the measured window. */
  readonly calls: number;
  /** Calls that failed in the measured window. */
  readonly errors: number;
  readonly seconds: number;
  /** Successful calls a second. */
  readonly perSecond: number;
  readonly latencyMs: LatencySummary;
  /** A few distinct error messages, for the report. */
  readonly errorSamples: readonly string[];
}

/**
 * A closed-loop load: `concurrency` workers each issue a call, wait for it, and issue the next, so
 * exactly `concurrency` calls are in flight. Latency is measured per call around the awaited promise.
 */
export async function closedLoop(options: ClosedLoopOptions): Promise<LoadResult> {
  const timed = options.count === undefined;
  const begin = performance.now();
  const measureFrom = timed ? begin + (options.warmupMs ?? 0) : begin;
  const measureTo = timed ? measureFrom + (options.durationMs ?? 10_000) : Number.POSITIVE_INFINITY;
  const latencies: number[] = [];
  const errorSamples = new Set<string>();
  let errors = 0;
  let issued = 0;
  let lastEnd = begin;

  async function worker(id: number): Promise<void> {
    for (;;) {
      if (timed ? performance.now() >= measureTo : issued >= (options.count as number)) return;
      const index = issued++;
      const start = performance.now();
      let failed = false;
      try {
        await options.call(id, index);
      } catch (e) {
        failed = true;
        if (errorSamples.size < 5) errorSamples.add(e instanceof Error ? e.message : String(e));
      }
      const end = performance.now();
      if (end < measureFrom || end > measureTo) continue;
      lastEnd = Math.max(lastEnd, end);
      if (failed) errors++;
      else latencies.push(end - start);
    }
  }

  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => worker(i)));
  const seconds = ((timed ? measureTo : lastEnd) - measureFrom) / 1000;
  return {
    concurrency: options.concurrency,
    calls: latencies.length,
    errors,
    seconds,
    perSecond: latencies.length / seconds,
    latencyMs: summarize(latencies),
    errorSamples: [...errorSamples],
  };
}

/**
 * Hands out random stories that no other worker is writing right now, so concurrent writers never
 * race on one story: the benchmark measures appends, not conflict retries. Same policy for the
 * command service and the raw baseline.
 */
export class StoryPicker {
  readonly #busy: Uint8Array;

  constructor(stories: number) {
    this.#busy = new Uint8Array(stories);
  }

  /** Runs `use` with a story index held for its duration. */
  async with<T>(use: (story: number) => Promise<T>): Promise<T> {
    let story: number;
    do story = Math.floor(Math.random() * this.#busy.length);
    while (this.#busy[story] === 1);
    this.#busy[story] = 1;
    try {
      return await use(story);
    } finally {
      this.#busy[story] = 0;
    }
  }
}
