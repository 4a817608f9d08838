import type * as http2 from "node:http2";

/**
 * An HTTP/2 request's headers as fetch `Headers`, without the pseudo-headers, filled only when
 * something needs more than `get` or `has`. Filling a `Headers` validates and copies every header
 * (3 % of the command service's main thread at 256 calls in flight), while a unary call usually reads
 * three or four of them. `get` and `has` answer from Node's header object until then; every other
 * method, iteration and copying (`new Headers(these)`) see the filled headers.
 */
export function http2RequestHeaders(raw: http2.IncomingHttpHeaders): Headers {
  return new Http2RequestHeaders(raw) as unknown as Headers;
}

type Entries = ReturnType<Headers["entries"]>;
type Names = ReturnType<Headers["keys"]>;

/** Headers' methods as methods: the typings declare them as properties, which a subclass cannot override. */
interface HeadersMethods {
  get(name: string): string | null;
  has(name: string): boolean;
  append(name: string, value: string): void;
  set(name: string, value: string): void;
  delete(name: string): void;
  getSetCookie(): string[];
  forEach(callback: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void;
  entries(): Entries;
  keys(): Names;
  values(): Names;
  [Symbol.iterator](): Entries;
}

const HeadersBase = Headers as unknown as new () => HeadersMethods;

class Http2RequestHeaders extends HeadersBase {
  #raw: http2.IncomingHttpHeaders | undefined;

  constructor(raw: http2.IncomingHttpHeaders) {
    super();
    this.#raw = raw;
  }

  override get(name: string): string | null {
    const raw = this.#raw;
    if (raw !== undefined && plainName.test(name)) {
      const value = raw[name.toLowerCase()];
      if (value === undefined) return null;
      // Repeated values (Headers joins them) and values Headers would trim: as Headers has them.
      if (typeof value === "string" && plainValue.test(value)) return value;
    }
    this.#filled();
    return super.get(name);
  }

  override has(name: string): boolean {
    const raw = this.#raw;
    // Node's header object has no prototype: only headers are keys.
    if (raw !== undefined && plainName.test(name)) return raw[name.toLowerCase()] !== undefined;
    this.#filled();
    return super.has(name);
  }

  override append(name: string, value: string): void {
    this.#filled();
    super.append(name, value);
  }

  override set(name: string, value: string): void {
    this.#filled();
    super.set(name, value);
  }

  override delete(name: string): void {
    this.#filled();
    super.delete(name);
  }

  override getSetCookie(): string[] {
    this.#filled();
    return super.getSetCookie();
  }

  override forEach(
    callback: (value: string, key: string, parent: Headers) => void,
    thisArg?: unknown,
  ): void {
    this.#filled();
    super.forEach(callback, thisArg);
  }

  override entries(): Entries {
    this.#filled();
    return super.entries();
  }

  override keys(): Names {
    this.#filled();
    return super.keys();
  }

  override values(): Names {
    this.#filled();
    return super.values();
  }

  override [Symbol.iterator](): Entries {
    this.#filled();
    return super[Symbol.iterator]();
  }

  #filled(): void {
    const raw = this.#raw;
    if (raw === undefined) return;
    this.#raw = undefined;
    for (const name in raw) {
      if (name.charCodeAt(0) === 58 /* ":" */) continue;
      const value = raw[name];
      if (typeof value === "string") super.append(name, value);
      else if (Array.isArray(value)) for (const v of value) super.append(name, v);
    }
  }
}

/** A header name `get` can look up as it is: no pseudo-header, nothing `Headers` would refuse. */
const plainName = /^[A-Za-z0-9-]+$/;
/** A value Headers keeps as it is: empty, or no whitespace at either end. */
const plainValue = /^(?:[^\t\n\r ](?:.*[^\t\n\r ])?)?$/s;
