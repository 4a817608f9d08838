/**
 * R1 against R3 in one run: the write-side bench's measured phases (appends through the command
 * service, and the raw pre-encoded publish of the same run) on one nats-server with R1 streams, then
 * on a three-node JetStream cluster on the same machine with R3 streams. What replication costs an
 * append, as ratios of the same run (the VM's speed drifts between runs).
 *
 * Env: BENCH_LEVELS (16,256), BENCH_CLIENT (go), BENCH_SECONDS (10) and the rest of write-side.ts's.
 * Writes bench/results/durability.json.
 */
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "./support/servers.ts";
import { resultsDir } from "./support/settings.ts";
import { fmt, table } from "./support/stats.ts";

const run = promisify(execFile);

interface Phase {
  readonly perSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  readonly cpuPercent: Readonly<Record<string, number>>;
}
interface Level {
  readonly concurrency: number;
  readonly commandService: Phase;
  readonly rawPreEncoded: Phase;
}
interface WriteSide {
  readonly machine: {
    readonly cpus: number;
    readonly cpuModel: string;
    readonly natsServer: string;
  };
  readonly levels: readonly Level[];
}

async function writeSide(cluster: number): Promise<WriteSide> {
  const env = {
    ...process.env,
    BENCH_LEVELS: process.env.BENCH_LEVELS ?? "16,256",
    BENCH_CLIENT: process.env.BENCH_CLIENT ?? "go",
    BENCH_READS: "0",
    BENCH_NATS_CLUSTER: String(cluster),
  };
  console.error(`== ${cluster === 1 ? "R1, one nats-server" : `R3, a cluster of ${cluster}`}`);
  const { stderr } = await run(process.execPath, [join(repoRoot, "bench/write-side.ts")], {
    env,
    maxBuffer: 64 * 1024 * 1024,
  });
  process.stderr.write(stderr);
  const file = cluster > 1 ? "write-side-cluster.json" : "write-side.json";
  return JSON.parse(readFileSync(join(resultsDir, file), "utf8")) as WriteSide;
}

const r1 = await writeSide(1);
const r3 = await writeSide(3);

const rows = r1.levels.flatMap((one) => {
  const three = r3.levels.find((l) => l.concurrency === one.concurrency);
  if (three === undefined) return [];
  const row = (label: string, l: Level, base?: Level) => [
    String(l.concurrency),
    label,
    fmt(l.commandService.perSecond, 0),
    fmt(l.commandService.latencyMs.p99, 2),
    fmt(l.rawPreEncoded.perSecond, 0),
    `${fmt((l.commandService.perSecond / l.rawPreEncoded.perSecond) * 100, 0)} %`,
    base === undefined
      ? "—"
      : `${fmt((l.commandService.perSecond / base.commandService.perSecond) * 100, 0)} %`,
    fmt(l.commandService.cpuPercent.nats ?? 0, 0),
  ];
  return [row("R1", one), row("R3", three, one)];
});

console.log(
  [
    `Durability — ${r1.machine.cpus} CPUs (${r1.machine.cpuModel}), nats-server ${r1.machine.natsServer}; client, command service and every nats-server share the machine.`,
    "",
    table(
      [
        "in flight",
        "replicas",
        "appends/s",
        "p99 ms",
        "raw pre-encoded/s",
        "service / raw",
        "R3 / R1",
        "NATS CPU % (all nodes)",
      ],
      rows,
    ),
  ].join("\n"),
);
mkdirSync(resultsDir, { recursive: true });
writeFileSync(
  join(resultsDir, "durability.json"),
  `${JSON.stringify({ bench: "durability", r1, r3 }, null, 2)}\n`,
);
console.log("\nJSON: bench/results/durability.json");
