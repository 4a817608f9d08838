import { readFileSync } from "node:fs";

/**
 * The product version: the root package.json's "version", its one source. Read relative to this
 * file, which sits at the same depth below the root in a checkout and in the ctx image (/app).
 */
export function productVersion(
  packageJson: URL = new URL("../../../../package.json", import.meta.url),
): string {
  const { version } = JSON.parse(readFileSync(packageJson, "utf8")) as { version?: unknown };
  if (typeof version !== "string" || version === "") {
    throw new Error(`${packageJson.pathname} has no "version"`);
  }
  return version;
}
