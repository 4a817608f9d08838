import type { DescMethod, DescService, MessageInitShape } from "@bufbuild/protobuf";
import { type CallOptions, type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { newCommandId } from "./command-id.ts";
import { isConcurrencyError, isNotFoundError, toCallError } from "./errors.ts";
import {
  type ChangeSchema,
  type CommandResult,
  ContextCommandService,
} from "./gen/context/v1/command_service_pb.js";
import { ContextQueryService, type GetContextResponse } from "./gen/context/v1/query_service_pb.js";
import { type Attempt, type RetryPolicy, withRetries } from "./retry.ts";
import { bearerToken, createTransport, type Protocol, type TransportChoice } from "./transport.ts";
import { type WatchOptions, watchStory } from "./watch.ts";

export interface ContextClientOptions {
  /** Both services behind one URL (a gateway); or give commandUrl and queryUrl. */
  readonly baseUrl?: string | undefined;
  /** The command service, e.g. http://127.0.0.1:50051. */
  readonly commandUrl?: string | undefined;
  /** The query service, e.g. http://127.0.0.1:50052. */
  readonly queryUrl?: string | undefined;
  /** A bearer token for every call (none when undefined or empty). */
  readonly token?: string | undefined;
  /** Asked before every call for the bearer token (refresh it here); wins over `token`. */
  readonly getToken?: () => string | Promise<string>;
  /** Default "node" where `process.versions.node` exists, else "web". */
  readonly transport?: TransportChoice;
  /** Default "connect". */
  readonly protocol?: Protocol;
  /** For transport "node": default "2". */
  readonly httpVersion?: "1.1" | "2";
  /** For transport "web": the fetch to call. */
  readonly fetch?: typeof globalThis.fetch;
  /** Run on every call, after the token's. */
  readonly interceptors?: readonly Interceptor[];
  /** Retries of UNAVAILABLE and DEADLINE_EXCEEDED (commands, reads, watch reconnects). */
  readonly retry?: RetryPolicy;
}

/** A command's request (protobuf-es init shape); without a command_id the client makes one. */
type CommandInput<M extends DescMethod> = M extends { methodKind: "unary" }
  ? MessageInitShape<M["input"]>
  : never;

type CommandMethods = {
  readonly [K in keyof Client<typeof ContextCommandService>]: (
    request: CommandInput<(typeof ContextCommandService)["method"][K]>,
    options?: CallOptions,
  ) => Promise<CommandResult>;
};

/** A change of ApplyChanges, as `update`'s decide function returns it. */
export type ChangeInit = MessageInitShape<typeof ChangeSchema>;

export interface UpdateOptions extends CallOptions {
  /** Attempts in all when the story moved on meanwhile (ABORTED); default 5. */
  readonly maxConflicts?: number;
}

/**
 * The command service. Every method sends a command_id (a new UUID v7 unless the request has
 * one) and repeats the call with the same id on UNAVAILABLE or DEADLINE_EXCEEDED, so a command is
 * applied once however often it is sent; the result says `deduplicated` when an earlier attempt
 * had already been applied. Resolves to the command's result; rejects with the SDK's errors.
 */
export interface ContextCommands extends CommandMethods {
  /**
   * Optimistic concurrency: reads the story, asks `decide` for the changes to make on that state
   * (undefined: the story does not exist yet) and applies them with the state's version as
   * expected_version. When another writer got there first (ABORTED), reads the state again at the
   * version the service reported and decides again, up to `maxConflicts` times; then throws the
   * ConcurrencyError. Resolves to undefined when `decide` returns no changes.
   */
  update(
    storyId: string,
    decide: (
      state: GetContextResponse | undefined,
    ) => readonly ChangeInit[] | Promise<readonly ChangeInit[]>,
    options?: UpdateOptions,
  ): Promise<CommandResult | undefined>;
}

export type ContextQueries = Client<typeof ContextQueryService>;

export interface ContextClient {
  readonly commands: ContextCommands;
  /** The query service; its calls reject with the SDK's errors and retry on UNAVAILABLE. */
  readonly queries: ContextQueries;
  /**
   * A story's states as they change: every version once, in order, from `fromVersion` (or from
   * the current state), across dropped connections. Ends on the caller's signal or `return()`.
   */
  watch(storyId: string, options?: WatchOptions): AsyncGenerator<GetContextResponse, void>;
}

/** The Context Service's commands, queries and watches through one object. */
export function createContextClient(options: ContextClientOptions): ContextClient {
  const { command, query } = transportsOf(options);
  const retry = options.retry ?? {};
  const queries = withTypedErrors(
    ContextQueryService,
    createClient(ContextQueryService, query),
    retry,
  );
  // Each attempt of a command carries the same command_id, so these retries are safe.
  const commandClient = withTypedErrors(
    ContextCommandService,
    createClient(ContextCommandService, command),
    retry,
  ) as unknown as Record<
    string,
    (request: object, options?: CallOptions) => Promise<{ result?: CommandResult }>
  >;

  const send = async (
    name: string,
    request: { readonly commandId?: string | undefined; readonly storyId?: string },
    callOptions: CallOptions = {},
  ): Promise<CommandResult> => {
    const call = commandClient[name];
    if (call === undefined) throw new TypeError(`no command ${name}`);
    const commandId = request.commandId ?? newCommandId();
    const { result } = await call({ ...request, commandId }, callOptions);
    if (result === undefined) throw new TypeError(`${name}: the answer has no result`);
    return result;
  };

  const commandMethods = Object.fromEntries(
    Object.keys(ContextCommandService.method).map((name) => [
      name,
      (request: { commandId?: string }, callOptions?: CallOptions) =>
        send(name, request, callOptions),
    ]),
  ) as unknown as CommandMethods;

  // undefined when the story does not exist (yet).
  const stateAt = (storyId: string, version: number | undefined, callOptions: CallOptions) =>
    (version === undefined || version === 0
      ? queries.getContext({ storyId }, callOptions)
      : queries.getContextAtVersion({ storyId, version }, callOptions)
    ).catch((e: unknown) => {
      if (isNotFoundError(e)) return undefined;
      throw e;
    });

  const commands: ContextCommands = {
    ...commandMethods,
    async update(storyId, decide, updateOptions = {}) {
      const { maxConflicts = 5, ...callOptions } = updateOptions;
      let state = await stateAt(storyId, undefined, callOptions);
      for (let attempt = 1; ; attempt++) {
        const changes = await decide(state);
        if (changes.length === 0) return undefined;
        try {
          const request = { storyId, expectedVersion: state?.version ?? 0, changes: [...changes] };
          return await send("applyChanges", request, callOptions);
        } catch (e) {
          if (!isConcurrencyError(e) || attempt >= maxConflicts) throw e;
          // The event stream at the version the service reported, not the read model (it may lag).
          state = await stateAt(storyId, e.actualVersion, callOptions);
        }
      }
    },
  };

  return {
    commands,
    queries,
    watch: (storyId, watchOptions = {}) =>
      watchStory(queries, storyId, { retry: { maxAttempts: 8, ...retry }, ...watchOptions }),
  };
}

function transportsOf(options: ContextClientOptions) {
  const choice = options.transport ?? (isNode() ? "node" : "web");
  if (typeof choice === "object") {
    return "command" in choice ? choice : { command: choice, query: choice };
  }
  const interceptors: Interceptor[] = [];
  const { token } = options;
  const getToken = options.getToken ?? (token ? () => token : undefined);
  if (getToken) interceptors.push(bearerToken(getToken));
  interceptors.push(...(options.interceptors ?? []));
  const settings = {
    transport: choice,
    protocol: options.protocol ?? "connect",
    httpVersion: options.httpVersion ?? "2",
    interceptors,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  } as const;
  const url = (which: "commandUrl" | "queryUrl") => () => {
    const u = options[which] ?? options.baseUrl;
    if (u === undefined) {
      throw new TypeError(`createContextClient: ${which} or baseUrl is required`);
    }
    return u;
  };
  return {
    command: createTransport(url("commandUrl"), settings),
    query: createTransport(url("queryUrl"), settings),
  };
}

/**
 * The client with every unary call retried on UNAVAILABLE / DEADLINE_EXCEEDED (queries are
 * reads: repeating them is safe) and every error as the SDK's class. Streams only get the errors.
 */
function withTypedErrors<S extends DescService>(
  service: S,
  client: Client<S>,
  retry: RetryPolicy,
): Client<S> {
  const out: Record<string, unknown> = {};
  for (const method of service.methods) {
    const raw = (client as Record<string, (...a: unknown[]) => unknown>)[method.localName];
    if (raw === undefined) continue;
    if (method.methodKind === "unary") {
      out[method.localName] = (request: unknown, options: CallOptions = {}) =>
        withRetries(
          retry,
          async (attempt) => {
            try {
              return await raw(request, withAttempt(options, attempt));
            } catch (e) {
              throw toCallError(e, attempt.signal);
            }
          },
          // The caller's timeoutMs is the deadline of all attempts together.
          { signal: options.signal, timeoutMs: options.timeoutMs },
        );
    } else {
      out[method.localName] = (request: unknown, options: CallOptions = {}) =>
        mapStreamErrors(raw(request, options) as AsyncIterable<unknown>, options.signal);
    }
  }
  return out as Client<S>;
}

async function* mapStreamErrors<T>(
  stream: AsyncIterable<T>,
  signal: AbortSignal | undefined,
): AsyncGenerator<T, void> {
  try {
    yield* stream;
  } catch (e) {
    throw toCallError(e, signal);
  }
}

/** The caller's call options for one attempt: its share of the deadline as the call's timeout. */
function withAttempt(options: CallOptions, attempt: Attempt): CallOptions {
  const { timeoutMs: _overall, ...rest } = options;
  return attempt.timeoutMs === undefined ? rest : { ...rest, timeoutMs: attempt.timeoutMs };
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}
