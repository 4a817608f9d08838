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

/**
 * A fetch `Headers` whose entries start out elsewhere (the subclass's own, cheaper form) and move
 * into the `Headers` itself the first time `fill` is called. Every method fills first, then answers
 * as `Headers`; a subclass overrides the few it can answer without filling, and calls `super` for
 * the rest. `fill` must mark the entries moved before it appends them (with `super.append`).
 */
export abstract class LazyHeaders extends HeadersBase {
  protected abstract fill(): void;

  override get(name: string): string | null {
    this.fill();
    return super.get(name);
  }

  override has(name: string): boolean {
    this.fill();
    return super.has(name);
  }

  override append(name: string, value: string): void {
    this.fill();
    super.append(name, value);
  }

  override set(name: string, value: string): void {
    this.fill();
    super.set(name, value);
  }

  override delete(name: string): void {
    this.fill();
    super.delete(name);
  }

  override getSetCookie(): string[] {
    this.fill();
    return super.getSetCookie();
  }

  override forEach(
    callback: (value: string, key: string, parent: Headers) => void,
    thisArg?: unknown,
  ): void {
    this.fill();
    super.forEach(callback, thisArg);
  }

  override entries(): Entries {
    this.fill();
    return super.entries();
  }

  override keys(): Names {
    this.fill();
    return super.keys();
  }

  override values(): Names {
    this.fill();
    return super.values();
  }

  override [Symbol.iterator](): Entries {
    this.fill();
    return super[Symbol.iterator]();
  }
}

/** An HTTP token (RFC 9110): a header name `Headers` takes as it is (up to case). */
const token = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A value `Headers` stores as it is: no NUL, CR or LF, no whitespace at either end. */
const plainValue = /^(?:[^\0\t\n\r ](?:[^\0\n\r]*[^\0\t\n\r ])?)?$/;

/** Whether a subclass may answer for `name` itself: a name `Headers` would accept unchanged. */
export function isPlainName(name: string): boolean {
  return token.test(name);
}

/** Whether `value` is one `Headers` would store unchanged (not trimmed, not refused). */
export function isPlainValue(value: string): boolean {
  return plainValue.test(value);
}
