import { readFileSync } from "node:fs";
import { z } from "zod";

/** A file named by an environment variable, read once at start-up: its path and its contents. */
export interface FileValue {
  readonly path: string;
  readonly text: string;
}

function readFile(path: string, ctx: z.core.$RefinementCtx<string>): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    ctx.addIssue({ code: "custom", message: `cannot read ${path}: ${code ?? String(e)}` });
    return undefined;
  }
}

/**
 * Field builders for variables that name a file: secrets are mounted as files in Kubernetes, and a
 * file keeps them out of the process's environment and command line. A missing or unreadable file
 * is a ConfigError naming the variable, at start-up. (Read once: a rotated file takes effect on the
 * next start.)
 */
export const fileEnv = {
  /** A password or token file: its contents without the trailing newline; must not be empty. */
  secret: () =>
    z
      .string()
      .transform((path, ctx): FileValue => {
        const text = readFile(path, ctx)?.replace(/\r?\n$/, "");
        if (text === "") ctx.addIssue({ code: "custom", message: `${path} is empty` });
        return { path, text: text ?? "" };
      })
      .optional(),
  /** A PEM file (CA certificate, client certificate or key). */
  pem: () =>
    z
      .string()
      .transform((path, ctx): FileValue => {
        const text = readFile(path, ctx) ?? "";
        if (text !== "" && !text.includes("-----BEGIN ")) {
          ctx.addIssue({ code: "custom", message: `${path} is not PEM` });
        }
        return { path, text };
      })
      .optional(),
} as const;
