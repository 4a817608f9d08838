import { setTimeout as sleep } from "node:timers/promises";
import { type LatencySummary, summarize } from "./stats.ts";

export interface OpenLoopOptions {
  /** Calls a second, on a fixed schedule: call i is due at start + i / rate. */
  readonly ratePerSecond: number;
  /** Calls due in the first `warmupMs` are made but not counted. */
  readonly warmupMs: number;
  /** Calls due in the next `durationMs` are counted (their latency, even if they end later). */
  readonly durationMs: number;
  /** One call; `index` counts calls. */
  readonly call: (index: number) => Promise<unknown>;
  /**
   * Calls in flight at most (default 10,000): a due call beyond it is not made and counted as
   * dropped, so a stalled service cannot make the client pile up calls without bound.
   */
  readonly maxInFlight?: number;
}

export interface OpenLoopResult {
  readonly ratePerSecond: number;
  readonly seconds: number;
  /** Calls due in the measured window. */
  readonly scheduled: number;
  /** Calls of the window that succeeded. */
  readonly calls: number;
  readonly errors: number;
  /** Calls of the window not made because `maxInFlight` calls were in flight. */
  readonly dropped: number;
  /** Successful calls of the window a second: the achieved rate. */
  readonly perSecond: number;
  /** From the time a call was due to its answer: includes any delay of the client in sending it. */
  readonly latencyMs: LatencySummary;
  /** From the time a call was actually sent to its answer. */
  readonly fromSendMs: LatencySummary;
  /** How late calls were sent after their due time (a busy client event loop, timer granularity). */
  readonly sendDelayMs: LatencySummary;
  readonly errorSamples: readonly string[];
}

/**
 * An open-loop load: calls go out on a fixed schedule whether or not earlier ones have answered, as
 * independent clients would send them. Unlike a closed loop, a slow answer does not slow the load,
 * and latency is taken from the time each call was *due* (so a client that fell behind does not hide
 * the wait: no coordinated omission). Timers fire about every millisecond; each tick sends every call
 * that has come due.
 */
export async function openLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const interval = 1000 / options.ratePerSecond;
  const maxInFlight = options.maxInFlight ?? 10_000;
  const begin = performance.now();
  const measureFrom = begin + options.warmupMs;
  const measureTo = measureFrom + options.durationMs;
  const latencies: number[] = [];
  const fromSend: number[] = [];
  const sendDelays: number[] = [];
  const errorSamples = new Set<string>();
  const pending = new Set<Promise<void>>();
  let errors = 0;
  let dropped = 0;
  let scheduled = 0;

  const send = (index: number, due: number) => {
    const measured = due >= measureFrom;
    if (measured) scheduled++;
    if (pending.size >= maxInFlight) {
      if (measured) dropped++;
      return;
    }
    const sent = performance.now();
    const done = options.call(index).then(
      () => {
        if (!measured) return;
        const end = performance.now();
        latencies.push(end - due);
        fromSend.push(end - sent);
        sendDelays.push(sent - due);
      },
      (e: unknown) => {
        if (!measured) return;
        errors++;
        if (errorSamples.size < 5) errorSamples.add(e instanceof Error ? e.message : String(e));
      },
    );
    pending.add(done);
    void done.finally(() => pending.delete(done));
  };

  for (let index = 0; ; ) {
    const now = performance.now();
    let due = begin + index * interval;
    if (due >= measureTo) break;
    while (due <= now && due < measureTo) {
      send(index++, due);
      due = begin + index * interval;
    }
    if (due >= measureTo) break;
    await sleep(Math.max(0, due - performance.now()));
  }
  await Promise.all(pending);
  const seconds = options.durationMs / 1000;
  return {
    ratePerSecond: options.ratePerSecond,
    seconds,
    scheduled,
    calls: latencies.length,
    errors,
    dropped,
    perSecond: latencies.length / seconds,
    latencyMs: summarize(latencies),
    fromSendMs: summarize(fromSend),
    sendDelayMs: summarize(sendDelays),
    errorSamples: [...errorSamples],
  };
}
