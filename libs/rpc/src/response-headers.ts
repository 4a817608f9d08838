import { isPlainName, isPlainValue, LazyHeaders } from "./lazy-headers.ts";

/**
 * Response headers or trailers of a unary call as fetch `Headers`, held in a plain map while every
 * name and value is one `Headers` would store unchanged. A unary call makes two of them and sets a
 * handful of simple headers (content type, status, correlation id); a `Headers` validates and sorts
 * on every call, which cost about 1.5 % of the command service's main thread. The first operation
 * outside that (an unusual name or value, `append` to a present header, iteration, set-cookie)
 * moves the entries into the `Headers` itself, which answers from then on.
 */
export function unaryResponseHeaders(name: string, value: string): Headers {
  return new UnaryResponseHeaders(name, value) as unknown as Headers;
}

type NodeHeaders = Record<string, string | string[] | number>;

/** Headers as Node's `respond` and `sendTrailers` take them (set-cookie values kept apart). */
export function toNodeHeaders(header: Headers | undefined): NodeHeaders {
  if (header instanceof UnaryResponseHeaders) {
    const plain = header.plainEntries();
    if (plain !== undefined) return Object.fromEntries(plain);
  }
  const out: NodeHeaders = {};
  header?.forEach((value, name) => {
    out[name] = value;
  });
  // Headers joins repeated values but set-cookie, which must stay separate.
  const cookies = header?.getSetCookie() ?? [];
  if (cookies.length > 0) out["set-cookie"] = cookies;
  return out;
}

class UnaryResponseHeaders extends LazyHeaders {
  /** Lowercase name to value, until filled; then undefined and the base class holds the entries. */
  #plain: Map<string, string> | undefined = new Map();

  constructor(name: string, value: string) {
    super();
    this.set(name, value);
  }

  /** The entries while they are plain; undefined once the base class holds them. */
  plainEntries(): ReadonlyMap<string, string> | undefined {
    return this.#plain;
  }

  override get(name: string): string | null {
    const plain = this.#plain;
    if (plain !== undefined && isPlainName(name)) return plain.get(name.toLowerCase()) ?? null;
    return super.get(name);
  }

  override has(name: string): boolean {
    const plain = this.#plain;
    if (plain !== undefined && isPlainName(name)) return plain.has(name.toLowerCase());
    return super.has(name);
  }

  override set(name: string, value: string): void {
    const plain = this.#plain;
    if (plain !== undefined && simple(name, value)) {
      plain.set(name.toLowerCase(), value);
      return;
    }
    super.set(name, value);
  }

  override append(name: string, value: string): void {
    const plain = this.#plain;
    if (plain !== undefined && simple(name, value) && !plain.has(name.toLowerCase())) {
      plain.set(name.toLowerCase(), value);
      return;
    }
    super.append(name, value);
  }

  override delete(name: string): void {
    const plain = this.#plain;
    if (plain !== undefined && isPlainName(name)) {
      plain.delete(name.toLowerCase());
      return;
    }
    super.delete(name);
  }

  protected override fill(): void {
    const plain = this.#plain;
    if (plain === undefined) return;
    this.#plain = undefined;
    for (const [name, value] of plain) super.append(name, value);
  }
}

/** A header the plain map may hold: not set-cookie, which `Headers` keeps as separate values. */
function simple(name: string, value: string): boolean {
  return isPlainName(name) && isPlainValue(value) && name.toLowerCase() !== "set-cookie";
}
