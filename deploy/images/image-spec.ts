import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * What one image runs: deploy/images/images.json, the single description both builders follow
 * (build.sh through {@link craneMutateArgs}; the Dockerfile is checked against it by a test).
 */
export interface ImageDefinition {
  readonly description: string;
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly ports: readonly number[];
}

/** Every image of the context service: one root filesystem and app, a start command each. */
export interface ImageSpec {
  readonly user: { readonly name: string; readonly uid: number; readonly gid: number };
  readonly workdir: string;
  readonly node: string;
  /** Variables every image sets (each image's own come after them). */
  readonly env: Readonly<Record<string, string>>;
  readonly images: Readonly<Record<string, ImageDefinition>>;
}

/** Where a build comes from: the OCI annotation labels every image carries. */
export interface ImageProvenance {
  readonly revision: string;
  readonly version: string;
  /** The commit's time (ISO 8601): reproducible, unlike the time of the build. */
  readonly created: string;
  /** The repository's address, when it has one. */
  readonly source?: string;
}

export function loadImageSpec(path = join(import.meta.dirname, "images.json")): ImageSpec {
  return JSON.parse(readFileSync(path, "utf8")) as ImageSpec;
}

/** The image's environment: the shared variables, then its own, in that order. */
export function imageEnv(spec: ImageSpec, name: string): [string, string][] {
  return Object.entries({ ...spec.env, ...definition(spec, name).env });
}

/** The OCI labels of an image (org.opencontainers.image.*), sorted by name. */
export function imageLabels(
  spec: ImageSpec,
  name: string,
  provenance: ImageProvenance,
): [string, string][] {
  const labels: Record<string, string> = {
    "org.opencontainers.image.title": `ctx-${name}`,
    "org.opencontainers.image.description": definition(spec, name).description,
    "org.opencontainers.image.revision": provenance.revision,
    "org.opencontainers.image.version": provenance.version,
    "org.opencontainers.image.created": provenance.created,
    ...(provenance.source ? { "org.opencontainers.image.source": provenance.source } : {}),
  };
  return Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
}

/**
 * The arguments of `crane mutate` that give the shared layers an image's configuration: user,
 * working directory, entrypoint, command, environment, exposed ports, labels and platform.
 */
export function craneMutateArgs(
  spec: ImageSpec,
  name: string,
  provenance: ImageProvenance,
): string[] {
  const image = definition(spec, name);
  const args = [
    "--set-platform=linux/amd64",
    `--user=${spec.user.uid}:${spec.user.gid}`,
    `--workdir=${spec.workdir}`,
    // crane splits list flags at commas: one flag per element keeps an element whole.
    ...image.entrypoint.map((a) => `--entrypoint=${a}`),
    ...image.cmd.map((a) => `--cmd=${a}`),
    ...imageEnv(spec, name).map(([k, v]) => `--env=${k}=${v}`),
    ...image.ports.map((p) => `--exposed-ports=${p}/tcp`),
    ...imageLabels(spec, name, provenance).map(([k, v]) => `--label=${k}=${v}`),
  ];
  for (const a of [...image.entrypoint, ...image.cmd]) {
    if (a.includes(",")) throw new Error(`${name}: crane cannot pass "${a}" (a comma)`);
  }
  return args;
}

/**
 * A workspace package.json as the images install it: without devDependencies and without peer
 * dependencies. Our packages declare peers only for their `./testing` helpers (vitest,
 * fast-check), and pnpm installs peers by itself (auto-install-peers), so vitest and its bundler
 * would otherwise land in every image.
 */
export function productionManifest(
  manifest: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const {
    devDependencies: _dev,
    peerDependencies: _peers,
    peerDependenciesMeta: _meta,
    ...rest
  } = manifest;
  return rest;
}

function definition(spec: ImageSpec, name: string): ImageDefinition {
  const image = spec.images[name];
  if (!image) {
    throw new Error(`no image ${name} in images.json (${Object.keys(spec.images).join(", ")})`);
  }
  return image;
}

// `node deploy/images/image-spec.ts names | mutate-args <name> | production-manifests <file...>`:
// for build.sh; lists NUL-separated, manifests rewritten in place.
if (import.meta.main) {
  const [command, name = "", ...more] = process.argv.slice(2);
  if (command === "production-manifests") {
    for (const file of [name, ...more]) {
      const manifest = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
      writeFileSync(file, `${JSON.stringify(productionManifest(manifest), null, 2)}\n`);
    }
    process.exit(0);
  }
  const spec = loadImageSpec();
  const env = process.env;
  const out =
    command === "names"
      ? Object.keys(spec.images)
      : command === "mutate-args"
        ? craneMutateArgs(spec, name, {
            revision: env.IMAGE_REVISION ?? "",
            version: env.IMAGE_VERSION ?? "",
            created: env.IMAGE_CREATED ?? "",
            ...(env.IMAGE_SOURCE ? { source: env.IMAGE_SOURCE } : {}),
          })
        : undefined;
  if (!out) {
    process.stderr.write(
      "usage: image-spec.ts names | mutate-args <name> | production-manifests <file...>\n",
    );
    process.exit(2);
  }
  process.stdout.write(out.map((a) => `${a}\0`).join(""));
}
