import { initialState, storyId, streamVersion } from "@ctx/domain";
import { describe, expect, it } from "vitest";
import type { CommandEntry } from "../handling/story-cache.ts";
import {
  decodePage,
  decodeState,
  encodePage,
  encodeState,
  PAGE_SPAN,
  pageCommands,
} from "./command-snapshot-codec.ts";

const story = storyId("codec-story");
const outcome = (first: number, last: number): CommandEntry => ({
  firstVersion: streamVersion(first),
  firstSequence: first * 10,
  version: streamVersion(last),
  eventIds: [],
  name: "AddSubtask",
  fingerprint: "",
});

/** A snapshot of an open story titled "T" at `version`, anchored at sequence 4,000. */
function snapshotAt(
  version: number,
  anchor: { hash: Uint8Array; pages: number; pagesDigest: Uint8Array },
) {
  const state = {
    ...initialState(story),
    lifecycle: "open" as const,
    title: "T",
    version: streamVersion(version),
    updatedAt: new Date(1_700_000_000_123),
  };
  return { state, sequence: 4_000, ...anchor, recentDigest: new Uint8Array(32).fill(3) };
}

describe("command snapshot pages", () => {
  it("list the commands of their range in version order, whatever the map's order", () => {
    // Given two maps of the same commands in different insertion orders
    const a = new Map([
      ["late", outcome(70, 71)],
      ["early", outcome(2, 2)],
      ["mid", outcome(64, 64)],
    ]);
    const b = new Map([...a].reverse());

    // When each writes the page of versions (0, 64]
    const pageA = encodePage(story, 0, PAGE_SPAN, pageCommands(a, 0, PAGE_SPAN));
    const pageB = encodePage(story, 0, PAGE_SPAN, pageCommands(b, 0, PAGE_SPAN));

    // Then both write the same bytes, which list the two commands that start in the range
    expect(pageA).toEqual(pageB);
    expect(decodePage(story, 0, pageA)?.commands.map((c) => c.commandId)).toEqual(["early", "mid"]);
  });

  it("are refused for another story, another position, or bytes that are no page", () => {
    const page = encodePage(story, 0, PAGE_SPAN, pageCommands(new Map(), 0, PAGE_SPAN));
    expect(decodePage(story, 0, page)).toBeDefined();
    expect(decodePage(storyId("other"), 0, page)).toBeUndefined();
    expect(decodePage(story, PAGE_SPAN, page)).toBeUndefined();
    expect(decodePage(story, 0, new Uint8Array([0xff, 0xff, 0xff]))).toBeUndefined();
  });
});

describe("a command snapshot's state", () => {
  it("decodes to the state, anchor and pages it was written with, for its story only", () => {
    // Given a story's state at version 130 (two full pages)
    const snapshot = snapshotAt(130, {
      hash: new Uint8Array(32).fill(1),
      pages: 2,
      pagesDigest: new Uint8Array(32).fill(2),
    });

    // When it is encoded and decoded
    const bytes = encodeState(snapshot);

    // Then it comes back the same, and is refused for another story or a wrong page count
    expect(decodeState(story, bytes)).toEqual(snapshot);
    expect(decodeState(storyId("other"), bytes)).toBeUndefined();
    expect(decodeState(story, encodeState({ ...snapshot, pages: 1 }))).toBeUndefined();
    expect(decodeState(story, bytes.subarray(0, bytes.length - 5))).toBeUndefined();
  });
});

describe("the command snapshot format", () => {
  it("is byte for byte what its first release wrote, so stored pages and states stay valid", () => {
    // Bytes written by the hand-made encoder this codec replaced (format 1), with a state at
    // version 30 (no full page: pages 0 and an empty digest are written all the same) and the
    // page after 0 (written as 0).
    const snapshot = snapshotAt(30, {
      hash: new Uint8Array(16).fill(1),
      pages: 0,
      pagesDigest: new Uint8Array(0),
    });
    const page = encodePage(story, 0, PAGE_SPAN, [
      {
        indexed: true,
        commandId: "c-1",
        firstVersion: streamVersion(1),
        firstSequence: 7,
        version: streamVersion(2),
      },
    ]);
    expect(Buffer.from(encodeState(snapshot)).toString("hex")).toBe(
      "0801120b636f6465632d73746f7279181e20fbd095ffbc3128a01f321001010101010101010101010101010101" +
        "3a120a0b636f6465632d73746f7279120154200140004a00522003030303030303030303030303030303030303" +
        "03030303030303030303030303",
    );
    expect(Buffer.from(page).toString("hex")).toBe(
      "0801120b636f6465632d73746f7279180020402a0b0a03632d31100118072002",
    );
    expect(decodeState(story, encodeState(snapshot))).toEqual(snapshot);
    expect(decodePage(story, 0, page)?.commands).toHaveLength(1);
  });
});
