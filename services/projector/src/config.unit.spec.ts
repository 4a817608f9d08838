import { isConfigError } from "@ctx/config";
import { DEFAULT_PULL_MAX_BYTES } from "@ctx/projector";
import { describe, expect, it } from "vitest";
import { loadProjectorConfig } from "./config.ts";

const base = { PROJECTION: "valkey", PROJECTOR_REPLICA_ID: "p-0" };

describe("projector configuration", () => {
  it("bounds pulls by bytes and heartbeats leases every second by default", () => {
    const config = loadProjectorConfig(base);
    expect(config.PROJECTOR_PULL_MAX_BYTES).toBe(DEFAULT_PULL_MAX_BYTES);
    expect(config.PROJECTOR_LEASE_HEARTBEAT_MS).toBe(1_000);
    expect(config.PROJECTOR_LEASE_TTL_MS).toBe(5_000);
  });

  it("refuses pull bounds below 64 KiB or above 1 GiB, naming the variable", () => {
    for (const bad of ["1000", "-1", "2147483648", "lots"]) {
      try {
        loadProjectorConfig({ ...base, PROJECTOR_PULL_MAX_BYTES: bad });
        expect.unreachable(`${bad} was accepted`);
      } catch (e) {
        expect(isConfigError(e)).toBe(true);
        expect((e as Error).message).toMatch(/PROJECTOR_PULL_MAX_BYTES/);
      }
    }
    expect(loadProjectorConfig({ ...base, PROJECTOR_PULL_MAX_BYTES: "8388608" })).toMatchObject({
      PROJECTOR_PULL_MAX_BYTES: 8_388_608,
    });
  });

  it("refuses a heartbeat longer than half the lease TTL", () => {
    expect(() =>
      loadProjectorConfig({
        ...base,
        PROJECTOR_LEASE_TTL_MS: "2000",
        PROJECTOR_LEASE_HEARTBEAT_MS: "1001",
      }),
    ).toThrow(/PROJECTOR_LEASE_HEARTBEAT_MS: must be at most half of PROJECTOR_LEASE_TTL_MS/);
    expect(
      loadProjectorConfig({
        ...base,
        PROJECTOR_LEASE_TTL_MS: "2000",
        PROJECTOR_LEASE_HEARTBEAT_MS: "1000",
      }),
    ).toMatchObject({ PROJECTOR_LEASE_HEARTBEAT_MS: 1_000 });
  });
});
