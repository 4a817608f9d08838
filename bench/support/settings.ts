import { join } from "node:path";
import { repoRoot } from "./servers.ts";

/** Where every bench writes its figures as JSON (`<bench>.json`; ignored by git). */
export const resultsDir = join(repoRoot, "bench/results");

/** A positive number from the environment, `fallback` when unset; anything else stops the bench. */
export function envNumber(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

/** A share between 0 and 1 from the environment, 0 when unset; anything else stops the bench. */
export function envRatio(name: string): number {
  const value = Number(process.env[name] ?? "0");
  if (!(value >= 0 && value <= 1)) throw new Error(`${name} must be a number from 0 to 1`);
  return value;
}
