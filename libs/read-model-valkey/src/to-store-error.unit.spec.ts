import { isStoreUnavailableError } from "@ctx/projector";
import { describe, expect, it } from "vitest";
import { toStoreError } from "./to-store-error.ts";

const named = (name: string, message: string) =>
  Object.defineProperty(new Error(message), "name", { value: name });
const withCode = (code: string) => Object.assign(new Error(`connect ${code}`), { code });

describe("toStoreError", () => {
  it("turns an outage into StoreUnavailableError, keeping the cause", () => {
    for (const e of [
      new Error("Connection is closed."),
      new Error("Command timed out"),
      named("MaxRetriesPerRequestError", "Reached the max retries per request limit"),
      named("AbortError", "Command aborted due to connection close"),
      withCode("ECONNREFUSED"),
      named("ReplyError", "LOADING Valkey is loading the dataset in memory"),
      named("ReplyError", "OOM command not allowed when used memory > 'maxmemory'."),
    ]) {
      const mapped = toStoreError(e, "testing");
      expect(mapped).toSatisfy(isStoreUnavailableError);
      expect((mapped as Error).cause).toBe(e);
    }
  });

  it("leaves every other error as it is", () => {
    for (const e of [
      named("ReplyError", "WRONGTYPE Operation against a key holding the wrong kind of value"),
      named("ReplyError", "ERR user_script:1: Script attempted to access nonexistent global"),
      new RangeError("bad batch"),
      "not even an error",
    ]) {
      expect(toStoreError(e, "testing")).toBe(e);
    }
  });
});
