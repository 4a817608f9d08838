/**
 * An immutable, insertion-ordered map of a story's decisions or subtasks, which `evolve` updates
 * without copying it: `with` returns a new map that shares the old one's entries.
 *
 * A story's state is replaced on every event, and copying its maps made each command cost time and
 * garbage in proportion to the story (a `Map` copy costs about 60 ns per entry: 60 µs per command
 * for a story of 1,000 subtasks). Here a map is a flat `Map` (its base) plus a short chain of the
 * entries set since; `with` adds a link, and once the chain is √n long (at least 8) the next `with`
 * folds it into a new base. So setting costs O(1) plus one copy per √n sets, O(√n) amortized, and
 * a lookup walks at most √n links before the base. Iterating folds the chain first (iteration is
 * O(n) anyway), which changes only how the map holds its entries, never what it holds.
 *
 * It reads like a `ReadonlyMap` (iteration in insertion order; setting a present key keeps its
 * place). No entry is ever removed: a story's decisions and subtasks are never deleted.
 */
export class StoryMap<V> implements ReadonlyMap<string, V> {
  /** Never written once this map (or one made from it) exists. */
  #base: ReadonlyMap<string, V>;
  /** The entries set since the base, newest first; undefined when there are none. */
  #chain: Link<V> | undefined;
  #chainLength: number;
  readonly size: number;

  private constructor(
    base: ReadonlyMap<string, V>,
    chain: Link<V> | undefined,
    chainLength: number,
    size: number,
  ) {
    this.#base = base;
    this.#chain = chain;
    this.#chainLength = chainLength;
    this.size = size;
  }

  /**
   * A story map with the entries of `map`, in its order. A `StoryMap` is returned as it is; any
   * other map becomes the base, not copied: it must not be changed afterwards.
   */
  static of<V>(map: ReadonlyMap<string, V>): StoryMap<V> {
    return map instanceof StoryMap
      ? (map as StoryMap<V>)
      : new StoryMap(map, undefined, 0, map.size);
  }

  /** This map with `key` set to `value` (a present key keeps its place); this map is unchanged. */
  with(key: string, value: V): StoryMap<V> {
    const present = this.has(key);
    const size = present ? this.size : this.size + 1;
    if (this.#chainLength >= chainLimit(this.#base.size)) {
      const base = this.#folded();
      base.set(key, value);
      return new StoryMap(base, undefined, 0, size);
    }
    const link: Link<V> = { key, value, next: this.#chain };
    return new StoryMap(this.#base, link, this.#chainLength + 1, size);
  }

  get(key: string): V | undefined {
    for (let link = this.#chain; link !== undefined; link = link.next) {
      if (link.key === key) return link.value;
    }
    return this.#base.get(key);
  }

  has(key: string): boolean {
    for (let link = this.#chain; link !== undefined; link = link.next) {
      if (link.key === key) return true;
    }
    return this.#base.has(key);
  }

  forEach(
    callback: (value: V, key: string, map: ReadonlyMap<string, V>) => void,
    thisArg?: unknown,
  ) {
    for (const [key, value] of this.#flat()) callback.call(thisArg, value, key, this);
  }

  entries(): MapIterator<[string, V]> {
    return this.#flat().entries();
  }

  keys(): MapIterator<string> {
    return this.#flat().keys();
  }

  values(): MapIterator<V> {
    return this.#flat().values();
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.#flat().entries();
  }

  get [Symbol.toStringTag](): string {
    return "StoryMap";
  }

  /** The entries as one flat map: the chain folded into a new base, which this map keeps. */
  #flat(): ReadonlyMap<string, V> {
    if (this.#chain === undefined) return this.#base;
    const flat = this.#folded();
    this.#base = flat;
    this.#chain = undefined;
    this.#chainLength = 0;
    return flat;
  }

  /** A new Map with the base's entries and the chain's, in insertion order. */
  #folded(): Map<string, V> {
    const links: Link<V>[] = [];
    for (let link = this.#chain; link !== undefined; link = link.next) links.push(link);
    const folded = new Map(this.#base);
    // Oldest first, so that new keys take their places in the order they were set.
    for (let i = links.length - 1; i >= 0; i--) {
      const link = links[i] as Link<V>;
      folded.set(link.key, link.value);
    }
    return folded;
  }
}

interface Link<V> {
  readonly key: string;
  readonly value: V;
  readonly next: Link<V> | undefined;
}

/**
 * Links a lookup walks at most over a base of `size` entries; also how many sets one copy of the
 * base is shared by. √n balances the two: both cost O(√n) per set.
 */
function chainLimit(size: number): number {
  return Math.max(8, Math.ceil(Math.sqrt(size)));
}
