import { printContextAtTwoTimes } from "@ctx/query-service";
import { errors as natsErrors } from "@nats-io/transport-node";
import { Command } from "commander";
import {
  type BackupCommandOptions,
  type RestoreCommandOptions,
  streamsBackup,
  streamsRestore,
} from "./commands/backup.ts";
import { eventStats, listStoryEvents, upcastDryRun } from "./commands/events.ts";
import { natsAuthConfigCommand } from "./commands/nats.ts";
import { parkedDiscard, parkedList, parkedReplay } from "./commands/parked.ts";
import { projectionsStatus, rebuildProjections } from "./commands/projections.ts";
import { provision } from "./commands/provision.ts";
import { storiesCheck, storiesRepair } from "./commands/stories.ts";
import { provisionStreams } from "./commands/streams.ts";
import { keygen, type MintOptions, mint } from "./commands/token.ts";
import { runDemo, waitForReadModels } from "./demo.ts";
import { ctxCredentials } from "./grpc-credentials.ts";
import { writeLegacyDemo } from "./legacy-demo.ts";

// `bin/ctx`, the operator CLI. Connection settings come from the same environment variables as the
// services (NATS_URL, VALKEY_URL, NEO4J_URL, EVENT_STREAM, ...); see docs/OPERATIONS.md.
const print = (line: string) => console.log(line);
const program = new Command()
  .name("ctx")
  .description("Operate the context service: streams, projections, parked events, demo data")
  .showHelpAfterError();

program
  .command("demo")
  .description("create a demo story with decisions and subtasks through the command service")
  .option(
    "--command-url <url>",
    "command service address",
    process.env.COMMAND_URL ?? "http://127.0.0.1:50051",
  )
  .option(
    "--query-url <url>",
    "query service address",
    process.env.QUERY_URL ?? "http://127.0.0.1:50052",
  )
  .option("--story <id>", "story id", "demo-checkout")
  .option(
    "--legacy-story <id>",
    "also leave a story as a schema-v1 release wrote it (see ctx events)",
    "demo-legacy-invoices",
  )
  .action(
    async (options: {
      commandUrl: string;
      queryUrl: string;
      story: string;
      legacyStory: string;
    }) => {
      const version = await runDemo(options.commandUrl, options.story, print);
      await waitForReadModels(options.story, version, print);
      await printContextAtTwoTimes(options.queryUrl, options.story, print, ctxCredentials());
      await writeLegacyDemo(options.legacyStory, print);
    },
  );

program
  .command("provision")
  .description(
    "create or update the streams and lease buckets the services expect (idempotent; operator credentials)",
  )
  .action(() => provision(print));

const nats = program.command("nats").description("the NATS server's users and permissions");
nats
  .command("auth-config")
  .description(
    "write the server's accounts/users block (public NKeys) and a seed per role (kept if present)",
  )
  .requiredOption("--config <file>", "the server configuration fragment to write")
  .requiredOption("--secrets <dir>", "where each role's seed and env file go (0600)")
  .action((options: { config: string; secrets: string }) => natsAuthConfigCommand(options, print));

const token = program
  .command("token")
  .description("signing keys and bearer tokens for the gRPC services (AUTH=jwt)");
token
  .command("keygen")
  .description("a signing key and the JWKS that verifies it (AUTH_JWKS_FILE); kept if present")
  .requiredOption("--dir <dir>", "where to write signing-key.pem (0600) and jwks.json")
  .option("--kid <id>", "key id (default: ctx-<timestamp>)")
  .option("--rotate", "add a new key, keeping the old ones in the key set")
  .action((options: { dir: string; kid?: string; rotate?: boolean }) => keygen(options, print));
token
  .command("mint")
  .description("print a bearer token signed with a key of ctx token keygen")
  .requiredOption("--key <file>", "the signing key (PKCS#8 PEM)")
  .option("--kid <id>", "key id (default: the one keygen wrote beside the key)")
  .requiredOption("--issuer <iss>", "the issuer the services expect (AUTH_ISSUER)")
  .requiredOption("--audience <aud>", "the audience the services expect (AUTH_AUDIENCE)")
  .requiredOption("--subject <sub>", "who the token stands for: events record jwt:<sub>")
  .option("--roles <roles>", "roles: writer, reader, admin (space or comma separated)", "reader")
  .option("--ttl <duration>", "lifetime, e.g. 30m, 12h, 7d", "1h")
  .action((options: MintOptions) => mint(options, print));

const streams = program.command("streams").description("the JetStream streams");
streams
  .command("provision")
  .description("create or update the event stream and the parked stream (idempotent)")
  .action(() => provisionStreams(print));
streams
  .command("backup")
  .description(
    "a point-in-time snapshot of the event stream (JetStream's own), with its config, state and a manifest with checksums, into a new folder or tar file",
  )
  .requiredOption("--out <path>", "the backup's folder (new, or empty), or a tar file (*.tar)")
  .option("--stream <name>", "the stream to back up (default: EVENT_STREAM)")
  .option("--parked", "also back up the parked stream (PARKED_STREAM)")
  .option("--force", "replace a backup already in --out")
  .option("--json", "print a machine-readable summary, no progress")
  .action((options: BackupCommandOptions) => streamsBackup(options, print));
streams
  .command("restore")
  .description(
    "restore a backup's streams into a server that does not have them (verifies the checksums first, compares the result with the manifest)",
  )
  .requiredOption("--from <path>", "the backup's folder or tar file")
  .option("--replicas <n>", "replicas of the restored streams (default: the backup's)")
  .option("--json", "print a machine-readable summary, no progress")
  .action((options: RestoreCommandOptions) => streamsRestore(options, print));

const projections = program
  .command("projections")
  .description("the read models built from the stream");
projections
  .command("status")
  .description("position, lag, owner and parked count per projection and partition")
  .action(() => projectionsStatus(print));
projections
  .command("rebuild")
  .description(
    "replay the stream into a new generation beside the live one, then switch readers (zero downtime)",
  )
  .argument("<projection>", "neo4j, valkey or all")
  .option("--story <id>", "rebuild one story in place instead")
  .option("--batch-size <n>", "events read per write round (default 64000)", (v) =>
    Number.parseInt(v, 10),
  )
  .action((which: string, options: { story?: string; batchSize?: number }) =>
    rebuildProjections(which, options, print),
  );

const events = program.command("events").description("the stored events and their schema versions");
events
  .command("stats")
  .description("events per (type, schema version) in the stream, and how each is read today")
  .action(() => eventStats(print));
events
  .command("list")
  .description("a story's events: when, what, who (the authenticated principal) and the command")
  .requiredOption("--story <id>", "story id")
  .action((options: { story: string }) => listStoryEvents(options, print));
events
  .command("upcast")
  .description("a story's events as stored and as upcast, side by side (never rewrites anything)")
  .requiredOption("--story <id>", "story id")
  .option("--dry-run", "show, do not write (the only mode: stored events are never rewritten)")
  .action((options: { story: string; dryRun?: boolean }) => upcastDryRun(options, print));

const stories = program
  .command("stories")
  .description("a story's stored messages, and what to do when one cannot be read");
stories
  .command("check")
  .description(
    "every stored message of a story, as readers take it (exits 1 when one cannot be read)",
  )
  .requiredOption("--story <id>", "story id")
  .action((options: { story: string }) => storiesCheck(options, print));
stories
  .command("repair")
  .description(
    "set aside messages of a story no reader can read, recorded in the story's stream (EventsSetAside), so it works again",
  )
  .requiredOption("--story <id>", "story id")
  .requiredOption(
    "--sequence <n>",
    "stream sequence of a message to set aside (repeat for several; see ctx stories check)",
    (v: string, all: string[] = []) => [...all, v],
  )
  .requiredOption("--reason <text>", "why, recorded in the stream")
  .option("--operator <name>", "who, recorded in the stream (default: the user name)")
  .action((options: { story: string; sequence: string[]; reason: string; operator?: string }) =>
    storiesRepair(options, print),
  );

const parked = program.command("parked").description("events a projection could not apply");
parked
  .command("list")
  .option("--projection <name>", "neo4j or valkey")
  .description("list parked events with their reason")
  .action((options: { projection?: string }) => parkedList(options.projection, print));
parked
  .command("replay")
  .option("--projection <name>", "neo4j, valkey or all", "all")
  .option("--story <id>", "only this story")
  .description(
    "rebuild the stories of parked events from the stream; clears the entries that now apply",
  )
  .action((options: { projection?: string; story?: string }) => parkedReplay(options, print));
parked
  .command("discard")
  .argument("[ids...]", "ids from `ctx parked list`")
  .option("--all", "every parked event (of --projection, if given)")
  .option("--projection <name>", "neo4j or valkey")
  .description("forget parked events (their stories stay stale until rebuilt)")
  .action((ids: string[], options: { all?: boolean; projection?: string }) =>
    parkedDiscard(ids, options, print),
  );

try {
  await program.parseAsync();
} catch (e) {
  console.error(`ctx: ${describeFailure(e)}`);
  // A command may have said why it failed (130: interrupted).
  if (!process.exitCode) process.exitCode = 1;
}

/** A failure in an operator's words; NATS's bare "timeout" says nothing of why or what to do. */
function describeFailure(e: unknown): string {
  if (e instanceof natsErrors.TimeoutError || e instanceof natsErrors.NoRespondersError) {
    return `NATS did not answer in time (${e.message}). In a cluster a stream elects a new leader for a few seconds after a server is lost; try again. Otherwise check that NATS is up and NATS_URL names it.`;
  }
  return e instanceof Error ? e.message : String(e);
}
