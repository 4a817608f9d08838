import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Role } from "./principal.ts";

/** What a call needs: nothing (open), any authenticated identity, or one of some roles. */
export type Access =
  | { readonly kind: "open" }
  | { readonly kind: "authenticated" }
  | { readonly kind: "roles"; readonly roles: ReadonlySet<string> };

/** The role each method needs, decided once per method. */
export interface AccessPolicy {
  accessOf(method: DescMethod): Access;
}

/** A rule: every method of a service needs one of these roles (admin always does). */
export interface ServiceRule {
  readonly service: DescService | string;
  readonly roles: readonly string[];
}

const open: Access = { kind: "open" };
const authenticated: Access = { kind: "authenticated" };

const healthService = "grpc.health.v1.Health";
const reflectionServices = [
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];

/**
 * Deny by default: a method of a service without a rule is refused (PERMISSION_DENIED) to every
 * authenticated caller but admin. grpc.health.v1 is open, so probes and load
 * balancers need no credentials; reflection is open, for any authenticated caller, or served to
 * no one but admin (`off` also leaves it unregistered).
 */
export function createAccessPolicy(
  rules: readonly ServiceRule[],
  options: { reflection?: "off" | "authenticated" | "public" } = {},
): AccessPolicy {
  const byService = new Map<string, Access>();
  for (const rule of rules) {
    const name = typeof rule.service === "string" ? rule.service : rule.service.typeName;
    byService.set(name, { kind: "roles", roles: new Set([...rule.roles, Role.admin]) });
  }
  byService.set(healthService, open);
  const reflection = options.reflection ?? "authenticated";
  for (const name of reflectionServices) {
    byService.set(
      name,
      reflection === "public"
        ? open
        : reflection === "authenticated"
          ? authenticated
          : { kind: "roles", roles: new Set([Role.admin]) },
    );
  }
  const cache = new Map<DescMethod, Access>();
  return {
    accessOf(method) {
      let access = cache.get(method);
      if (access === undefined) {
        access = byService.get(method.parent.typeName) ?? {
          kind: "roles",
          roles: new Set([Role.admin]),
        };
        cache.set(method, access);
      }
      return access;
    },
  };
}

/** Whether `roles` satisfy `access` (for an authenticated caller). */
export function allows(access: Access, roles: ReadonlySet<string>): boolean {
  switch (access.kind) {
    case "open":
    case "authenticated":
      return true;
    case "roles":
      for (const role of roles) if (access.roles.has(role)) return true;
      return false;
    default: {
      const never: never = access;
      return never;
    }
  }
}
