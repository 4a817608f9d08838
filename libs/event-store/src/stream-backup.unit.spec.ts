import { headers } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { endsInsideBatch } from "./stream-backup.ts";

const stored = (entries: Record<string, string>) => {
  const h = headers();
  for (const [k, v] of Object.entries(entries)) h.set(k, v);
  return h;
};

describe("a snapshot's last message", () => {
  it("ends inside a batch when it belongs to one and is not its commit", () => {
    // As the server stores a three-event command: the batch headers stay on every message.
    expect(endsInsideBatch(stored({ "Nats-Batch-Id": "b", "Nats-Batch-Sequence": "2" }))).toBe(
      true,
    );
    expect(
      endsInsideBatch(
        stored({ "Nats-Batch-Id": "b", "Nats-Batch-Sequence": "3", "Nats-Batch-Commit": "1" }),
      ),
    ).toBe(false);
    // A one-event command is no batch; a message without headers neither.
    expect(endsInsideBatch(stored({ "Nats-Msg-Id": "m" }))).toBe(false);
    expect(endsInsideBatch(undefined)).toBe(false);
  });
});
