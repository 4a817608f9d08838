import { printContextAtTwoTimes } from "@ctx/query-service";
import { errors as natsErrors } from "@nats-io/transport-node";
import { Argument, Command, CommanderError, Option } from "commander";
import { addConnectionOptions, applyConnectionOptions } from "./cli/connection-options.ts";
import {
  durationOption,
  integerListOption,
  integerOption,
  timeOption,
} from "./cli/option-parsers.ts";
import {
  createOutput,
  exitCodes,
  failureText,
  type Output,
  render,
  type View,
} from "./cli/output.ts";
import { productVersion } from "./cli/version.ts";
import {
  auditCheckpoint,
  auditKeygen,
  auditVerify,
  auditVerifyView,
  checkpointKeyView,
  checkpointWrittenView,
} from "./commands/audit.ts";
import {
  auditReportDataView,
  auditReportWrittenView,
  collectReport,
  type ReportFormat,
  writeReport,
} from "./commands/audit-report.ts";
import {
  type BackupCommandOptions,
  backupWrittenView,
  type RestoreCommandOptions,
  restoreDoneView,
  streamsBackup,
  streamsRestore,
} from "./commands/backup.ts";
import {
  eventStats,
  eventStatsView,
  listStoryEvents,
  storyEventsView,
  upcastDryRun,
  upcastDryRunView,
} from "./commands/events.ts";
import { natsAuthConfigCommand, natsAuthWrittenView } from "./commands/nats.ts";
import {
  parkedDiscard,
  parkedDiscardView,
  parkedList,
  parkedListView,
  parkedReplay,
  parkedReplayView,
} from "./commands/parked.ts";
import {
  projectionsStatus,
  projectionsStatusView,
  rebuildProjections,
  rebuildView,
} from "./commands/projections.ts";
import { provision } from "./commands/provision.ts";
import {
  storiesCheck,
  storiesRepair,
  storyCheckView,
  storyRepairView,
} from "./commands/stories.ts";
import { provisionedView, provisionStreams } from "./commands/streams.ts";
import {
  keygen,
  type MintOptions,
  mint,
  mintedTokenView,
  signingKeyView,
} from "./commands/token.ts";
import { demoView, runDemo, waitForReadModels } from "./demo.ts";
import { ctxCredentials } from "./grpc-credentials.ts";
import { writeLegacyDemo } from "./legacy-demo.ts";

// `bin/ctx`, the operator CLI. Connection settings come from the same environment variables as the
// services (NATS_URL, VALKEY_URL, NEO4J_URL, EVENT_STREAM, ...), or the global options that stand
// for them; see docs/OPERATIONS.md, "The ctx CLI", also for the exit codes and --json.

/** --json anywhere: usage errors and failures are JSON on stderr too (one shape for scripts). */
const jsonRequested = process.argv.slice(2).includes("--json");

const program = new Command()
  .name("ctx")
  .description("Operate the context service: streams, projections, parked events, demo data")
  .version(productVersion(), "-V, --version", "print ctx's version")
  // Usage errors exit 2, not commander's 1; inherited by the subcommands added below.
  .exitOverride()
  .configureOutput({
    outputError: (message, write) =>
      write(
        jsonRequested
          ? `${failureText(message.replace(/^error: /, "").trim(), true, { name: "UsageError", exitCode: exitCodes.usage })}\n`
          : message,
      ),
  })
  .showHelpAfterError(!jsonRequested);
addConnectionOptions(program).hook("preAction", () => applyConnectionOptions(program));

const jsonOption = () => new Option("--json", "print one JSON document on stdout, no progress");

/** Runs a command that reports: its result rendered once, as text or JSON; its exit code set. */
async function report<T>(
  options: { json?: boolean },
  view: View<T>,
  run: (output: Output) => Promise<T> | T,
): Promise<void> {
  const output = createOutput({ json: options.json === true });
  const code = render(await run(output), view, output);
  if (code !== exitCodes.ok) process.exitCode = code;
}

program
  .command("version")
  .description("ctx's version and the Node it runs on")
  .addOption(jsonOption())
  .action((options: { json?: boolean }) =>
    report(options, { text: (v: { version: string }) => [v.version] }, () => ({
      version: productVersion(),
      node: process.version,
    })),
  );

program
  .command("demo")
  .description(
    "create a demo story with decisions and subtasks through the command service (--command-url, --query-url)",
  )
  .option("--story <id>", "story id", "demo-checkout")
  .option(
    "--legacy-story <id>",
    "also leave a story as a schema-v1 release wrote it (see ctx events)",
    "demo-legacy-invoices",
  )
  .addOption(jsonOption())
  .action((options: { story: string; legacyStory: string; json?: boolean }) =>
    report(options, demoView, async () => {
      const commandUrl = process.env.COMMAND_URL ?? "http://127.0.0.1:50051";
      const queryUrl = process.env.QUERY_URL ?? "http://127.0.0.1:50052";
      const { version, steps } = await runDemo(commandUrl, options.story);
      const readModels = await waitForReadModels(options.story, version);
      const timeTravel: string[] = [];
      await printContextAtTwoTimes(
        queryUrl,
        options.story,
        (line) => timeTravel.push(line),
        ctxCredentials(),
      );
      const legacy = await writeLegacyDemo(options.legacyStory);
      return { story: options.story, commandUrl, steps, readModels, timeTravel, legacy };
    }),
  );

program
  .command("provision")
  .description(
    "create or update the streams and lease buckets the services expect (idempotent; operator credentials)",
  )
  .addOption(jsonOption())
  .action((options: { json?: boolean }) => report(options, provisionedView, () => provision()));

const nats = program.command("nats").description("the NATS server's users and permissions");
nats
  .command("auth-config")
  .description(
    "write the server's accounts/users block (public NKeys) and a seed per role (kept if present)",
  )
  .requiredOption("--config <file>", "the server configuration fragment to write")
  .requiredOption("--secrets <dir>", "where each role's seed and env file go (0600)")
  .addOption(jsonOption())
  .action((options: { config: string; secrets: string; json?: boolean }) =>
    report(options, natsAuthWrittenView, () => natsAuthConfigCommand(options)),
  );

const token = program
  .command("token")
  .description("signing keys and bearer tokens for the gRPC services (AUTH=jwt)");
token
  .command("keygen")
  .description("a signing key and the JWKS that verifies it (AUTH_JWKS_FILE); kept if present")
  .requiredOption("--dir <dir>", "where to write signing-key.pem (0600) and jwks.json")
  .option("--kid <id>", "key id (default: ctx-<timestamp>)")
  .option("--rotate", "add a new key, keeping the old ones in the key set")
  .addOption(jsonOption())
  .action((options: { dir: string; kid?: string; rotate?: boolean; json?: boolean }) =>
    report(options, signingKeyView, () => keygen(options)),
  );
token
  .command("mint")
  .description("print a bearer token signed with a key of ctx token keygen")
  .requiredOption("--key <file>", "the signing key (PKCS#8 PEM)")
  .option("--kid <id>", "key id (default: the one keygen wrote beside the key)")
  .requiredOption("--issuer <iss>", "the issuer the services expect (AUTH_ISSUER)")
  .requiredOption("--audience <aud>", "the audience the services expect (AUTH_AUDIENCE)")
  .requiredOption("--subject <sub>", "who the token stands for: events record jwt:<sub>")
  .option(
    "--roles <roles>",
    "roles: writer, reader, auditor, admin (space or comma separated)",
    "reader",
  )
  .addOption(
    new Option("--ttl <duration>", "lifetime, e.g. 90s, 30m, 12h, 7d")
      .argParser(durationOption)
      .default(3600, "1h"),
  )
  .addOption(jsonOption())
  .action((options: MintOptions & { json?: boolean }) =>
    report(options, mintedTokenView, () => mint(options)),
  );

const streams = program.command("streams").description("the JetStream streams");
streams
  .command("provision")
  .description("create or update the event stream and the parked stream (idempotent)")
  .addOption(jsonOption())
  .action((options: { json?: boolean }) =>
    report(options, provisionedView, () => provisionStreams()),
  );
streams
  .command("backup")
  .description(
    "a point-in-time snapshot of the event stream (JetStream's own), with its config, state and a manifest with checksums, into a new folder or tar file",
  )
  .requiredOption("--out <path>", "the backup's folder (new, or empty), or a tar file (*.tar)")
  .option("--stream <name>", "the stream to back up (default: EVENT_STREAM)")
  .option("--parked", "also back up the parked stream (PARKED_STREAM)")
  .option("--force", "replace a backup already in --out")
  .addOption(jsonOption())
  .action((options: BackupCommandOptions & { json?: boolean }) =>
    report(options, backupWrittenView, (output) => streamsBackup(options, output)),
  );
streams
  .command("restore")
  .description(
    "restore a backup's streams into a server that does not have them (verifies the checksums first, compares the result with the manifest)",
  )
  .requiredOption("--from <path>", "the backup's folder or tar file")
  .option(
    "--replicas <n>",
    "replicas of the restored streams, 1 to 5 (default: the backup's)",
    integerOption(1, 5),
  )
  .addOption(jsonOption())
  .action((options: RestoreCommandOptions & { json?: boolean }) =>
    report(options, restoreDoneView, (output) => streamsRestore(options, output)),
  );

const projections = program
  .command("projections")
  .description("the read models built from the stream");
projections
  .command("status")
  .description("position, lag, owner and parked count per projection and partition")
  .addOption(jsonOption())
  .action((options: { json?: boolean }) =>
    report(options, projectionsStatusView, () => projectionsStatus()),
  );
projections
  .command("rebuild")
  .description(
    "replay the stream into a new generation beside the live one, then switch readers (zero downtime)",
  )
  .addArgument(new Argument("<projection>", "the read model").choices(["neo4j", "valkey", "all"]))
  .option("--story <id>", "rebuild one story in place instead")
  .option(
    "--batch-size <n>",
    "events read per write round, at least 1 (default 64000)",
    integerOption(1),
  )
  .option("--operator <name>", "who runs it, for the operations log (default: user@host)")
  .addOption(jsonOption())
  .action(
    (
      which: string,
      options: { story?: string; batchSize?: number; operator?: string; json?: boolean },
    ) => report(options, rebuildView, (output) => rebuildProjections(which, options, output)),
  );

const events = program.command("events").description("the stored events and their schema versions");
events
  .command("stats")
  .description("events per (type, schema version) in the stream, and how each is read today")
  .addOption(jsonOption())
  .action((options: { json?: boolean }) =>
    report(options, eventStatsView, (output) => eventStats(output)),
  );
events
  .command("list")
  .description("a story's events: when, what, who (the authenticated principal) and the command")
  .requiredOption("--story <id>", "story id")
  .addOption(jsonOption())
  .action((options: { story: string; json?: boolean }) =>
    report(options, storyEventsView, () => listStoryEvents(options)),
  );
events
  .command("upcast")
  .description("a story's events as stored and as upcast, side by side (never rewrites anything)")
  .requiredOption("--story <id>", "story id")
  .option("--dry-run", "show, do not write (the only mode: stored events are never rewritten)")
  .addOption(jsonOption())
  .action((options: { story: string; dryRun?: boolean; json?: boolean }) =>
    report(options, upcastDryRunView, () => upcastDryRun(options)),
  );

const stories = program
  .command("stories")
  .description("a story's stored messages, and what to do when one cannot be read");
stories
  .command("check")
  .description(
    "every stored message of a story, as readers take it (exits 1 when one cannot be read)",
  )
  .requiredOption("--story <id>", "story id")
  .addOption(jsonOption())
  .action((options: { story: string; json?: boolean }) =>
    report(options, storyCheckView, () => storiesCheck(options)),
  );
stories
  .command("repair")
  .description(
    "set aside messages of a story no reader can read, recorded in the story's stream (EventsSetAside), so it works again",
  )
  .requiredOption("--story <id>", "story id")
  .requiredOption(
    "--sequence <n>",
    "stream sequence of a message to set aside (repeat for several; see ctx stories check)",
    integerListOption(1),
  )
  .requiredOption("--reason <text>", "why, recorded in the stream")
  .option("--operator <name>", "who, recorded in the stream (default: the user name)")
  .addOption(jsonOption())
  .action(
    (options: {
      story: string;
      sequence: number[];
      reason: string;
      operator?: string;
      json?: boolean;
    }) => report(options, storyRepairView, () => storiesRepair(options)),
  );

/** --event-keys: the folder of event signing keys (AUDIT_EVENT_KEYS_DIR). */
const eventKeysOption = () =>
  new Option(
    "--event-keys <dir>",
    "the event signing keys (a file per key): each signed event's signature is checked",
  ).env("AUDIT_EVENT_KEYS_DIR");

const audit = program
  .command("audit")
  .description("verify the stream's history: every story's hash chain, from the stored bytes");
audit
  .command("verify")
  .description(
    "recompute the hash chain of a story (--story) or of every story (--all) from the stored bytes; exits 1 on any break (docs/AUDIT.md)",
  )
  .addOption(new Option("--story <id>", "one story").conflicts("all"))
  .addOption(
    new Option(
      "--all",
      "every story of the stream, and the stream against its signed checkpoints (a progress bar on a terminal)",
    ),
  )
  .addOption(
    new Option(
      "--keys <dir>",
      "the checkpoint keys (a file per key, named by its id): with --all, checks the checkpoints' signatures",
    ).env("AUDIT_KEYS_DIR"),
  )
  .addOption(eventKeysOption())
  .addOption(jsonOption())
  .action(
    (
      options: { story?: string; all?: boolean; keys?: string; eventKeys?: string; json?: boolean },
      command: Command,
    ) => {
      if (options.story === undefined && options.all !== true) {
        command.error("error: give --story <id> or --all", { exitCode: exitCodes.usage });
      }
      return report(options, auditVerifyView, (output) => auditVerify(options, output));
    },
  );
audit
  .command("checkpoint")
  .description(
    "sign what the event stream holds now: a checkpoint (stream position and hash, HMAC-SHA256) in its own stream; run it on a schedule",
  )
  .addOption(
    new Option("--keys <dir>", "the checkpoint keys (a file per key, named by its id)")
      .env("AUDIT_KEYS_DIR")
      .makeOptionMandatory(),
  )
  .option("--key-id <id>", "the key to sign with (needed when the folder holds several)")
  .option(
    "--min-events <n>",
    "sign only once this many messages were stored since the last checkpoint (or --max-age passed)",
    integerOption(1),
  )
  .addOption(
    new Option(
      "--max-age <duration>",
      "with --min-events: sign anyway once the last checkpoint is this old (90s, 15m, 1h)",
    ).argParser(durationOption),
  )
  .addOption(jsonOption())
  .action(
    (options: {
      keys: string;
      keyId?: string;
      minEvents?: number;
      maxAge?: number;
      json?: boolean;
    }) =>
      report(options, checkpointWrittenView, (output) =>
        auditCheckpoint(
          {
            ...options,
            ...(options.maxAge === undefined ? {} : { maxAgeSeconds: options.maxAge }),
          },
          output,
        ),
      ),
  );
audit
  .command("report")
  .description(
    "a report of a period: events per type, actor and day with charts, the whole history verified (chains, checkpoints), parked events, repairs and rebuilds; exits 1 on a break",
  )
  .option(
    "--from <time>",
    "start of the period (2026-12-01 or 2026-12-01T08:00:00Z; default: a week before --to)",
    timeOption,
  )
  .option("--to <time>", "end of the period, excluded (default: now)", timeOption)
  .addOption(
    new Option("--format <format>", "md, html or pdf").choices(["md", "html", "pdf"]).default("md"),
  )
  .option(
    "--out <file>",
    "write the report to this file (default: stdout; a PDF needs a file or a pipe)",
  )
  .addOption(
    new Option(
      "--keys <dir>",
      "the checkpoint keys: the checkpoints' signatures are checked too",
    ).env("AUDIT_KEYS_DIR"),
  )
  .addOption(eventKeysOption())
  .addOption(jsonOption())
  .action(
    (options: {
      from?: Date;
      to?: Date;
      format: ReportFormat;
      out?: string;
      keys?: string;
      eventKeys?: string;
      json?: boolean;
    }) =>
      options.json === true
        ? report(options, auditReportDataView, () => collectReport(options))
        : report(options, auditReportWrittenView, () => writeReport(options)),
  );
audit
  .command("keygen")
  .description("a new random checkpoint key, written to the keys folder (0600); old keys are kept")
  .requiredOption("--keys <dir>", "the checkpoint keys folder")
  .option("--key-id <id>", "its id (default: ckpt-<time>)")
  .addOption(jsonOption())
  .action((options: { keys: string; keyId?: string; json?: boolean }) =>
    report(options, checkpointKeyView, () => auditKeygen(options)),
  );

const parked = program.command("parked").description("events a projection could not apply");
parked
  .command("list")
  .addOption(new Option("--projection <name>", "only this read model").choices(["neo4j", "valkey"]))
  .addOption(jsonOption())
  .description("list parked events with their reason")
  .action((options: { projection?: string; json?: boolean }) =>
    report(options, parkedListView, () => parkedList(options.projection)),
  );
parked
  .command("replay")
  .addOption(
    new Option("--projection <name>", "the read model")
      .choices(["neo4j", "valkey", "all"])
      .default("all"),
  )
  .option("--story <id>", "only this story")
  .addOption(jsonOption())
  .description(
    "rebuild the stories of parked events from the stream; clears the entries that now apply",
  )
  .action((options: { projection?: string; story?: string; json?: boolean }) =>
    report(options, parkedReplayView, () => parkedReplay(options)),
  );
parked
  .command("discard")
  .addArgument(
    new Argument("[ids...]", "ids from `ctx parked list`").argParser(integerListOption(1)),
  )
  .option("--all", "every parked event (of --projection, if given)")
  .addOption(new Option("--projection <name>", "only this read model").choices(["neo4j", "valkey"]))
  .addOption(jsonOption())
  .description("forget parked events (their stories stay stale until rebuilt)")
  .action(
    (ids: number[] | undefined, options: { all?: boolean; projection?: string; json?: boolean }) =>
      report(options, parkedDiscardView, () => parkedDiscard(ids ?? [], options)),
  );

try {
  await program.parseAsync();
} catch (e) {
  if (e instanceof CommanderError) {
    // Commander has said why (help, the version, or a usage error) on its output.
    process.exitCode = e.exitCode === 0 ? exitCodes.ok : exitCodes.usage;
  } else {
    // A command may have said why it failed (130: interrupted).
    if (!process.exitCode) process.exitCode = exitCodes.failed;
    const name = e instanceof Error ? e.name : undefined;
    console.error(
      failureText(describeFailure(e), jsonRequested, {
        ...(name === undefined ? {} : { name }),
        exitCode: Number(process.exitCode),
      }),
    );
  }
}

/** A failure in an operator's words; NATS's bare "timeout" says nothing of why or what to do. */
function describeFailure(e: unknown): string {
  if (e instanceof natsErrors.TimeoutError || e instanceof natsErrors.NoRespondersError) {
    return `NATS did not answer in time (${e.message}). In a cluster a stream elects a new leader for a few seconds after a server is lost; try again. Otherwise check that NATS is up and NATS_URL names it.`;
  }
  return e instanceof Error ? e.message : String(e);
}
