import { ContextCommandService, ContextQueryService } from "@ctx/proto";
import { Health, ServerReflection } from "@ctx/proto/grpc";
import { describe, expect, it } from "vitest";
import { allows, createAccessPolicy } from "./access-policy.ts";
import { Role } from "./principal.ts";

const policy = createAccessPolicy([
  { service: ContextCommandService, roles: [Role.writer] },
  { service: ContextQueryService, roles: [Role.reader] },
]);
const may = (roles: string[], method: Parameters<typeof policy.accessOf>[0]) =>
  allows(policy.accessOf(method), new Set(roles));

describe("the access policy", () => {
  it("gives every command to writers and every query, the watch included, to readers", () => {
    for (const method of ContextCommandService.methods) {
      expect(may([Role.writer], method), method.name).toBe(true);
      expect(may([Role.reader], method), method.name).toBe(false);
    }
    for (const method of ContextQueryService.methods) {
      expect(may([Role.reader], method), method.name).toBe(true);
      expect(may([Role.writer], method), method.name).toBe(false);
    }
    expect(ContextQueryService.method.watchContext.methodKind).toBe("server_streaming");
  });

  it("lets admin call anything, including methods without a rule", () => {
    const noRule = createAccessPolicy([]);
    for (const method of [...ContextCommandService.methods, ...ContextQueryService.methods]) {
      expect(may([Role.admin], method)).toBe(true);
      expect(allows(noRule.accessOf(method), new Set([Role.admin]))).toBe(true);
    }
  });

  it("refuses a method without a rule to everyone but admin (deny by default)", () => {
    const noRule = createAccessPolicy([]);
    const method = ContextQueryService.method.getContext;
    expect(allows(noRule.accessOf(method), new Set([Role.reader, Role.writer, "other"]))).toBe(
      false,
    );
  });

  it("keeps health open and reflection as configured", () => {
    expect(policy.accessOf(Health.method.check).kind).toBe("open");
    const reflect = ServerReflection.method.serverReflectionInfo;
    expect(policy.accessOf(reflect).kind).toBe("authenticated");
    expect(createAccessPolicy([], { reflection: "public" }).accessOf(reflect).kind).toBe("open");
    const off = createAccessPolicy([], { reflection: "off" }).accessOf(reflect);
    expect(allows(off, new Set([Role.reader]))).toBe(false);
  });
});
