import { createTestAuth } from "@ctx/test-support";
import { afterEach, describe, expect, it, vi } from "vitest";
import { isAuthFailure } from "./auth-failure.ts";
import { createJwtVerifier } from "./jwt-verifier.ts";

afterEach(() => {
  vi.useRealTimers();
});

describe("JWT verifier", () => {
  it("given a verified token, when it is sent again before its exp, then it is accepted, and refused (not answered from the cache) once its exp has passed", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: new Date("2026-12-07T06:00:00Z") });
    const auth = createTestAuth();
    const verifier = await createJwtVerifier({
      jwksFile: auth.jwksFile,
      issuer: auth.issuer,
      audience: auth.audience,
      clockSkewSeconds: 0,
    });
    const exp = Math.floor(Date.now() / 1000) + 60;
    const token = auth.sign({ exp });

    expect((await verifier.verify(token)).id).toBe("jwt:test");
    vi.setSystemTime((exp - 1) * 1000);
    expect((await verifier.verify(token)).id).toBe("jwt:test");

    vi.setSystemTime(exp * 1000 + 1);
    const refused = await verifier.verify(token).catch((e: unknown) => e);
    expect(isAuthFailure(refused)).toBe(true);
    expect((refused as Error).message).toMatch(/expired/);
  });

  it("given more callers than the verifier compares by content, when each calls in turn, then each gets its own principal", async () => {
    const auth = createTestAuth();
    const verifier = await createJwtVerifier({
      jwksFile: auth.jwksFile,
      issuer: auth.issuer,
      audience: auth.audience,
    });
    const tokens = Array.from({ length: 7 }, (_, i) => auth.sign({ sub: `caller-${i}` }));
    for (let round = 0; round < 3; round++) {
      for (const [i, token] of tokens.entries()) {
        expect((await verifier.verify(token)).id).toBe(`jwt:caller-${i}`);
      }
    }
  });
});
