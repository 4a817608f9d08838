import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toNodeHeaders, unaryResponseHeaders } from "./response-headers.ts";

// unaryResponseHeaders must behave as a `Headers` would, whatever is done to it: these run the same
// operations on both and compare every answer, every failure and the final contents.

const names = [
  "content-type",
  "Content-Type",
  "grpc-status",
  "GRPC-MESSAGE",
  "x-correlation-id",
  "set-cookie",
  "x_under",
  "bad name",
  "",
];
const values = ["a", "0", "", "two words", " padded\t", "tab\tinside", "line\nbreak", "nul\0", "ü"];

/** The outcome of one operation: its result, or the kind of error it threw. */
function outcome(run: () => unknown): unknown {
  try {
    return { value: run() };
  } catch (e) {
    return { threw: (e as Error).constructor.name };
  }
}

type Op = (h: Headers) => unknown;

const operation: fc.Arbitrary<{ label: string; op: Op }> = fc
  .tuple(fc.constantFrom(...names), fc.constantFrom(...values), fc.nat(4))
  .map(
    ([name, value, kind]) =>
      [
        { label: `set(${name}, ${value})`, op: (h: Headers) => h.set(name, value) },
        { label: `append(${name}, ${value})`, op: (h: Headers) => h.append(name, value) },
        { label: `delete(${name})`, op: (h: Headers) => h.delete(name) },
        { label: `get(${name})`, op: (h: Headers) => h.get(name) },
        { label: `has(${name})`, op: (h: Headers) => h.has(name) },
      ][kind] as { label: string; op: Op },
  );

describe("unaryResponseHeaders", () => {
  it("answers, fails and ends up as Headers does, whatever is done to it", () => {
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 12 }), (ops) => {
        const real = new Headers();
        real.set("grpc-status", "0");
        const ours = unaryResponseHeaders("grpc-status", "0");
        for (const { label, op } of ops) {
          expect(
            outcome(() => op(ours)),
            label,
          ).toEqual(outcome(() => op(real)));
        }
        expect(toNodeHeaders(ours)).toEqual(toNodeHeaders(real));
        expect([...ours]).toEqual([...real]);
        expect(ours.getSetCookie()).toEqual(real.getSetCookie());
      }),
      { numRuns: 300 },
    );
  });

  it("gives Node the plain headers a unary call sets, without filling a Headers", () => {
    const header = unaryResponseHeaders("content-type", "application/grpc+proto");
    header.set("grpc-encoding", "gzip");
    header.set("X-Correlation-Id", "c-1");
    expect(toNodeHeaders(header)).toEqual({
      "content-type": "application/grpc+proto",
      "grpc-encoding": "gzip",
      "x-correlation-id": "c-1",
    });
    expect(header.get("x-correlation-id")).toBe("c-1");
  });

  it("keeps set-cookie values apart, as Node needs them", () => {
    const header = unaryResponseHeaders("grpc-status", "0");
    header.append("set-cookie", "a=1");
    header.append("set-cookie", "b=2");
    expect(toNodeHeaders(header)).toEqual({ "grpc-status": "0", "set-cookie": ["a=1", "b=2"] });
  });

  it("is a Headers to whoever copies or checks it", () => {
    const header = unaryResponseHeaders("grpc-status", "0");
    header.set("grpc-message", "fine");
    expect(header).toBeInstanceOf(Headers);
    expect([...new Headers(header)]).toEqual([
      ["grpc-message", "fine"],
      ["grpc-status", "0"],
    ]);
  });
});
