import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/**
 * CPU time used so far, in seconds (user + system), from /proc, by a process or, with `thread`, by
 * one of its threads (a Node process's main thread has the process's id); undefined if unreadable.
 */
function cpuSeconds(pid: number, thread = false): number | undefined {
  try {
    const stat = readFileSync(
      thread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`,
      "utf8",
    );
    // Fields after the command name (which may contain spaces) start after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / clockTicks();
  } catch {
    return undefined;
  }
}

/**
 * CPU time this process's children used that it has reaped so far (cutime + cstime), in seconds:
 * a short-lived helper (the Go load generator) that exits within a phase lands here.
 */
function reapedChildrenSeconds(): number {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[13]) + Number(fields[14])) / clockTicks();
  } catch {
    return 0;
  }
}

let ticks: number | undefined;
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** Busy and total CPU time of the whole machine so far, in seconds, from /proc/stat. */
function machineSeconds(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const [, ...values] = line.trim().split(/\s+/);
    const n = values.map(Number);
    const total = n.reduce((a, b) => a + b, 0);
    const idle = (n[3] ?? 0) + (n[4] ?? 0);
    return { busy: (total - idle) / clockTicks(), total: total / clockTicks() };
  } catch {
    return undefined;
  }
}

/** Share of one core each process used over a phase, in percent (200 % = both cores of a 2-core box). */
export type CpuShares = Record<string, number>;

/**
 * Starts measuring the CPU used by the given processes (by pid; "bench" is this process and the
 * child processes it reaped meanwhile, such as the Go load generator), returns a
 * function that ends the measurement. "other" is what the rest of the machine used meanwhile: on a
 * shared box, a busy neighbour shows up there rather than as a slow service. `mainThreads` are
 * measured on their main thread alone (reported as `<name>Main`): near 100 %, a Node process is
 * bound by its event loop, whatever its total share.
 */
export function measureCpu(
  pids: Readonly<Record<string, number | readonly number[] | undefined>>,
  mainThreads: readonly string[] = [],
): () => CpuShares {
  const started = performance.now();
  const self = process.cpuUsage();
  const children = reapedChildrenSeconds();
  const machineBefore = machineSeconds();
  const read = () => {
    const out: Record<string, number | undefined> = {};
    for (const [name, pid] of Object.entries(pids)) {
      if (Array.isArray(pid)) {
        // Several processes of one kind (a cluster's nodes): their sum.
        const each = pid.map((p: number) => cpuSeconds(p));
        out[name] = each.includes(undefined) ? undefined : each.reduce((a = 0, b = 0) => a + b, 0);
        continue;
      }
      const one = pid as number | undefined;
      out[name] = one === undefined ? undefined : cpuSeconds(one);
      if (mainThreads.includes(name)) {
        out[`${name}Main`] = one === undefined ? undefined : cpuSeconds(one, true);
      }
    }
    return out;
  };
  const before = read();
  return () => {
    const wall = (performance.now() - started) / 1000;
    const used = process.cpuUsage(self);
    const after = read();
    // The bench and the helpers it ran to completion meanwhile (they are its client too).
    const bench = (used.user + used.system) / 1e6 + (reapedChildrenSeconds() - children);
    const shares: CpuShares = { bench: (bench / wall) * 100 };
    for (const [name, end] of Object.entries(after)) {
      const start = before[name];
      if (start !== undefined && end !== undefined) shares[name] = ((end - start) / wall) * 100;
    }
    const machineAfter = machineSeconds();
    if (machineBefore && machineAfter) {
      const busy = ((machineAfter.busy - machineBefore.busy) / wall) * 100;
      const ours = Object.keys(pids).reduce(
        (sum, name) => sum + (shares[name] ?? 0),
        shares.bench ?? 0,
      );
      shares.other = Math.max(0, busy - ours);
    }
    return shares;
  };
}
