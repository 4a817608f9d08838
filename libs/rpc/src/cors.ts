import { cors as connectCors } from "@connectrpc/connect";
import { correlationHeaders } from "./correlation.ts";

/**
 * Cross-origin calls from browsers (Connect-Web, gRPC-Web) to a service on another origin. Off
 * unless origins are allowed: a browser then refuses to hand a cross-origin answer to the page, as
 * it should for a service that was not configured for one.
 *
 * `allowedOrigins` are exact origins (`https://app.example.com`), or `*` for any origin. Calls
 * carry their bearer token in the Authorization header, not in cookies, so credentials mode is
 * never allowed and `*` exposes nothing a page could not get by asking with its own token.
 */
export interface Cors {
  /**
   * The answer to a preflight (OPTIONS with Access-Control-Request-Method): 204 with the methods
   * and headers the protocols need when the origin is allowed, 403 when it is not.
   */
  preflight(origin: string | undefined): CorsAnswer;
  /** Headers to add to the answer of a call from `origin` (none for a same-origin call or a refused origin). */
  responseHeaders(origin: string | undefined): Readonly<Record<string, string>> | undefined;
}

export interface CorsAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** How long a browser may keep a preflight's answer (seconds): Chromium caps it at 2 hours. */
const preflightMaxAgeSeconds = 7200;

/** What a browser client of these services sends beyond the protocols' own headers. */
const applicationHeaders = [
  "authorization",
  correlationHeaders.correlationId,
  correlationHeaders.causationId,
];

export function createCors(allowedOrigins: readonly string[]): Cors {
  const any = allowedOrigins.includes("*");
  const origins = new Set(allowedOrigins.map((o) => o.toLowerCase()));
  const allows = (origin: string | undefined): origin is string =>
    origin !== undefined && (any || origins.has(origin.toLowerCase()));
  const allowHeaders = [...connectCors.allowedHeaders, ...applicationHeaders].join(", ");
  const exposeHeaders = [...connectCors.exposedHeaders, correlationHeaders.correlationId].join(
    ", ",
  );
  // Answers vary by Origin whenever origins are told apart, so caches keep them apart too.
  const vary = any ? {} : { vary: "Origin" };
  return {
    preflight(origin) {
      if (!allows(origin)) return { status: 403, headers: { ...vary } };
      return {
        status: 204,
        headers: {
          "access-control-allow-origin": any ? "*" : origin,
          "access-control-allow-methods": connectCors.allowedMethods.join(", "),
          "access-control-allow-headers": allowHeaders,
          "access-control-max-age": String(preflightMaxAgeSeconds),
          ...vary,
        },
      };
    },
    responseHeaders(origin) {
      if (!allows(origin)) return undefined;
      return {
        "access-control-allow-origin": any ? "*" : origin,
        "access-control-expose-headers": exposeHeaders,
        ...vary,
      };
    },
  };
}
