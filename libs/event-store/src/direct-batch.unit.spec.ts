import { describe, expect, it } from "vitest";
import { type BatchMessage, batchExtent } from "./direct-batch.ts";

/** A batch as the server numbers it: sequences, each with the one before, and what is left. */
function batch(seqs: readonly number[], leftAfter: number): BatchMessage[] {
  return seqs.map((seq, i) => ({
    seq,
    lastSequence: i === 0 ? 0 : (seqs[i - 1] as number),
    pending: leftAfter + seqs.length - 1 - i,
  }));
}

describe("batchExtent", () => {
  it("ends the story on a short batch after which nothing matched", () => {
    expect(batchExtent(batch([3, 9, 12], 0), 8)).toEqual({ usable: 3, mayGoOn: false });
  });

  it("ends the story on an empty batch (the server found nothing)", () => {
    expect(batchExtent([], 8)).toEqual({ usable: 0, mayGoOn: false });
  });

  it("goes on after a full batch", () => {
    expect(batchExtent(batch([3, 9], 0), 2)).toEqual({ usable: 2, mayGoOn: true });
  });

  it("goes on after a short batch that still had messages pending (cut short)", () => {
    expect(batchExtent(batch([3, 9, 12], 5), 8)).toEqual({ usable: 3, mayGoOn: true });
  });

  it("uses only the messages before one that went missing, and goes on", () => {
    const lost = batch([3, 9, 12, 20], 0).filter((m) => m.seq !== 12);
    expect(batchExtent(lost, 8)).toEqual({ usable: 2, mayGoOn: true });
    // The first message lost: nothing is usable.
    expect(batchExtent(batch([3, 9], 0).slice(1), 8)).toEqual({ usable: 0, mayGoOn: true });
  });

  it("goes on when the server did not say what was left", () => {
    const unknown = batch([3], 0).map((m) => ({ ...m, pending: -1 }));
    expect(batchExtent(unknown, 8)).toEqual({ usable: 1, mayGoOn: true });
  });
});
