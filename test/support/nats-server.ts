import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { freePort, ownedStackDir, runLocalScript } from "./local-stack.ts";

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
  const port = await freePort();
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...options.names,
    STACK_DIR: dir,
    NATS_PORT: String(port),
    NATS_MONITOR_PORT: String(await freePort()),
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
    env(role) {
      const file = join(dir, "secrets/nats", `${role}.env`);
      const vars = Object.fromEntries(
        readFileSync(file, "utf8")
          .split("\n")
          .filter((line) => line.includes("="))
          .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
      );
      return { NATS_URL: url, ...vars };
    },
    stop,
  };
}
