import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const pkiScript = resolve(import.meta.dirname, "../../deploy/local/pki.sh");

/** A certificate and its key, as PEM file paths (for config) and their contents (for clients). */
export interface TestCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
}

/** A private CA made by deploy/local/pki.sh, the one the local stack uses, in a folder of its own. */
export interface TestPki {
  readonly dir: string;
  readonly caFile: string;
  readonly ca: string;
  /** A server certificate for 127.0.0.1, ::1 and localhost. */
  server(name: string): Promise<TestCertificate>;
  /**
   * A client certificate whose subject CN is `commonName` (default: `name`), with one subject OU
   * per entry of `units` (the gRPC services take a certificate's OUs as its roles).
   */
  client(name: string, commonName?: string, units?: readonly string[]): Promise<TestCertificate>;
  /** The status of an HTTPS GET of `path` on 127.0.0.1:`port`, trusting only this CA. */
  httpsStatus(port: number, path: string): Promise<number>;
}

function certificate(dir: string, name: string): TestCertificate {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  return {
    certFile,
    keyFile,
    cert: readFileSync(certFile, "utf8"),
    key: readFileSync(keyFile, "utf8"),
  };
}

/** Makes a fresh CA in a temporary folder (or in `dir`). */
export async function createTestPki(
  dir = mkdtempSync(join(tmpdir(), "ctx-pki-")),
): Promise<TestPki> {
  await run("bash", [pkiScript, "ca", dir]);
  const caFile = join(dir, "ca.pem");
  const ca = readFileSync(caFile, "utf8");
  return {
    dir,
    caFile,
    ca,
    async server(name) {
      await run("bash", [pkiScript, "server", dir, name]);
      return certificate(dir, name);
    },
    async client(name, commonName, units) {
      const ou = units && units.length > 0 ? [units.join(",")] : [];
      await run("bash", [pkiScript, "client", dir, name, commonName ?? name, ...ou]);
      return certificate(dir, name);
    },
    httpsStatus(port, path) {
      return new Promise((resolveStatus, reject) => {
        const req = request({ host: "127.0.0.1", port, path, ca }, (res) => {
          res.resume();
          resolveStatus(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    },
  };
}
