import type { Interceptor } from "@connectrpc/connect";

/** A Connect client interceptor that sends this authorization header (`Bearer <token>`). */
export function bearer(authorization: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", authorization);
    return next(req);
  };
}
