import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { folderSink, folderSource, tarSink, tarSource } from "./backup-files.ts";

const work = mkdtempSync(join(tmpdir(), "backup-files-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const bytes = (n: number, seed: number) =>
  Uint8Array.from({ length: n }, (_, i) => (i * seed) & 0xff);

async function collect(source: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of source) parts.push(p);
  return new Uint8Array(Buffer.concat(parts));
}

describe("backup files", () => {
  for (const [kind, sink, source, out] of [
    ["tar", tarSink, tarSource, join(work, "b.tar")],
    ["folder", folderSink, folderSource, join(work, "b")],
  ] as const) {
    it(`write a ${kind} in one pass, with a streamed file of a size not known ahead`, async () => {
      const s = await sink(out);
      const streamed = [bytes(1000, 3), bytes(70_000, 7), bytes(1, 11)];
      const size = await s.streamed("DATA.snapshot.s2", async (write) => {
        for (const chunk of streamed) await write(chunk);
      });
      expect(size).toBe(71_001);
      await s.put("manifest.json", new TextEncoder().encode('{"a":1}'));
      await s.put("empty", new Uint8Array(0));
      await s.commit(false);
      expect(readdirSync(work).filter((f) => f.startsWith("."))).toEqual([]);

      const r = await source(out);
      expect(r.size("DATA.snapshot.s2")).toBe(71_001);
      expect(r.size("missing")).toBeUndefined();
      expect(await collect(r.stream("DATA.snapshot.s2"))).toEqual(
        new Uint8Array(Buffer.concat(streamed)),
      );
      expect(new TextDecoder().decode(await r.read("manifest.json"))).toBe('{"a":1}');
      expect(await collect(r.stream("empty"))).toEqual(new Uint8Array(0));
      await r.close();
    });
  }

  it("discard leaves nothing behind", async () => {
    const out = join(work, "gone.tar");
    const s = await tarSink(out);
    await s.put("x", bytes(10, 1));
    await s.discard();
    expect(readdirSync(work)).not.toContain("gone.tar");
    expect(readdirSync(work).filter((f) => f.includes("gone"))).toEqual([]);
  });

  it("refuses a tar whose entry runs past its end", async () => {
    const out = join(work, "cut.tar");
    const s = await tarSink(out);
    await s.put("x", bytes(5_000, 1));
    await s.commit(false);
    const whole = await tarSource(out);
    expect(whole.size("x")).toBe(5_000);
    await whole.close();
    writeFileSync(out, readFileSync(out).subarray(0, 2_048));
    await expect(tarSource(out)).rejects.toThrow(/runs past the end/);
  });
});
