import type * as http2 from "node:http2";
import { describe, expect, it } from "vitest";
import { http2RequestHeaders } from "./request-headers.ts";

/** What the adapter built before: every header but the pseudo-headers, appended one by one. */
function eager(raw: http2.IncomingHttpHeaders): Headers {
  const h = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (name.startsWith(":")) continue;
    for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) h.append(name, v);
  }
  return h;
}

const raw: http2.IncomingHttpHeaders = {
  ":method": "POST",
  ":path": "/context.v1.ContextCommandService/AddSubtask",
  "content-type": "application/grpc",
  "grpc-timeout": "5S",
  "x-correlation-id": "c-1",
  "x-spaced": "  padded value\t",
  "x-empty": "",
  "set-cookie": ["a=1", "b=2"],
  "x-repeated": ["one", "two"],
};
const names = [
  "content-type",
  "Content-Type",
  "GRPC-TIMEOUT",
  "x-correlation-id",
  "x-causation-id",
  "x-spaced",
  "x-empty",
  "set-cookie",
  "x-repeated",
  "x_underscore",
];

describe("http2RequestHeaders", () => {
  it("answers get and has as Headers filled with the same headers does", () => {
    const lazy = http2RequestHeaders(raw);
    const want = eager(raw);
    for (const name of names) {
      expect(lazy.get(name), name).toBe(want.get(name));
      expect(lazy.has(name), name).toBe(want.has(name));
    }
  });

  it("refuses the names Headers refuses", () => {
    const lazy = http2RequestHeaders(raw);
    expect(() => lazy.get(":path")).toThrow(TypeError);
    expect(() => new Headers().get(":path")).toThrow(TypeError);
  });

  it("iterates, copies and changes as Headers does", () => {
    const want = eager(raw);
    expect([...http2RequestHeaders(raw)]).toEqual([...want]);
    expect([...http2RequestHeaders(raw).entries()]).toEqual([...want.entries()]);
    expect([...new Headers(http2RequestHeaders(raw))]).toEqual([...want]);
    expect(http2RequestHeaders(raw).getSetCookie()).toEqual(want.getSetCookie());
    const seen: string[] = [];
    http2RequestHeaders(raw).forEach((v, k) => {
      seen.push(`${k}=${v}`);
    });
    expect(seen).toEqual([...want].map(([k, v]) => `${k}=${v}`));

    const lazy = http2RequestHeaders(raw);
    lazy.set("x-correlation-id", "c-2");
    lazy.delete("grpc-timeout");
    lazy.append("x-new", "n");
    want.set("x-correlation-id", "c-2");
    want.delete("grpc-timeout");
    want.append("x-new", "n");
    expect([...lazy]).toEqual([...want]);
    expect(lazy.get("x-correlation-id")).toBe("c-2");
    expect(lazy.has("grpc-timeout")).toBe(false);
  });
});
