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

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The outcome of one operation: its result, or the kind of error it threw. */
function outcome(run: () => unknown): unknown {
  try {
    return { value: run() };
  } catch (e) {
    return { threw: (e as Error).constructor.name };
  }
}

type Op = (h: Headers) => unknown;

function operations(next: () => number, count: number): { label: string; op: Op }[] {
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)] as T;
  return Array.from({ length: count }, () => {
    const name = pick(names);
    const value = pick(values);
    const ops: { label: string; op: Op }[] = [
      { label: `set(${name}, ${value})`, op: (h) => h.set(name, value) },
      { label: `append(${name}, ${value})`, op: (h) => h.append(name, value) },
      { label: `delete(${name})`, op: (h) => h.delete(name) },
      { label: `get(${name})`, op: (h) => h.get(name) },
      { label: `has(${name})`, op: (h) => h.has(name) },
    ];
    return pick(ops);
  });
}

describe("unaryResponseHeaders", () => {
  it("answers, fails and ends up as Headers does, over 300 random operation sequences", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const real = new Headers();
      real.set("grpc-status", "0");
      const ours = unaryResponseHeaders("grpc-status", "0");
      const ops = operations(random(seed), 12);
      for (const { label, op } of ops) {
        expect(
          outcome(() => op(ours)),
          `seed ${seed}: ${label}`,
        ).toEqual(outcome(() => op(real)));
      }
      expect(toNodeHeaders(ours), `seed ${seed}`).toEqual(toNodeHeaders(real));
      expect([...ours], `seed ${seed}`).toEqual([...real]);
      expect(ours.getSetCookie(), `seed ${seed}`).toEqual(real.getSetCookie());
    }
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
