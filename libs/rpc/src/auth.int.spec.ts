import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ContextCommandService } from "@ctx/proto";
import { Health, ServerReflection, ServerReflectionRequestSchema } from "@ctx/proto/grpc";
import { createTestAuth, eventually, testAuth } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccessPolicy } from "./access-policy.ts";
import { createAuthenticator } from "./authenticator.ts";
import { Role } from "./principal.ts";
import {
  bearer,
  type Protocol,
  protocols,
  startTestServer,
  type TestServer,
} from "./testing/rpc-test-server.ts";

// Every way a call's credentials can fail, with the status it gets, over gRPC, gRPC-Web and
// Connect, for a unary call and a server stream: the test server runs with the shared test
// issuer's key set (testAuth), commands for writers and queries for readers.

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t?.close();
});

async function failure(call: () => Promise<unknown>): Promise<ConnectError | undefined> {
  try {
    await call();
    return undefined;
  } catch (e) {
    return ConnectError.from(e);
  }
}

/** GetContext (unary) and WatchContext's first answer (a server stream) with this header. */
async function queryBoth(protocol: Protocol, authorization: string | null) {
  const client = t.queryClient(protocol, { authorization });
  const unary = await failure(() => client.getContext({ storyId: "s" }));
  const stream = await failure(async () => {
    const abort = new AbortController();
    for await (const answer of client.watchContext({ storyId: "s" }, { signal: abort.signal })) {
      expect(answer.state?.context?.storyId).toBe("s");
      abort.abort();
    }
  });
  // A watch this test ended itself is a success.
  return { unary, stream: stream?.code === Code.Canceled ? undefined : stream };
}

const now = () => Math.floor(Date.now() / 1000);
const auth = testAuth();
const otherKey = auth.newKey(auth.key.kid);

const unauthenticated: readonly {
  readonly name: string;
  readonly authorization: () => string | null;
  readonly message: RegExp;
  readonly reason: string;
}[] = [
  { name: "no token", authorization: () => null, message: /no credentials/, reason: "missing" },
  {
    name: "a header that is not Bearer",
    authorization: () => "Basic dXNlcjpwYXNz",
    message: /not of the form/,
    reason: "malformed",
  },
  {
    name: "a bearer token that is no JWT",
    authorization: () => "Bearer not-a-jwt",
    message: /no valid JWT/,
    reason: "malformed",
  },
  {
    name: "an expired token (beyond the clock skew)",
    authorization: () => `Bearer ${auth.sign({ iat: now() - 7200, exp: now() - 3600 })}`,
    message: /expired/,
    reason: "expired",
  },
  {
    name: "a token not valid yet (beyond the clock skew)",
    authorization: () => `Bearer ${auth.sign({ nbf: now() + 3600 })}`,
    message: /not valid yet/,
    reason: "not_yet_valid",
  },
  {
    name: "a token signed by another key under a trusted key id",
    authorization: () => `Bearer ${auth.sign({}, { key: otherKey })}`,
    message: /signature/,
    reason: "bad_signature",
  },
  {
    name: "a token of an unknown key id",
    authorization: () => `Bearer ${auth.sign({}, { kid: "nobody-knows-me" })}`,
    message: /signing key/,
    reason: "unknown_key",
  },
  {
    name: "a token of another issuer",
    authorization: () => `Bearer ${auth.sign({ iss: "https://evil.test" })}`,
    message: /issuer/,
    reason: "wrong_issuer",
  },
  {
    name: "a token for another audience",
    authorization: () => `Bearer ${auth.sign({ aud: "another-service" })}`,
    message: /audience/,
    reason: "wrong_audience",
  },
  {
    name: "a token without exp",
    authorization: () => `Bearer ${auth.sign({ exp: undefined })}`,
    message: /exp/,
    reason: "invalid_claims",
  },
];

describe("authentication", () => {
  for (const protocol of protocols) {
    for (const c of unauthenticated) {
      it(`given ${c.name}, over ${protocol}, then unary calls and streams are UNAUTHENTICATED`, async () => {
        const before = await t.metric("ctx_rpc_auth_refused_total", { reason: c.reason });
        const authorization = c.authorization();
        const { unary, stream } = await queryBoth(protocol, authorization);
        for (const error of [unary, stream]) {
          expect(error?.code, error?.message).toBe(Code.Unauthenticated);
          expect(error?.rawMessage).toMatch(c.message);
          // The reason, never the token.
          const token = authorization?.split(" ")[1];
          if (token) expect(error?.rawMessage).not.toContain(token);
        }
        expect(await t.metric("ctx_rpc_auth_refused_total", { reason: c.reason })).toBe(before + 2);
      });
    }
  }

  it("given no token, then the error carries a www-authenticate hint", async () => {
    const error = await failure(() =>
      t.queryClient("grpc", { authorization: null }).getContext({ storyId: "s" }),
    );
    expect(error?.metadata.get("www-authenticate")).toMatch(/^Bearer realm=/);
  });

  it("given a token within the clock skew of its exp, then it is accepted", async () => {
    const authorization = `Bearer ${auth.sign({ exp: now() - 10 })}`;
    const { unary } = await queryBoth("grpc", authorization);
    expect(unary).toBeUndefined();
  });

  it("given an HMAC or unsigned token, then it is refused", async () => {
    const header = (alg: string) =>
      Buffer.from(JSON.stringify({ alg, typ: "JWT", kid: auth.key.kid })).toString("base64url");
    const claims = Buffer.from(
      JSON.stringify({ iss: auth.issuer, aud: auth.audience, sub: "x", exp: now() + 60 }),
    ).toString("base64url");
    for (const token of [`${header("none")}.${claims}.`, `${header("HS256")}.${claims}.c2ln`]) {
      const { unary } = await queryBoth("grpc", `Bearer ${token}`);
      expect(unary?.code).toBe(Code.Unauthenticated);
    }
  });
});

describe("authorization", () => {
  for (const protocol of protocols) {
    it(`given a valid token without the role, over ${protocol}, then the call is PERMISSION_DENIED`, async () => {
      const before = await t.metric("ctx_rpc_auth_refused_total", { reason: "no_role" });
      const writerOnly = `Bearer ${auth.sign({ sub: "w", roles: ["writer"] })}`;
      const { unary, stream } = await queryBoth(protocol, writerOnly);
      for (const error of [unary, stream]) {
        expect(error?.code, error?.message).toBe(Code.PermissionDenied);
        expect(error?.rawMessage).toMatch(/jwt:w may not call .*ContextQueryService.* reader/);
      }
      const readerOnly = `Bearer ${auth.sign({ sub: "r", roles: "reader" })}`;
      const command = await failure(() =>
        t.commandClient(protocol, { authorization: readerOnly }).createContext({
          storyId: "s",
          title: "T",
        }),
      );
      expect(command?.code).toBe(Code.PermissionDenied);
      expect(await t.metric("ctx_rpc_auth_refused_total", { reason: "no_role" })).toBe(before + 3);
    });

    it(`given the right role, or admin, over ${protocol}, then the call is served`, async () => {
      for (const claims of [
        { roles: ["reader"] },
        { roles: undefined, scope: "openid reader" },
        { roles: ["admin"] },
      ]) {
        const { unary, stream } = await queryBoth(protocol, `Bearer ${auth.sign(claims)}`);
        expect(unary, JSON.stringify(claims)).toBeUndefined();
        expect(stream, JSON.stringify(claims)).toBeUndefined();
      }
      const writer = t.commandClient(protocol, {
        authorization: `Bearer ${auth.sign({ roles: ["writer"] })}`,
      });
      expect((await writer.createContext({ storyId: "s", title: "T" })).result?.version).toBe(1);
    });
  }

  it("given no token, then grpc.health.v1 answers all the same", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: t.url }));
    // The test server registers no services: its own status is all there is.
    expect(await failure(() => health.check({ service: "" }))).toBeUndefined();
  });
});

describe("the principal", () => {
  it("given a token, then handlers see jwt:<sub> and its roles", async () => {
    const server = await startTestServer();
    try {
      const client = server.commandClient("grpc", {
        authorization: `Bearer ${auth.sign({ sub: "alice", roles: ["writer"] })}`,
      });
      await client.createContext({ storyId: "who", title: "T" });
      expect(server.principals.get("who")).toEqual({
        id: "jwt:alice",
        method: "jwt",
        roles: new Set(["writer"]),
      });
    } finally {
      await server.close();
    }
  });
});

describe("key rotation", () => {
  it("given a new key written to the JWKS file, then its tokens verify and a removed key's stop, without a restart", async () => {
    const issuer = createTestAuth();
    const server = await startTestServer({
      auth: {
        authenticator: await createAuthenticator({
          jwt: { jwksFile: issuer.jwksFile, issuer: issuer.issuer, audience: issuer.audience },
        }),
        policy: createAccessPolicy([{ service: ContextCommandService, roles: [Role.writer] }]),
      },
    });
    try {
      const call = (token: string) =>
        failure(() =>
          server
            .commandClient("grpc", { authorization: `Bearer ${token}` })
            .createContext({ storyId: "s", title: "T" }),
        );
      const old = issuer.sign();
      expect(await call(old)).toBeUndefined();
      const next = issuer.newKey();
      const fresh = issuer.sign({}, { key: next });
      expect((await call(fresh))?.code).toBe(Code.Unauthenticated);
      issuer.writeJwks([next]);
      await eventually(async () => expect(await call(fresh)).toBeUndefined());
      // The old key is gone: its token too, cached or not.
      expect((await call(old))?.code).toBe(Code.Unauthenticated);
    } finally {
      await server.close();
    }
  });
});

describe("reflection", () => {
  async function listServices(url: string, authorization: string | null) {
    const client = createClient(
      ServerReflection,
      createGrpcTransport({
        baseUrl: url,
        ...(authorization === null ? {} : { interceptors: [bearer(authorization)] }),
      }),
    );
    async function* requests() {
      yield create(ServerReflectionRequestSchema, {
        messageRequest: { case: "listServices", value: "" },
      });
    }
    return failure(async () => {
      for await (const _ of client.serverReflectionInfo(requests())) {
        // Drained.
      }
    });
  }

  for (const [setting, anonymous, withToken] of [
    ["public", undefined, undefined],
    ["authenticated", Code.Unauthenticated, undefined],
    ["off", Code.Unauthenticated, Code.PermissionDenied],
  ] as const) {
    it(`given RPC_REFLECTION=${setting}, then anonymous callers get ${anonymous === undefined ? "OK" : Code[anonymous]} and a reader ${withToken === undefined ? "OK" : Code[withToken]}`, async () => {
      const server = await startTestServer({
        reflection: [ContextCommandService],
        auth: {
          authenticator: await createAuthenticator({
            jwt: { jwksFile: auth.jwksFile, issuer: auth.issuer, audience: auth.audience },
          }),
          policy: createAccessPolicy([], { reflection: setting }),
        },
      });
      try {
        expect((await listServices(server.url, null))?.code).toBe(anonymous);
        const reader = `Bearer ${auth.sign({ roles: ["reader"] })}`;
        expect((await listServices(server.url, reader))?.code).toBe(withToken);
      } finally {
        await server.close();
      }
    });
  }
});
