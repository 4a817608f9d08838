import { isConfigError } from "./config-error.ts";

/**
 * The variables a ConfigError thrown by `fn` names, in order; [] when `fn` throws nothing.
 * Any other error is thrown again.
 */
export function configProblems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (isConfigError(e)) return e.problems.map((p) => p.variable);
    throw e;
  }
  return [];
}
