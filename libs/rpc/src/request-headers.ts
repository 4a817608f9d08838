import type * as http2 from "node:http2";
import { isPlainName, isPlainValue, LazyHeaders } from "./lazy-headers.ts";

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

class Http2RequestHeaders extends LazyHeaders {
  #raw: http2.IncomingHttpHeaders | undefined;

  constructor(raw: http2.IncomingHttpHeaders) {
    super();
    this.#raw = raw;
  }

  override get(name: string): string | null {
    const raw = this.#raw;
    if (raw !== undefined && isPlainName(name)) {
      const value = raw[name.toLowerCase()];
      if (value === undefined) return null;
      // Repeated values (Headers joins them) and values Headers would trim: as Headers has them.
      if (typeof value === "string" && isPlainValue(value)) return value;
    }
    return super.get(name);
  }

  override has(name: string): boolean {
    const raw = this.#raw;
    // Node's header object has no prototype: only headers are keys.
    if (raw !== undefined && isPlainName(name)) return raw[name.toLowerCase()] !== undefined;
    return super.has(name);
  }

  protected override fill(): void {
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
