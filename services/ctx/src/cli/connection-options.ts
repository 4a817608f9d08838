import { natsLoginVariables } from "@ctx/service";
import { type Command, Option } from "commander";

/**
 * ctx's global options for talking to a stack elsewhere: each stands for the environment variable
 * the commands read (docs/OPERATIONS.md, "The ctx CLI"), and given on the command line it wins
 * over that variable.
 */
export interface ConnectionOption {
  readonly flags: string;
  readonly variable: string;
  readonly description: string;
  /** Variables the option replaces: another way to give the same thing (one NATS login at a time). */
  readonly replaces?: readonly string[];
}

/** The NATS logins: a connection takes one. */
const natsLogins = natsLoginVariables;

export const connectionOptions: readonly ConnectionOption[] = [
  {
    flags: "--nats-url <urls>",
    variable: "NATS_URL",
    description: "NATS server URLs, comma separated",
  },
  {
    flags: "--nats-creds <file>",
    variable: "NATS_CREDS",
    description:
      "NATS login: a credentials file (JWT and NKey seed); replaces any other NATS login",
    replaces: natsLogins,
  },
  {
    flags: "--nats-nkey-seed-file <file>",
    variable: "NATS_NKEY_SEED_FILE",
    description: "NATS login: an NKey seed file; replaces any other NATS login",
    replaces: natsLogins,
  },
  { flags: "--valkey-url <url>", variable: "VALKEY_URL", description: "Valkey read model" },
  { flags: "--neo4j-url <url>", variable: "NEO4J_URL", description: "Neo4j read model (bolt://)" },
  {
    flags: "--command-url <url>",
    variable: "COMMAND_URL",
    description: "command service (gRPC) for ctx demo [default: http://127.0.0.1:50051]",
  },
  {
    flags: "--query-url <url>",
    variable: "QUERY_URL",
    description: "query service (gRPC) for ctx demo [default: http://127.0.0.1:50052]",
  },
  {
    flags: "--token-file <file>",
    variable: "CTX_TOKEN_FILE",
    description: "bearer token for the gRPC services; replaces CTX_TOKEN",
    replaces: ["CTX_TOKEN"],
  },
];

/** Adds the connection options to ctx's top command (they are recognised after a subcommand too). */
export function addConnectionOptions(program: Command): Command {
  for (const o of connectionOptions) {
    program.addOption(new Option(o.flags, o.description).env(o.variable));
  }
  return program;
}

/**
 * Puts the connection options given on the command line into `env`, where the commands read them.
 * Values from the environment stay as they are.
 */
export function applyConnectionOptions(
  program: Command,
  env: Record<string, string | undefined> = process.env,
): void {
  for (const o of connectionOptions) {
    const key = new Option(o.flags).attributeName();
    if (program.getOptionValueSource(key) !== "cli") continue;
    for (const replaced of o.replaces ?? []) delete env[replaced];
    env[o.variable] = String(program.getOptionValue(key));
  }
}
