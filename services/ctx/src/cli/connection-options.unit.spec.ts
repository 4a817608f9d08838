import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { addConnectionOptions, applyConnectionOptions } from "./connection-options.ts";

// Issue #24: ctx talks to a remote stack by flags that override the variables the commands read.

function parsed(args: string[], env: Record<string, string | undefined>) {
  const program = addConnectionOptions(new Command().exitOverride());
  program.command("run").action(() => undefined);
  const saved = { ...process.env };
  try {
    // commander reads an option's variable from process.env.
    for (const [k, v] of Object.entries(env)) process.env[k] = v;
    program.parse(["node", "ctx", ...args]);
  } finally {
    process.env = saved;
  }
  const result = { ...env };
  applyConnectionOptions(program, result);
  return result;
}

describe("connection options", () => {
  it("override the environment's URLs, before or after the subcommand", () => {
    expect(
      parsed(["--nats-url", "nats://a:4222,nats://b:4222", "run", "--query-url", "http://q:1"], {
        NATS_URL: "nats://local:4222",
      }),
    ).toEqual({ NATS_URL: "nats://a:4222,nats://b:4222", QUERY_URL: "http://q:1" });
  });

  it("leave the environment as it is when not given", () => {
    const env = { NATS_URL: "nats://local:4222", COMMAND_URL: "http://c:1" };
    expect(parsed(["run"], env)).toEqual(env);
  });

  it("a NATS login given replaces the environment's other logins", () => {
    expect(
      parsed(["run", "--nats-creds", "remote.creds"], {
        NATS_NKEY_SEED_FILE: "local.nk",
        NATS_USER: "u",
        NATS_PASSWORD_FILE: "p",
      }),
    ).toEqual({ NATS_CREDS: "remote.creds" });
  });

  it("a token file replaces CTX_TOKEN", () => {
    expect(parsed(["run", "--token-file", "t"], { CTX_TOKEN: "x" })).toEqual({
      CTX_TOKEN_FILE: "t",
    });
  });
});
