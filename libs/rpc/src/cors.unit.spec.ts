import { describe, expect, it } from "vitest";
import { createCors } from "./cors.ts";

describe("createCors", () => {
  it("given no allowed origins, then every preflight is refused and no answer is marked", () => {
    const cors = createCors([]);
    expect(cors.preflight("https://app.example.com").status).toBe(403);
    expect(cors.preflight(undefined).status).toBe(403);
    expect(cors.responseHeaders("https://app.example.com")).toBeUndefined();
  });

  it("given exact origins, then only those are allowed, echoed back, and answers vary by Origin", () => {
    const cors = createCors(["https://app.example.com", "http://localhost:5173"]);
    const ok = cors.preflight("https://app.example.com");
    expect(ok.status).toBe(204);
    expect(ok.headers["access-control-allow-origin"]).toBe("https://app.example.com");
    expect(ok.headers.vary).toBe("Origin");
    expect(ok.headers["access-control-allow-headers"]).toContain("authorization");
    expect(ok.headers["access-control-allow-headers"]).toContain("X-Grpc-Web");
    expect(cors.preflight("https://APP.example.com").status).toBe(204);
    expect(cors.preflight("https://other.example.com").status).toBe(403);
    expect(cors.responseHeaders("http://localhost:5173")).toMatchObject({
      "access-control-allow-origin": "http://localhost:5173",
    });
    expect(cors.responseHeaders("http://localhost:5174")).toBeUndefined();
    // A same-origin call sends no Origin: nothing to add.
    expect(cors.responseHeaders(undefined)).toBeUndefined();
  });

  it("given *, then any origin is allowed with a wildcard answer and no credentials mode", () => {
    const cors = createCors(["*"]);
    const ok = cors.preflight("https://anyone.example");
    expect(ok.status).toBe(204);
    expect(ok.headers["access-control-allow-origin"]).toBe("*");
    expect(ok.headers["access-control-allow-credentials"]).toBeUndefined();
    expect(
      cors.responseHeaders("https://anyone.example")?.["access-control-expose-headers"],
    ).toContain("x-correlation-id");
  });
});
