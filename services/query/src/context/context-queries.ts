import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "@ctx/config";
import { untilAborted } from "@ctx/config";
import type { StoryId } from "@ctx/domain";
import type { EventStore } from "@ctx/event-store";
import { isStoreUnavailableError } from "@ctx/projector";
import { ContextSource, type GetContextResponse, GetContextResponseSchema } from "@ctx/proto";
import type { StoredStory, ValkeyContextReader } from "@ctx/read-model-valkey";
import type { TemporalReader } from "@ctx/snapshots";
import { UnknownStoryError, VersionOutOfRangeError } from "../errors.ts";
import type { QueryMetrics } from "../query-metrics.ts";
import { streamResponse } from "./context-response.ts";

export interface ContextQueriesOptions {
  readonly reader: TemporalReader;
  readonly store: EventStore;
  /** The Valkey read model GetContext serves from first. */
  readonly cache: ValkeyContextReader;
  readonly metrics: QueryMetrics;
  readonly logger: Logger;
}

/** A story's context now, at a time, at a version: the three GetContext* RPCs. */
export interface ContextQueries {
  current(storyId: StoryId, signal: AbortSignal): Promise<GetContextResponse>;
  atTime(storyId: StoryId, time: Date, signal: AbortSignal): Promise<GetContextResponse>;
  atVersion(storyId: StoryId, version: number, signal: AbortSignal): Promise<GetContextResponse>;
}

export function createContextQueries(o: ContextQueriesOptions): ContextQueries {
  const { reader, store, metrics } = o;

  /** The read model's copy when it may be served; otherwise whether it is marked stale. */
  const fromCache = async (
    storyId: StoryId,
    signal: AbortSignal,
  ): Promise<{ readonly serve?: StoredStory; readonly stale: boolean }> => {
    let stored: StoredStory | undefined;
    try {
      stored = await o.cache.getContext(storyId, { signal });
    } catch (e) {
      if (!isStoreUnavailableError(e)) throw e;
      // The stream is the truth and is still there: serve from it while Valkey is out.
      o.logger.warn({ err: e, storyId }, "Valkey unavailable; answering from the event stream");
      metrics.fallback("unavailable");
      return { stale: false };
    }
    if (stored?.stale) {
      metrics.fallback("stale");
      return { stale: true };
    }
    if (stored === undefined || stored.version === 0) {
      metrics.fallback("missing");
      return { stale: false };
    }
    return { serve: stored, stale: false };
  };

  return {
    async current(storyId, signal) {
      const { serve, stale } = await fromCache(storyId, signal);
      if (serve !== undefined) {
        return create(GetContextResponseSchema, {
          context: serve.context,
          version: serve.version,
          ...(serve.updatedAt ? { asOf: timestampFromDate(serve.updatedAt) } : {}),
          source: ContextSource.READ_MODEL,
          readModelStale: false,
        });
      }
      const point = await reader.current(storyId, { signal });
      metrics.folded(point);
      if (point.state.version === 0) throw new UnknownStoryError(storyId);
      return streamResponse(point.state, stale);
    },

    async atTime(storyId, time, signal) {
      const point = await reader.atTime(storyId, time, { signal });
      metrics.folded(point);
      if (point.state.version === 0) {
        const head = await untilAborted(store.head(storyId), signal);
        throw new UnknownStoryError(
          storyId,
          head === undefined
            ? `story ${storyId} does not exist`
            : `story ${storyId} did not exist yet at ${time.toISOString()}`,
        );
      }
      return streamResponse(point.state);
    },

    async atVersion(storyId, version, signal) {
      // The head first: a version past it is refused without folding the whole story.
      const head = await untilAborted(store.head(storyId), signal);
      if (head === undefined) throw new UnknownStoryError(storyId);
      if (version > head.version) throw new VersionOutOfRangeError(storyId, version, head.version);
      const point = await reader.atVersion(storyId, version, { signal });
      metrics.folded(point);
      return streamResponse(point.state);
    },
  };
}
