import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { InvalidQueryError } from "../errors.ts";

// The range google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
const MIN_SECONDS = -62_135_596_800n;
const MAX_SECONDS = 253_402_300_799n;

/**
 * A request timestamp as a Date. Request validation checks that it is present; this checks that it
 * is a valid Timestamp at all, which protovalidate leaves to the caller.
 *
 * @throws InvalidQueryError naming the field otherwise.
 */
export function requestTime(timestamp: Timestamp | undefined, field: string): Date {
  if (
    timestamp === undefined ||
    timestamp.seconds < MIN_SECONDS ||
    timestamp.seconds > MAX_SECONDS ||
    timestamp.nanos < 0 ||
    timestamp.nanos > 999_999_999
  ) {
    throw new InvalidQueryError(
      field,
      `${field} must be a valid timestamp between 0001-01-01 and 9999-12-31`,
    );
  }
  return timestampDate(timestamp);
}
