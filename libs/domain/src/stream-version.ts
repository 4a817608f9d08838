/**
 * A position in one story's history: 1 for its first event, gapless, 0 when it has none.
 *
 * Branded because the store also deals in JetStream stream sequences, which are numbers too but
 * count every story's events; passing one for the other is the classic silent bug.
 */
export type StreamVersion = number & { readonly __brand: "StreamVersion" };

/**
 * Brands a number as a {@link StreamVersion}. Accepts a bigint too, since the proto envelope's
 * `version` is a uint64 (a bigint in protobuf-es).
 *
 * @throws RangeError when `n` is not a non-negative safe integer.
 */
export function streamVersion(n: number | bigint): StreamVersion {
  const version = typeof n === "bigint" && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 0) {
    throw new RangeError(`invalid stream version ${n}: expected a non-negative safe integer`);
  }
  return version as StreamVersion;
}
