import { readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The variables deploy/local/nats.sh wrote for a role in a stack folder
 * (`secrets/nats/<role>.env`: its seed file, its inbox prefix).
 */
export function natsRoleEnv(stackDir: string, role: string): Record<string, string> {
  const file = join(stackDir, "secrets/nats", `${role}.env`);
  return Object.fromEntries(
    readFileSync(file, "utf8")
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}
