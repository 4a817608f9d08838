import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { freePorts, ownedStackDir, runLocalScript } from "./local-stack.ts";
import { natsRoleEnv } from "./nats-role-env.ts";

export interface NatsServerOptions {
  /** Serve TLS with this certificate; with `ca`, clients must present a certificate it signed. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile?: string };
  /** Stream names the users' permissions are written for (EVENT_STREAM, ...; defaults otherwise). */
  readonly names?: Readonly<Record<string, string>>;
}

/** A NATS server of one spec's own, started by deploy/local/nats.sh with the shipped users. */
export interface TestNatsServer {
  readonly url: string;
  /** The variables a process of that role connects with (URL, seed file, inbox prefix). */
  env(role: string): Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Starts NATS exactly as the local stack does (users generated, authentication on) on free ports,
 * in a folder under .stack/test that the next run reaps if this one dies.
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<TestNatsServer> {
  const dir = ownedStackDir("nats");
  const [port, monitorPort] = (await freePorts(2)) as [number, number];
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...options.names,
    STACK_DIR: dir,
    NATS_PORT: String(port),
    NATS_MONITOR_PORT: String(monitorPort),
    ...(options.tls
      ? {
          NATS_SERVER_TLS_CERT: options.tls.certFile,
          NATS_SERVER_TLS_KEY: options.tls.keyFile,
          ...(options.tls.caFile ? { NATS_SERVER_TLS_CA: options.tls.caFile } : {}),
        }
      : {}),
  };
  const script = (action: "start" | "stop") => runLocalScript("nats", action, env);
  const stop = async () => {
    await script("stop");
    rmSync(dir, { recursive: true, force: true });
  };
  await script("start").catch(async (e: unknown) => {
    await stop().catch(() => undefined);
    throw e;
  });
  const url = `${options.tls ? "tls" : "nats"}://127.0.0.1:${port}`;
  return {
    url,
    env: (role) => ({ NATS_URL: url, ...natsRoleEnv(dir, role) }),
    stop,
  };
}

/** One nats-server of a TestNatsCluster. */
export interface TestNatsNode {
  /** Its server_name, as JetStream's cluster info names leaders and replicas (`nats-0`, ...). */
  readonly name: string;
  /** This node's client URL. */
  readonly url: string;
  /** Its monitoring endpoint: `/healthz`, `/jsz`, `/routez`. */
  readonly monitorUrl: string;
  /** The running process's pid; undefined when it is not running. */
  pid(): number | undefined;
  /** Sends a signal to the node's process (SIGKILL, SIGSTOP, SIGCONT, SIGTERM); none when stopped. */
  signal(signal: NodeJS.Signals): void;
  /** Starts it again on its data if it is not running, and waits until the cluster is current. */
  start(): Promise<void>;
}

/** A JetStream cluster of one spec's own, started by deploy/local/nats.sh with NATS_CLUSTER. */
export interface TestNatsCluster {
  /** Every node's client URL, comma-separated: what NATS_URL takes. */
  readonly url: string;
  readonly nodes: readonly TestNatsNode[];
  /** NATS_URL (every node) and the variables a process of that role connects with. */
  env(role: string): Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Starts a JetStream cluster exactly as `make up NATS_CLUSTER=3` does (routes between the nodes on
 * 127.0.0.1, the shipped users, a data folder each) on free ports, in a folder under .stack/test
 * that the next run reaps if this one dies. Streams on it may have up to `nodes` replicas.
 */
export async function startNatsCluster(
  options: { readonly nodes?: number; readonly names?: Readonly<Record<string, string>> } = {},
): Promise<TestNatsCluster> {
  const count = options.nodes ?? 3;
  const dir = ownedStackDir("nats-cluster");
  // All at once: distinct from one another (see freePorts).
  const all = await freePorts(count * 3);
  const client = all.slice(0, count);
  const monitor = all.slice(count, 2 * count);
  const routes = all.slice(2 * count);
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...options.names,
    STACK_DIR: dir,
    NATS_CLUSTER: String(count),
    NATS_PORTS: client.join(","),
    NATS_MONITOR_PORTS: monitor.join(","),
    NATS_CLUSTER_PORTS: routes.join(","),
  };
  const script = (action: "start" | "stop") => runLocalScript("nats", action, env);
  const stop = async () => {
    // A stopped (SIGSTOP) node would not hear the TERM.
    for (const node of nodes) node.signal("SIGCONT");
    await script("stop");
    rmSync(dir, { recursive: true, force: true });
  };
  const nodes: TestNatsNode[] = client.map((port, i) => {
    const pidFile = join(dir, "run", `nats-${i}.pid`);
    const pid = () => {
      if (!existsSync(pidFile)) return undefined;
      const value = Number(readFileSync(pidFile, "utf8"));
      try {
        process.kill(value, 0);
        return value;
      } catch {
        return undefined;
      }
    };
    return {
      name: `nats-${i}`,
      url: `nats://127.0.0.1:${port}`,
      monitorUrl: `http://127.0.0.1:${monitor[i]}`,
      pid,
      signal(signal) {
        const value = pid();
        if (value !== undefined) process.kill(value, signal);
      },
      start: () => script("start"),
    };
  });
  await script("start").catch(async (e: unknown) => {
    await stop().catch(() => undefined);
    throw e;
  });
  const url = nodes.map((n) => n.url).join(",");
  return { url, nodes, env: (role) => ({ NATS_URL: url, ...natsRoleEnv(dir, role) }), stop };
}
