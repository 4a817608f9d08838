import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type ContextState, toContextMessage } from "@ctx/domain";
import { ContextSource, type GetContextResponse, GetContextResponseSchema } from "@ctx/proto";

/** The answer for a state folded from the event stream. */
export function streamResponse(state: ContextState, readModelStale = false): GetContextResponse {
  return create(GetContextResponseSchema, {
    context: toContextMessage(state),
    version: state.version,
    ...(state.updatedAt ? { asOf: timestampFromDate(state.updatedAt) } : {}),
    source: ContextSource.EVENT_STREAM,
    readModelStale,
  });
}
