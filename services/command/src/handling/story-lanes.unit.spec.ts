import { describe, expect, it } from "vitest";
import { StoryLanes } from "./story-lanes.ts";

/** A promise and the functions that settle it. */
function gate<T = void>() {
  let open!: (value: T) => void;
  let fail!: (e: unknown) => void;
  const promise = new Promise<T>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("StoryLanes", () => {
  it("runs one story's commands one after another, in arrival order, and other stories' alongside", async () => {
    const lanes = new StoryLanes(10);
    const log: string[] = [];
    const first = gate();
    // Given a command of story A in flight
    const a1 = lanes.run("A", async () => {
      log.push("a1 start");
      await first.promise;
      log.push("a1 end");
      return 1;
    });
    // When two more of A and one of B arrive
    const a2 = lanes.run("A", async () => {
      log.push("a2");
      return 2;
    });
    const a3 = lanes.run("A", async () => {
      log.push("a3");
      return 3;
    });
    const b1 = lanes.run("B", async () => {
      log.push("b1");
      return 4;
    });
    await tick();
    // Then B ran at once, A's others wait for the first
    expect(log).toEqual(["a1 start", "b1"]);
    first.open();
    expect(await Promise.all([a1, a2, a3, b1])).toEqual([1, 2, 3, 4]);
    expect(log).toEqual(["a1 start", "b1", "a1 end", "a2", "a3"]);
    await tick();
    expect(lanes.size).toBe(0);
  });

  it("goes on after a command that failed, which its caller alone sees", async () => {
    const lanes = new StoryLanes(10);
    const failed = lanes.run("A", () => Promise.reject(new Error("refused")));
    const next = lanes.run("A", async () => "ran");
    await expect(failed).rejects.toThrow("refused");
    expect(await next).toBe("ran");
  });

  it("answers a caller whose signal aborts while it waits at once, and never runs its command", async () => {
    const lanes = new StoryLanes(10);
    const first = gate();
    const running = lanes.run("A", () => first.promise);
    const controller = new AbortController();
    let ran = false;
    const waiting = lanes.run(
      "A",
      async () => {
        ran = true;
      },
      controller.signal,
    );
    controller.abort(new Error("deadline"));
    await expect(waiting).rejects.toThrow("deadline");
    first.open();
    await running;
    await tick();
    expect(ran).toBe(false);
    expect(lanes.size).toBe(0);
  });

  it("lets a command past the depth run at once rather than wait without bound", async () => {
    const lanes = new StoryLanes(1);
    const first = gate();
    const log: string[] = [];
    const a1 = lanes.run("A", () => first.promise.then(() => log.push("a1")));
    const a2 = lanes.run("A", async () => log.push("a2"));
    const a3 = lanes.run("A", async () => log.push("a3"));
    await tick();
    // a2 waits (the one place in the lane), a3 did not
    expect(log).toEqual(["a3"]);
    first.open();
    await Promise.all([a1, a2, a3]);
    expect(log).toEqual(["a3", "a1", "a2"]);
  });
});
