import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import type { KubeObject } from "./workloads.ts";

/** A rendered overlay: the YAML kubectl applies and the objects in it. */
export interface Rendered {
  readonly yaml: string;
  readonly objects: readonly KubeObject[];
}

/** `kubectl kustomize <dir>`, as the docs tell operators to render an overlay. */
export function render(overlayDir: string): Rendered {
  const yaml = execFileSync("kubectl", ["kustomize", overlayDir], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  const objects = parseAllDocuments(yaml)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null);
  return { yaml, objects };
}

const git = (repo: string, ...args: string[]): string =>
  execFileSync("git", ["-C", repo, ...args], { encoding: "utf8", maxBuffer: 64 << 20 }).trim();

/** An earlier version of the manifests: the commit and the overlay folder of its checkout. */
export interface EarlierManifests {
  readonly commit: string;
  readonly subject: string;
  /** The temporary folder the commit's tree is unpacked into (the caller deletes it). */
  readonly checkoutDir: string;
  readonly overlayDir: string;
}

/**
 * The newest earlier commit whose k8s/ differs from the working tree's and has the overlay: what the
 * cluster runs before this change is deployed. Undefined when the history has none (the manifests'
 * first version). The commit's whole tree is unpacked into a temporary folder (an overlay may refer
 * to files outside k8s/).
 */
export function earlierManifests(repo: string, overlay: string): EarlierManifests | undefined {
  const current = git(repo, "rev-parse", "HEAD:k8s");
  const dirty = git(repo, "status", "--porcelain", "--", "k8s") !== "";
  for (const commit of git(repo, "log", "--format=%H", "--", "k8s").split("\n").filter(Boolean)) {
    let tree: string;
    try {
      tree = git(repo, "rev-parse", `${commit}:k8s`);
      git(repo, "rev-parse", `${commit}:k8s/${overlay}/kustomization.yaml`);
    } catch {
      continue; // k8s/ (or the overlay) removed in that commit
    }
    if (tree === current && !dirty) continue;
    const dir = mkdtempSync(join(tmpdir(), "ctx-k8s-earlier-"));
    execFileSync("bash", [
      "-c",
      `git -C "$1" archive "$2" | tar -x -C "$3"`,
      "-",
      repo,
      commit,
      dir,
    ]);
    return {
      commit,
      checkoutDir: dir,
      subject: git(repo, "log", "-1", "--format=%s", commit),
      overlayDir: join(dir, "k8s", overlay),
    };
  }
  return undefined;
}
