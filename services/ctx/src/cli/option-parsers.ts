import { InvalidArgumentError } from "commander";

// Parsers for ctx's option values, for commander's `.option(flags, description, parser)`. A bad
// value is a usage error (exit code 2) whose message says what is expected; nothing ever passes
// NaN on to a command.

/** A whole number in [min, max], as commander's option parser. */
export function integerOption(
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): (value: string) => number {
  return (value) => {
    const n = /^\s*[+-]?\d+\s*$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `Expected a whole number of at least ${min}.`
          : `Expected a whole number from ${min} to ${max}.`,
      );
    }
    return n;
  };
}

/** A repeatable whole-number option: each occurrence adds its value to the list. */
export function integerListOption(
  min: number,
): (value: string, previous: readonly number[] | undefined) => number[] {
  const one = integerOption(min);
  return (value, previous = []) => [...previous, one(value)];
}

const secondsPer = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** A duration like 90s, 30m, 12h or 7d, in seconds (at least one second). */
export function durationOption(value: string): number {
  const match = /^(\d+)([smhd])$/.exec(value.trim());
  const n = match ? Number(match[1]) * secondsPer[match[2] as keyof typeof secondsPer] : 0;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError("Expected a duration such as 90s, 30m, 12h or 7d.");
  }
  return n;
}

/**
 * A point in time: an ISO 8601 date (`2026-12-01`, midnight UTC) or date and time with a zone
 * (`2026-12-01T08:00:00Z`, `…+01:00`). A time without a zone is refused: it would depend on the
 * machine ctx runs on.
 */
export function timeOption(value: string): Date {
  const text = value.trim();
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(text);
  const zoned = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text);
  const time = dateOnly ? new Date(`${text}T00:00:00Z`) : zoned ? new Date(text) : undefined;
  if (time === undefined || Number.isNaN(time.getTime())) {
    throw new InvalidArgumentError(
      "Expected a date (2026-12-01, UTC) or a date and time with its zone (2026-12-01T08:00:00Z).",
    );
  }
  return time;
}
