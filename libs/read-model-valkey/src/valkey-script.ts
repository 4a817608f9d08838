import { createHash } from "node:crypto";
import type { Valkey } from "iovalkey";

/** A Lua script, addressed by its SHA-1 once the server has it. */
export interface ValkeyScript {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
  /**
   * Run with EVALSHA_RO / EVAL_RO: the server refuses any write the script attempts, and a user
   * allowed only to read its keys (ACL `%R~`) may run it (the query service's user).
   */
  readonly readOnly: boolean;
}

export function valkeyScript(
  name: string,
  lua: string,
  options: { readonly readOnly?: boolean } = {},
): ValkeyScript {
  const sha = createHash("sha1").update(lua).digest("hex");
  return { name, lua, sha, readOnly: options.readOnly ?? false };
}

/** One call of a script: its keys and arguments. */
export interface ScriptCall {
  readonly script: ValkeyScript;
  readonly keys: readonly string[];
  readonly args: readonly (string | Buffer | number)[];
}

/** A reply with bulk strings as Buffers (contexts are binary). */
export type ScriptReply = Buffer | number | null | readonly ScriptReply[];

/** Puts the scripts into the server's script cache, so that the first EVALSHA finds them. */
export async function loadScripts(valkey: Valkey, scripts: readonly ValkeyScript[]): Promise<void> {
  const pipeline = valkey.pipeline();
  for (const s of scripts) pipeline.script("LOAD", s.lua);
  for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
}

/**
 * Runs script calls in one pipeline (one round trip) with EVALSHA. Calls the server answers
 * NOSCRIPT (restarted, failed over, SCRIPT FLUSH) are sent again with EVAL, which also caches the
 * script: one more round trip, only then. Returns the replies in call order, or throws the first
 * error of a call.
 *
 * The calls are independent: a retried call runs after the others, so a later call must not rely
 * on an earlier one having run (the checkpoint script checks the stories' versions for this reason).
 */
export async function runScripts(
  valkey: Valkey,
  calls: readonly ScriptCall[],
): Promise<ScriptReply[]> {
  const results = await send(valkey, calls, "evalsha");
  const missing = results.flatMap((r, i) => (isNoScript(r[0]) ? [i] : []));
  if (missing.length > 0) {
    const retried = await send(
      valkey,
      missing.map((i) => calls[i] as ScriptCall),
      "eval",
    );
    missing.forEach((i, j) => {
      results[i] = retried[j] as Result;
    });
  }
  return results.map(([error, reply]) => {
    if (error) throw error;
    return reply as ScriptReply;
  });
}

type Result = [error: Error | null, reply: unknown];

async function send(
  valkey: Valkey,
  calls: readonly ScriptCall[],
  command: "evalsha" | "eval",
): Promise<Result[]> {
  const [only] = calls;
  if (calls.length === 1 && only !== undefined) {
    // One call goes without a pipeline: a pipeline's objects cost a one-command read more than the
    // command, and they outlived young-generation collections under load (docs/BENCHMARKS.md).
    const body = command === "evalsha" ? only.script.sha : only.script.lua;
    const { keys, args } = only;
    return [
      await valkey
        .callBuffer(variant(command, only.script), body, keys.length, ...keys, ...args)
        .then(
          (reply): Result => [null, reply],
          (error: Error): Result => [error, null],
        ),
    ];
  }
  const pipeline = valkey.pipeline();
  for (const { script, keys, args } of calls) {
    const body = command === "evalsha" ? script.sha : script.lua;
    pipeline.callBuffer(variant(command, script), body, keys.length, ...keys, ...args);
  }
  const results = await pipeline.exec();
  if (results === null || results.length !== calls.length) {
    throw new Error(`Valkey answered ${results?.length ?? "no"} of ${calls.length} script calls`);
  }
  return results;
}

function variant(command: "evalsha" | "eval", script: ValkeyScript): string {
  return script.readOnly ? `${command}_ro` : command;
}

function isNoScript(error: Error | null): boolean {
  return error?.message.startsWith("NOSCRIPT") ?? false;
}
