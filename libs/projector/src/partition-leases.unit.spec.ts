import { describe, expect, it } from "vitest";
import { desiredOwner } from "./partition-leases.ts";

const partitions = Array.from({ length: 64 }, (_, p) => p);
const assign = (members: string[]) => partitions.map((p) => desiredOwner(members, p));

describe("desiredOwner (rendezvous hashing)", () => {
  it("gives every member a share", () => {
    const owners = assign(["pod-0", "pod-1", "pod-2"]);
    for (const member of ["pod-0", "pod-1", "pod-2"]) {
      expect(owners.filter((o) => o === member).length).toBeGreaterThan(10);
    }
  });

  it("moves only the leaving member's partitions when one leaves", () => {
    const before = assign(["pod-0", "pod-1", "pod-2"]);
    const after = assign(["pod-0", "pod-2"]);
    partitions.forEach((p) => {
      if (before[p] !== "pod-1") expect(after[p]).toBe(before[p]);
      else expect(after[p]).not.toBe("pod-1");
    });
  });

  it("is the same whatever order the members are listed in", () => {
    expect(assign(["b", "a", "c"])).toEqual(assign(["c", "b", "a"]));
    expect(desiredOwner([], 3)).toBeUndefined();
  });
});
