import { describe, expect, it } from "vitest";
import { backoffDelays, defaultBackoffSettings, outageRetry } from "./backoff.ts";
import { StoreUnavailableError } from "./errors.ts";

describe("backoffDelays", () => {
  it("grows from the first delay up to the cap, and starts over after a reset", () => {
    const delays = backoffDelays({ initialDelayMs: 10, maxDelayMs: 1_000 });
    const first = Array.from({ length: 30 }, () => delays.next());
    for (const d of first) expect(d).toBeLessThanOrEqual(1_000);
    expect(Math.max(...first.slice(0, 3))).toBeLessThan(200);
    expect(first.slice(-5).every((d) => d === 1_000)).toBe(true);
    delays.reset();
    expect(delays.next()).toBeLessThan(200);
  });

  it("defaults to the projectors' policy: 100 ms doubling up to 10 s", () => {
    const delays = backoffDelays();
    const seen = Array.from({ length: 40 }, () => delays.next());
    expect(seen[0]).toBeLessThan(4 * defaultBackoffSettings.initialDelayMs);
    expect(Math.max(...seen)).toBe(defaultBackoffSettings.maxDelayMs);
  });
});

describe("outageRetry", () => {
  const quick = { initialDelayMs: 1, maxDelayMs: 5, halfOpenAfterMs: 5 };

  it("retries outages with growing waits until the call succeeds", async () => {
    const waits: number[] = [];
    let calls = 0;
    const policy = outageRetry({
      settings: quick,
      isOutage: (e) => e instanceof StoreUnavailableError,
      onRetry: (delay) => waits.push(delay),
    });
    const result = await policy.execute(async () => {
      calls += 1;
      if (calls < 8) throw new StoreUnavailableError("down");
      return "up";
    });
    expect(result).toBe("up");
    // Eight calls, one of them perhaps refused by the open circuit (five failures in a row).
    expect(waits.length).toBeGreaterThanOrEqual(7);
  });

  it("throws anything that is not an outage at once", async () => {
    let calls = 0;
    const policy = outageRetry({ settings: quick, isOutage: () => false });
    await expect(
      policy.execute(async () => {
        calls += 1;
        throw new RangeError("bad input");
      }),
    ).rejects.toBeInstanceOf(RangeError);
    expect(calls).toBe(1);
  });

  it("ends the wait when its signal is aborted, and calls nothing more", async () => {
    let calls = 0;
    const controller = new AbortController();
    const policy = outageRetry({
      settings: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
      isOutage: () => true,
      onRetry: () => controller.abort(new Error("stopping")),
    });
    await expect(
      policy.execute(async () => {
        calls += 1;
        throw new StoreUnavailableError("down");
      }, controller.signal),
    ).rejects.toThrow("stopping");
    expect(calls).toBe(1);
  });
});
