import { Code, ConnectError, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { turnBudgetInterceptor } from "./turn-budget.ts";

/**
 * The event-loop turn a callback runs in: a counter a chain of `setImmediate`s raises once per turn
 * (an immediate scheduled while immediates run waits for the next turn).
 */
let turn = 0;
let ticker: NodeJS.Immediate | undefined;
function tick() {
  turn++;
  ticker = setImmediate(tick);
}
beforeEach(() => {
  turn = 0;
  ticker = setImmediate(tick);
});
afterEach(() => clearImmediate(ticker));

/** Calls through the interceptor whose handler notes the turn it started in and then answers. */
function harness(callsPerTurn: number, maxQueued = 1_000) {
  const started: { id: number; turn: number }[] = [];
  let shed = 0;
  const call = turnBudgetInterceptor({ callsPerTurn, maxQueued, onShed: () => shed++ })(
    async (req) => {
      const id = (req as unknown as { id: number }).id;
      started.push({ id, turn });
      if (id < 0) throw new Error(`call ${id} fails`);
      return { id } as unknown as UnaryResponse;
    },
  );
  const send = (
    id: number,
    signal = new AbortController().signal,
    methodKind: "unary" | "server_streaming" = "unary",
  ) => call({ id, signal, method: { methodKind } } as unknown as UnaryRequest);
  return { started, send, shed: () => shed };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("turnBudgetInterceptor", () => {
  it("given a budget of 2, when 5 calls arrive in one turn, then they start 2, 2 and 1 per turn, in order", async () => {
    const { started, send } = harness(2);
    const answers = await Promise.all([1, 2, 3, 4, 5].map((id) => send(id)));
    expect(answers).toEqual([1, 2, 3, 4, 5].map((id) => ({ id })));
    expect(started.map((s) => s.id)).toEqual([1, 2, 3, 4, 5]);
    const [t1, t2, t3, t4, t5] = started.map((s) => s.turn);
    expect(t2).toBe(t1);
    expect(t3).toBeGreaterThan(t1 as number);
    expect(t4).toBe(t3);
    expect(t5).toBeGreaterThan(t3 as number);
  });

  it("given a budget, when calls arrive one per turn, then none of them waits", async () => {
    const { started, send } = harness(1);
    for (const id of [1, 2, 3]) {
      const arrived = turn;
      await send(id);
      expect(started.at(-1)).toEqual({ id, turn: arrived });
      await nextTurn();
    }
  });

  it("given a budget of 0, when many calls arrive in one turn, then all start at once", async () => {
    const { started, send } = harness(0);
    await Promise.all(Array.from({ length: 50 }, (_, i) => send(i + 1)));
    expect(new Set(started.map((s) => s.turn)).size).toBe(1);
    expect(started).toHaveLength(50);
  });

  it("given calls that fail, when they are admitted, then their errors reach the caller and their turn's budget is spent", async () => {
    const { started, send } = harness(2);
    const results = await Promise.allSettled([send(-1), send(-2), send(3)]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "fulfilled"]);
    expect((results[0] as PromiseRejectedResult).reason).toEqual(new Error("call -1 fails"));
    const [t1, t2, t3] = started.map((s) => s.turn);
    expect(t2).toBe(t1);
    expect(t3).toBeGreaterThan(t1 as number);
  });

  it("given a queue that drained, when a call arrives in a later turn, then it starts in that turn", async () => {
    const { started, send } = harness(2);
    await Promise.all([1, 2, 3, 4, 5, 6, 7].map((id) => send(id)));
    await nextTurn();
    await nextTurn();
    const arrived = turn;
    await send(8);
    expect(started.at(-1)).toEqual({ id: 8, turn: arrived });
  });

  it("given a full queue, when one more call arrives, then it is shed with UNAVAILABLE at once and the queued ones still run", async () => {
    const { started, send, shed } = harness(2, 3);
    const calls = [1, 2, 3, 4, 5, 6].map((id) => send(id));
    const results = await Promise.allSettled(calls);
    // 1 and 2 start in this turn, 3–5 wait, 6 finds the queue full.
    expect(results.map((r) => r.status)).toEqual([
      "fulfilled",
      "fulfilled",
      "fulfilled",
      "fulfilled",
      "fulfilled",
      "rejected",
    ]);
    const error = ConnectError.from((results[5] as PromiseRejectedResult).reason);
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/overloaded \(3 calls waiting to start\); retry/);
    expect(started.map((s) => s.id)).toEqual([1, 2, 3, 4, 5]);
    expect(shed()).toBe(1);
  });

  it("given a call waiting for its turn, when its signal is aborted, then it gives its place to a call that finds the queue full, and fails with the signal's reason", async () => {
    const { started, send, shed } = harness(1, 2);
    const cancel = new AbortController();
    const first = send(1);
    const waiting = send(2, cancel.signal);
    const third = send(3);
    await expect(send(4)).rejects.toMatchObject({ code: Code.Unavailable });
    cancel.abort(new ConnectError("the client cancelled", Code.Canceled));
    const fifth = send(5);
    await expect(waiting).rejects.toMatchObject({ code: Code.Canceled });
    await Promise.all([first, third, fifth]);
    expect(started.map((s) => s.id)).toEqual([1, 3, 5]);
    expect(shed()).toBe(1);
  });

  it("given a waiting call aborted before its turn, when the turn comes, then it fails without taking the turn", async () => {
    const { started, send } = harness(1);
    const cancel = new AbortController();
    const first = send(1);
    const waiting = send(2, cancel.signal);
    const third = send(3);
    cancel.abort(new ConnectError("deadline", Code.DeadlineExceeded));
    await expect(waiting).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    await Promise.all([first, third]);
    // 3 starts in the turn after 1's, the turn 2 would have taken.
    expect(started).toEqual([
      { id: 1, turn: started[0]?.turn },
      { id: 3, turn: (started[0]?.turn ?? 0) + 1 },
    ]);
  });

  it("given a full turn and a full queue, when a stream arrives, then it starts at once and is not shed", async () => {
    const h = harness(1, 1);
    const first = h.send(1);
    const queued = h.send(2);
    await h.send(3, undefined, "server_streaming");
    expect(h.started.map((s) => s.id)).toEqual([1, 3]);
    expect(h.shed()).toBe(0);
    await Promise.all([first, queued]);
  });

  it("given an aborted signal, when the call would wait, then it fails at once", async () => {
    const { send } = harness(1, 2);
    const first = send(1);
    const cancel = new AbortController();
    cancel.abort(new ConnectError("deadline", Code.DeadlineExceeded));
    await expect(send(2, cancel.signal)).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    await first;
  });

  it("refuses a budget that is not a whole number of calls", () => {
    expect(() => turnBudgetInterceptor({ callsPerTurn: -1, maxQueued: 1 })).toThrow(RangeError);
    expect(() => turnBudgetInterceptor({ callsPerTurn: 1.5, maxQueued: 1 })).toThrow(RangeError);
    expect(() => turnBudgetInterceptor({ callsPerTurn: 1, maxQueued: 0 })).toThrow(RangeError);
  });
});
