import type { DescEnum } from "@bufbuild/protobuf";
import neo4j from "neo4j-driver";

/**
 * The readable name a proto enum value is stored under (`SubtaskStatus.IN_PROGRESS` → `"IN_PROGRESS"`),
 * so Cypher written by hand reads naturally. A value this code does not know is stored as its number,
 * in text, and read back unchanged.
 */
export function enumName(schema: DescEnum, value: number): string {
  return schema.value[value]?.localName ?? String(value);
}

/** The enum value stored under `name`; 0 (UNSPECIFIED) for a missing name. */
export function enumValue(schema: DescEnum, name: unknown): number {
  if (typeof name !== "string") return 0;
  const known = schema.values.find((v) => v.localName === name);
  if (known !== undefined) return known.number;
  const number = Number(name);
  return Number.isSafeInteger(number) ? number : 0;
}

/**
 * A Neo4j integer as a JavaScript number, whichever way the caller's driver returns integers
 * (lossless `Integer` objects by default, numbers or bigints when configured so).
 *
 * @throws TypeError for a value that is not an integer (a model written by something else).
 */
export function toNumber(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (neo4j.isInt(value)) return value.toNumber();
  throw new TypeError(`expected an integer from Neo4j, got ${String(value)}`);
}

/** A stored string list (absent: empty). */
export function toStrings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/** A stored string (absent: empty). */
export function toText(value: unknown): string {
  return typeof value === "string" ? value : "";
}
