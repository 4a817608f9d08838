import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { newCommandId } from "./command-id.ts";
import { toContextError } from "./errors.ts";
import { backoffDelay, withRetries } from "./retry.ts";

const failing = (code: Code) => toContextError(new ConnectError("boom", code));
const noSleep = { sleep: async () => {}, random: () => 0.5 };

describe("withRetries", () => {
  it("repeats UNAVAILABLE and DEADLINE_EXCEEDED until an attempt succeeds", async () => {
    const codes = [Code.Unavailable, Code.DeadlineExceeded];
    const attempts: number[] = [];
    const result = await withRetries(
      { maxAttempts: 4 },
      async (_signal, n) => {
        attempts.push(n);
        const code = codes[n - 1];
        if (code !== undefined) throw failing(code);
        return "ok";
      },
      noSleep,
    );
    expect(result).toBe("ok");
    expect(attempts).toEqual([1, 2, 3]);
  });

  it("gives up after maxAttempts with the last error", async () => {
    let calls = 0;
    const failure = withRetries(
      { maxAttempts: 3 },
      async () => {
        calls++;
        throw failing(Code.Unavailable);
      },
      noSleep,
    );
    await expect(failure).rejects.toMatchObject({ code: Code.Unavailable });
    expect(calls).toBe(3);
  });

  it.each([Code.Aborted, Code.NotFound, Code.InvalidArgument, Code.AlreadyExists, Code.Internal])(
    "does not repeat code %s",
    async (code) => {
      let calls = 0;
      await expect(
        withRetries(
          {},
          async () => {
            calls++;
            throw failing(code);
          },
          noSleep,
        ),
      ).rejects.toMatchObject({ code });
      expect(calls).toBe(1);
    },
  );

  it("stops once the caller's signal is aborted, even with attempts left", async () => {
    const controller = new AbortController();
    let calls = 0;
    const failure = withRetries(
      { maxAttempts: 10 },
      async () => {
        calls++;
        controller.abort(new Error("caller gave up"));
        throw failing(Code.Unavailable);
      },
      { ...noSleep, signal: controller.signal },
    );
    await expect(failure).rejects.toMatchObject({ code: Code.Unavailable });
    expect(calls).toBe(1);
  });

  it("rejects with the signal's reason when it aborts during the pause", async () => {
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    const failure = withRetries(
      { maxAttempts: 5, initialDelayMs: 60_000 },
      async () => {
        // Once the attempt has failed and the pause (up to a minute) has begun.
        setImmediate(() => controller.abort(reason));
        throw failing(Code.Unavailable);
      },
      { signal: controller.signal, random: () => 0.99 },
    );
    await expect(failure).rejects.toBe(reason);
  });

  it("gives each attempt the rest of the caller's deadline, at most attemptTimeoutMs", async () => {
    let clock = 0;
    const timeouts: (number | undefined)[] = [];
    const failure = withRetries(
      { maxAttempts: 10, attemptTimeoutMs: 400, initialDelayMs: 100 },
      async (attempt) => {
        timeouts.push(attempt.timeoutMs);
        clock += attempt.timeoutMs ?? 0; // each attempt times out
        throw failing(Code.DeadlineExceeded);
      },
      {
        timeoutMs: 1000,
        now: () => clock,
        random: () => 0.5,
        sleep: async (ms) => {
          clock += ms;
        },
      },
    );
    await expect(failure).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    // 400 (t=400) +50 pause, 400 (t=850) +100 pause, 50 left (t=1000): no time for another pause.
    expect(timeouts).toEqual([400, 400, 50]);
  });

  it("without a deadline, attempts get attemptTimeoutMs or no timeout", async () => {
    const timeouts: (number | undefined)[] = [];
    await withRetries({}, async (attempt) => {
      timeouts.push(attempt.timeoutMs);
    });
    await withRetries({ attemptTimeoutMs: 250 }, async (attempt) => {
      timeouts.push(attempt.timeoutMs);
    });
    expect(timeouts).toEqual([undefined, 250]);
  });
});

describe("backoffDelay", () => {
  it("is full jitter under a doubling bound capped at maxDelayMs", () => {
    const policy = { initialDelayMs: 100, maxDelayMs: 1000 };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(policy, n, () => 0.999_999))).toEqual([
      99, 199, 399, 799, 999,
    ]);
    expect(backoffDelay(policy, 3, () => 0)).toBe(0);
    expect(backoffDelay(policy, 3, () => 0.5)).toBe(200);
  });
});

describe("newCommandId", () => {
  it("is a UUID v7 the service accepts as a command_id, ordered by time", () => {
    const a = newCommandId(1_700_000_000_000);
    const b = newCommandId(1_700_000_000_001);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a).toMatch(/^[A-Za-z0-9._:-]+$/);
    expect(a < b).toBe(true);
    expect(a.slice(0, 13)).toBe("018bcfe5-6800");
    expect(newCommandId()).not.toBe(newCommandId());
  });
});
