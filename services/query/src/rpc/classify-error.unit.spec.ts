import { Code, type ConnectError } from "@connectrpc/connect";
import { storyId, streamVersion } from "@ctx/domain";
import {
  ConcurrencyError,
  CorruptEventError,
  EventStoreUnavailableError,
  StoryNotFoundError,
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
    [new CorruptEventError(7, "undecodable protobuf"), Code.DataLoss],
    [new UnreadableEventError(7, "cannot upcast SubtaskUpdated v3"), Code.FailedPrecondition],
    [new WatchLimitError(WatchLimit.Process, 10), Code.ResourceExhausted],
    [new WatchLimitError(WatchLimit.Client, 10), Code.ResourceExhausted],
    [new WatchLaggingError(story, 1000), Code.ResourceExhausted],
    [new DOMException("too late", "TimeoutError"), Code.DeadlineExceeded],
    [new DOMException("gone", "AbortError"), Code.Canceled],
  ])("%s → %s", (error, code) => {
    expect(classifyQueryError(error)?.code).toBe(code);
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
