import { describe, expect, it } from "vitest";
import { craneMutateArgs, loadImageSpec, productionManifest } from "./image-spec.ts";

const provenance = { revision: "abc", version: "abc", created: "2026-01-01T00:00:00Z" };

describe("craneMutateArgs", () => {
  it("gives crane one flag per entrypoint element, the environment in order and the labels", () => {
    const args = craneMutateArgs(loadImageSpec(), "projector", provenance);
    expect(args.filter((a) => a.startsWith("--entrypoint="))).toEqual([
      "--entrypoint=/usr/local/bin/node",
      "--entrypoint=--no-memory-reducer",
      "--entrypoint=--max-semi-space-size=64",
      "--entrypoint=/app/services/projector/src/main.ts",
    ]);
    expect(args).toContain("--user=10001:10001");
    expect(args).toContain("--env=PROJECTOR_OPS_LISTEN=0.0.0.0:9561");
    expect(args).toContain("--exposed-ports=9561/tcp");
    expect(args).toContain("--label=org.opencontainers.image.revision=abc");
    expect(args.some((a) => a.includes("image.source"))).toBe(false);
  });

  it("refuses what crane would split at a comma, and an unknown image", () => {
    const spec = loadImageSpec();
    const image = { ...spec.images.cli, entrypoint: ["/usr/local/bin/node", "a,b"] };
    const broken = { ...spec, images: { ...spec.images, cli: image } } as typeof spec;
    expect(() => craneMutateArgs(broken, "cli", provenance)).toThrow(/comma/);
    expect(() => craneMutateArgs(spec, "nope", provenance)).toThrow(/no image nope/);
  });
});

describe("productionManifest", () => {
  it("drops dev and peer dependencies and keeps the rest", () => {
    expect(
      productionManifest({
        name: "@ctx/x",
        dependencies: { zod: "4.6.7" },
        devDependencies: { vitest: "5.1.1" },
        peerDependencies: { vitest: "5.1.1" },
        peerDependenciesMeta: { vitest: { optional: true } },
      }),
    ).toEqual({ name: "@ctx/x", dependencies: { zod: "4.6.7" } });
  });
});
