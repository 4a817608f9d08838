import { createContextKey, type HandlerContext } from "@connectrpc/connect";

/** The roles a method can require. `admin` satisfies every rule. */
export const Role = {
  /** Commands: ContextCommandService. */
  writer: "writer",
  /** Queries and watches: ContextQueryService. */
  reader: "reader",
  /** The whole stream and its checkpoints as stored: ContextAuditService. */
  auditor: "auditor",
  /** Anything, operational methods included. */
  admin: "admin",
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** Who made a call, as its credentials proved. */
export interface Principal {
  /**
   * How the history names the caller: `jwt:<sub>` or `mtls:<certificate CN>`. Stored in every
   * event the call causes.
   */
  readonly id: string;
  readonly method: "jwt" | "mtls";
  /** Every role the credentials carry, known ones or not. */
  readonly roles: ReadonlySet<string>;
}

const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "the authenticated caller",
});

/**
 * The authenticated caller of the call being handled; undefined when the server runs without
 * authentication (AUTH=off) or for open methods (health).
 */
export function principalOf(ctx: Pick<HandlerContext, "values">): Principal | undefined {
  return ctx.values.get(principalKey);
}

/** For the auth interceptor. */
export { principalKey };
