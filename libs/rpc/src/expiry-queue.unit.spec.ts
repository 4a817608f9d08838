import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createExpiryQueue } from "./expiry-queue.ts";

// One timer for many same-length timeouts: items expire in order, removed ones never, and the
// timer does not fire once per item.

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("createExpiryQueue", () => {
  it("given items added over time, when their time is up, then each expires once, in order, and removed ones never", () => {
    const expired: string[] = [];
    const queue = createExpiryQueue<string>(100, (item) => expired.push(item));
    queue.add("a");
    vi.advanceTimersByTime(30);
    const b = queue.add("b");
    vi.advanceTimersByTime(30);
    queue.add("c");
    b.remove();
    b.remove();
    expect(queue.size).toBe(2);
    vi.advanceTimersByTime(39);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual(["a"]);
    vi.advanceTimersByTime(60);
    expect(expired).toEqual(["a", "c"]);
    expect(queue.size).toBe(0);
  });

  it("given many short-lived items, then the timer fires about once per duration, not once per item", () => {
    const queue = createExpiryQueue<number>(1_000, () => {
      throw new Error("nothing should expire");
    });
    let fired = 0;
    const spy = vi.spyOn(globalThis, "setTimeout");
    for (let ms = 0; ms < 10_000; ms++) {
      // A call a millisecond, each done within it.
      queue.add(ms).remove();
      vi.advanceTimersByTime(1);
    }
    fired = spy.mock.calls.length;
    spy.mockRestore();
    expect(fired).toBeLessThanOrEqual(11);
    expect(queue.size).toBe(0);
  });

  it("given an item that adds another when it expires, then both are handled", () => {
    const expired: number[] = [];
    const queue = createExpiryQueue<number>(10, (n) => {
      expired.push(n);
      if (n === 1) queue.add(2);
    });
    queue.add(1);
    vi.advanceTimersByTime(10);
    vi.advanceTimersByTime(10);
    expect(expired).toEqual([1, 2]);
  });

  it("given clear, then nothing expires and the handles are inert", () => {
    const expired: number[] = [];
    const queue = createExpiryQueue<number>(10, (n) => expired.push(n));
    const one = queue.add(1);
    queue.clear();
    one.remove();
    vi.advanceTimersByTime(100);
    expect(expired).toEqual([]);
    expect(queue.size).toBe(0);
  });

  it("refuses a duration that is not a whole number of ms ≥ 1", () => {
    expect(() => createExpiryQueue(0, () => undefined)).toThrow(RangeError);
    expect(() => createExpiryQueue(1.5, () => undefined)).toThrow(RangeError);
  });
});
