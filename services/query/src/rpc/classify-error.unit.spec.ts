import { Code, type ConnectError } from "@connectrpc/connect";
import { StoryNotFoundError, storyId, streamVersion } from "@ctx/domain";
import {
  ConcurrencyError,
  CorruptEventError,
  EventMismatchError,
  EventStoreUnavailableError,
  UnreadableEventError,
} from "@ctx/event-store";
import { StoreUnavailableError } from "@ctx/projector";
import { SnapshotStoreUnavailableError } from "@ctx/snapshots";
import { describe, expect, it } from "vitest";
import {
  InvalidQueryError,
  ShuttingDownError,
  UnknownEntityError,
  UnknownStoryError,
  VersionOutOfRangeError,
  WatchLaggingError,
  WatchLimit,
  WatchLimitError,
} from "../errors.ts";
import { classifyQueryError } from "./classify-error.ts";

const story = storyId("s-1");

describe("query error classification", () => {
  it.each([
    [new UnknownStoryError(story), Code.NotFound],
    [new UnknownEntityError(story, "decision", "d1"), Code.NotFound],
    [new StoryNotFoundError(story), Code.NotFound],
    [new VersionOutOfRangeError(story, 9, 8), Code.OutOfRange],
    [new InvalidQueryError("page_token", "malformed"), Code.InvalidArgument],
    [new ShuttingDownError(), Code.Unavailable],
    [new EventStoreUnavailableError("NATS down"), Code.Unavailable],
    [new SnapshotStoreUnavailableError("NATS down"), Code.Unavailable],
    [new StoreUnavailableError("Valkey down"), Code.Unavailable],
    [new CorruptEventError({ sequence: 7, reason: "undecodable protobuf" }), Code.DataLoss],
    [new EventMismatchError({ sequence: 7, reason: "another story's envelope" }), Code.DataLoss],
    [
      new UnreadableEventError({ sequence: 7, reason: "cannot upcast SubtaskUpdated v3" }),
      Code.FailedPrecondition,
    ],
    [new WatchLimitError(WatchLimit.Process, 10), Code.ResourceExhausted],
    [new WatchLimitError(WatchLimit.Client, 10), Code.ResourceExhausted],
    [new WatchLaggingError(story, 1000), Code.ResourceExhausted],
    [new DOMException("too late", "TimeoutError"), Code.DeadlineExceeded],
    [new DOMException("gone", "AbortError"), Code.Canceled],
  ])("%s → %s", (error, code) => {
    expect(classifyQueryError(error)?.code).toBe(code);
  });

  it("names the stream sequence and story of a message no reader can read", () => {
    const error = classifyQueryError(
      new EventMismatchError({ sequence: 42, storyId: story, reason: "story s-2's envelope" }),
    ) as ConnectError;
    expect(error.message).toMatch(/stream message 42 of story s-1 .*story s-2's envelope/);
    expect(error.metadata.get("x-stream-sequence")).toBe("42");
    expect(error.metadata.get("x-story-id")).toBe("s-1");
  });

  it("says which version is current with OUT_OF_RANGE", () => {
    const error = classifyQueryError(new VersionOutOfRangeError(story, 9, 8)) as ConnectError;
    expect(error.metadata.get("x-current-version")).toBe("8");
  });

  it("leaves errors it does not know to the edge (INTERNAL, logged)", () => {
    expect(classifyQueryError(new Error("bug"))).toBeUndefined();
    const v = streamVersion(1);
    expect(classifyQueryError(new ConcurrencyError(story, v, v))).toBeUndefined();
    expect(classifyQueryError("a string")).toBeUndefined();
  });
});
