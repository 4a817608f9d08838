import { randomBytes } from "node:crypto";

/**
 * A name no other test uses: valid as a JetStream stream or consumer name, a subject token, a Valkey
 * key prefix and a Neo4j label (letters, digits and underscores).
 */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}${randomBytes(4).toString("hex")}`;
}
