import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { natsAuthNamesFrom } from "../commands/nats.ts";
import { inboxPrefixOf, natsAuthConfig, natsRoles, rolePermissions } from "./nats-auth-config.ts";

const example = resolve(import.meta.dirname, "../../../../deploy/nats/auth.example.conf");
/** Placeholders where the generator puts each role's public NKey. */
const placeholders = Object.fromEntries(
  natsRoles.map((role) => [role, `U_${role.toUpperCase().replace(/-/g, "_")}_PUBLIC_NKEY`]),
) as Record<(typeof natsRoles)[number], string>;

describe("the shipped NATS users", () => {
  it("are what deploy/nats/auth.example.conf shows, for the default names", () => {
    const generated = natsAuthConfig(natsAuthNamesFrom({}), placeholders);
    // After a change to the permissions: UPDATE_NATS_EXAMPLE=1 vitest run <this file>.
    if (process.env.UPDATE_NATS_EXAMPLE === "1") writeFileSync(example, generated);
    expect(generated).toBe(readFileSync(example, "utf8"));
  });

  it("let every role but the admin subscribe to its own inbox only, and nobody log in anonymously", () => {
    const permissions = rolePermissions(natsAuthNamesFrom({}));
    for (const role of natsRoles) {
      const inbox = `${inboxPrefixOf(role)}.>`;
      expect(permissions[role].subscribe.allow).toContain(role === "admin" ? ">" : inbox);
      if (role !== "admin") {
        expect(permissions[role].subscribe.allow.filter((s) => s.startsWith("_INBOX"))).toEqual([
          inbox,
        ]);
      }
    }
    const config = natsAuthConfig(natsAuthNamesFrom({}), placeholders);
    expect(config).not.toMatch(/^\s*no_auth_user/m);
    expect(config.match(/nkey: /g)).toHaveLength(natsRoles.length);
  });

  it("give only the admin stream delete and purge", () => {
    const permissions = rolePermissions(natsAuthNamesFrom({}));
    for (const role of natsRoles.filter((r) => r !== "admin" && r !== "ctx")) {
      const allowed = permissions[role].publish.allow;
      expect(allowed.some((s) => /STREAM\.(DELETE|PURGE|UPDATE|CREATE)|^>$/.test(s))).toBe(false);
    }
    expect(permissions.ctx.publish.deny).toEqual([
      "$JS.API.STREAM.DELETE.>",
      "$JS.API.STREAM.PURGE.>",
      "$JS.API.STREAM.MSG.DELETE.CONTEXT_EVENTS",
    ]);
  });

  it("give stream snapshots and restores (backups) to the operator and the admin only", () => {
    const permissions = rolePermissions(natsAuthNamesFrom({}));
    for (const role of natsRoles.filter((r) => r !== "admin" && r !== "ctx")) {
      const allowed = permissions[role].publish.allow;
      expect(allowed.some((s) => /STREAM\.(SNAPSHOT|RESTORE)|^\$JS\.SNAPSHOT|^>$/.test(s))).toBe(
        false,
      );
    }
    expect(permissions.ctx.publish.allow).toEqual([">"]);
    expect(permissions.ctx.publish.deny?.some((s) => /SNAPSHOT|RESTORE/.test(s))).toBe(false);
  });

  it("follow the configured names", () => {
    const names = natsAuthNamesFrom({ EVENT_STREAM: "EV", EVENT_SUBJECT_PREFIX: "ev" });
    expect(names.leaseBuckets.neo4j).toBe("projector_leases_EV_neo4j");
    expect(rolePermissions(names).command.publish.allow).toContain("ev.*.*");
  });
});
