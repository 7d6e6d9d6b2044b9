/**
 * A table of in-flight items (calls) keyed by numeric id, kept in insertion order.
 *
 * Why not a `Map<number, T>`: the runner and the sandboxes add and delete one entry per call in
 * tables that live as long as the process. V8 rehashes a Map every few dozen changes; once the
 * Map has reached the old generation, each rehash leaves a dead table there that still points at
 * the calls in flight at that moment. The scavenger takes those pointers for live ones, so
 * finished calls, and everything they reference, are promoted instead of freed. Under load at 64
 * connections that promoted about 55 MB/s, ran a mark-compact every 0.4 s and cost the runner
 * about 25 MB of memory and a tenth of its CPU. Here ids map to slot numbers in an open-addressing
 * table of typed arrays (no pointers, and no garbage but when it grows), the items sit in an array
 * whose slots are cleared on delete, and the order is a linked list of slot numbers.
 *
 * @module
 */

/** Largest id: ids stay positive 32-bit integers (V8 small integers). */
export const MAX_TABLE_ID = 0x7fff_ffff;

const EMPTY = 0;

/** Id → slot, open addressing with linear probing; ids are 1 to {@linkcode MAX_TABLE_ID}. */
class SlotIndex {
  #ids = new Int32Array(64);
  #slots = new Int32Array(64);
  #mask = 63;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** The slot of `id`, or -1. */
  get(id: number): number {
    if (!validId(id)) return -1;
    const ids = this.#ids;
    const mask = this.#mask;
    for (let i = id & mask;; i = (i + 1) & mask) {
      const held = ids[i]!;
      if (held === id) return this.#slots[i]!;
      if (held === EMPTY) return -1;
    }
  }

  /** Adds `id` (not held yet). */
  add(id: number, slot: number): void {
    if (!validId(id)) throw new RangeError(`id ${id} is not an integer from 1 to ${MAX_TABLE_ID}`);
    // At most half full, so probe runs stay short and every lookup meets an empty cell.
    if ((this.#size + 1) * 2 > this.#ids.length) this.#grow();
    this.#place(id, slot);
    this.#size++;
  }

  /** Removes `id`; resolves to the slot it had, or -1 when it was not held. */
  delete(id: number): number {
    if (!validId(id)) return -1;
    const ids = this.#ids;
    const slots = this.#slots;
    const mask = this.#mask;
    let hole = id & mask;
    while (ids[hole] !== id) {
      if (ids[hole] === EMPTY) return -1;
      hole = (hole + 1) & mask;
    }
    const removed = slots[hole]!;
    // Backward-shift deletion: move later entries of the probe run into the hole when their
    // home cell does not lie between the hole and them, so no tombstones are needed.
    for (let next = (hole + 1) & mask;; next = (next + 1) & mask) {
      const held = ids[next]!;
      if (held === EMPTY) break;
      const home = held & mask;
      const between = hole <= next ? hole < home && home <= next : hole < home || home <= next;
      if (between) continue;
      ids[hole] = held;
      slots[hole] = slots[next]!;
      hole = next;
    }
    ids[hole] = EMPTY;
    this.#size--;
    return removed;
  }

  #place(id: number, slot: number): void {
    const ids = this.#ids;
    const mask = this.#mask;
    let i = id & mask;
    while (ids[i] !== EMPTY) i = (i + 1) & mask;
    ids[i] = id;
    this.#slots[i] = slot;
  }

  #grow(): void {
    const ids = this.#ids;
    const slots = this.#slots;
    this.#ids = new Int32Array(ids.length * 2);
    this.#slots = new Int32Array(ids.length * 2);
    this.#mask = ids.length * 2 - 1;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] !== EMPTY) this.#place(ids[i]!, slots[i]!);
    }
  }
}

function validId(id: number): boolean {
  return Number.isInteger(id) && id >= 1 && id <= MAX_TABLE_ID;
}

/** An ordered table of items by numeric id; see the module documentation for why. */
export class IdTable<T> {
  #slotOf = new SlotIndex();
  #items: (T | undefined)[] = [];
  #prev: number[] = [];
  #next: number[] = [];
  #free: number[] = [];
  #head = -1;
  #tail = -1;

  /** Items held. */
  get size(): number {
    return this.#slotOf.size;
  }

  /** The item with `id`, if held. */
  get(id: number): T | undefined {
    const slot = this.#slotOf.get(id);
    return slot < 0 ? undefined : this.#items[slot];
  }

  /** Whether an item with `id` is held. */
  has(id: number): boolean {
    return this.#slotOf.get(id) >= 0;
  }

  /**
   * Adds `item` as the newest one; replaces the item of an `id` already held, in place. Throws a
   * `RangeError` unless `id` is an integer from 1 to {@linkcode MAX_TABLE_ID}.
   */
  set(id: number, item: T): void {
    const held = this.#slotOf.get(id);
    if (held >= 0) {
      this.#items[held] = item;
      return;
    }
    const slot = this.#free.length ? this.#free.pop()! : this.#items.length;
    this.#slotOf.add(id, slot);
    this.#items[slot] = item;
    this.#prev[slot] = this.#tail;
    this.#next[slot] = -1;
    if (this.#tail >= 0) this.#next[this.#tail] = slot;
    else this.#head = slot;
    this.#tail = slot;
  }

  /** Removes the item with `id`; false when none is held. */
  delete(id: number): boolean {
    const slot = this.#slotOf.delete(id);
    if (slot < 0) return false;
    const prev = this.#prev[slot]!;
    const next = this.#next[slot]!;
    if (prev >= 0) this.#next[prev] = next;
    else this.#head = next;
    if (next >= 0) this.#prev[next] = prev;
    else this.#tail = prev;
    this.#items[slot] = undefined;
    this.#free.push(slot);
    return true;
  }

  /**
   * The items, oldest first, as a new array: callers may delete and add while they go through
   * it (check {@linkcode has} for items an earlier step may have removed).
   */
  list(): T[] {
    const items: T[] = [];
    for (let slot = this.#head; slot >= 0; slot = this.#next[slot]!) {
      items.push(this.#items[slot]!);
    }
    return items;
  }

  /** The oldest item, if any. */
  oldest(): T | undefined {
    return this.#head >= 0 ? this.#items[this.#head] : undefined;
  }
}
