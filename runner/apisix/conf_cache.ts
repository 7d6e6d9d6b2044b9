/**
 * The conf-token cache (PROTOCOL.md §4.2, §6.3): PrepareConf turns a route's conf list into a
 * token; calls name the token. Tokens start at a random non-zero value per process (so a
 * restarted runner never maps APISIX's stale tokens to another route), the same key gets the
 * same token back, lifetimes slide on every use, and the number of entries is bounded.
 *
 * @module
 */
import type { ConfHandle, PluginHost } from "../sandboxes/plugin_host.ts";

/** One plugin of a route's chain with its parsed conf. */
export interface ChainLink {
  host: PluginHost;
  handle: ConfHandle;
}

/** What a token stands for. */
export interface ConfEntry {
  token: number;
  key: string;
  /** Plugins with a requestFilter, in conf order. */
  requestChain: ChainLink[];
  /** Plugins with a responseFilter, in conf order. */
  responseChain: ChainLink[];
  /** Every link, for releasing the confs. */
  links: ChainLink[];
  lastUsed: number;
}

/** Options of {@linkcode ConfCache}. */
export interface ConfCacheOptions {
  /** Sliding lifetime of an unused token, in milliseconds. */
  ttlMs: number;
  /** Most tokens kept; the least recently used go first. */
  maxEntries: number;
}

/** Token → conf chain, with sliding expiry and a size bound. */
export class ConfCache {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  #byToken = new Map<number, ConfEntry>();
  #byKey = new Map<string, ConfEntry>();
  #preparing = new Map<string, Promise<ConfEntry>>();
  #nextToken: number;
  // One timer, armed only while tokens are held, for the earliest moment one could expire (but
  // not sooner than a tick after the last sweep): an idle runner with no tokens, or with tokens
  // in steady use, wakes at most once per lifetime instead of every tick. `get` checks expiry
  // itself, so the sweep only frees memory; it never decides whether a token is valid.
  #sweeper: ReturnType<typeof setTimeout> | undefined;
  #sweepAt = Infinity;
  readonly #tick: number;
  #closed = false;

  constructor(options: ConfCacheOptions) {
    this.#ttlMs = options.ttlMs;
    this.#maxEntries = options.maxEntries;
    this.#nextToken = (crypto.getRandomValues(new Uint32Array(1))[0]! % 0xffff_fffe) + 1;
    this.#tick = Math.max(50, Math.min(1000, this.#ttlMs / 8));
  }

  /** Tokens held. */
  get size(): number {
    return this.#byToken.size;
  }

  /** The entry of `token`, refreshing its lifetime; undefined when unknown or expired. */
  get(token: number): ConfEntry | undefined {
    const entry = this.#byToken.get(token);
    if (!entry) return undefined;
    const now = Date.now();
    if (now - entry.lastUsed > this.#ttlMs) {
      this.#remove(entry);
      return undefined;
    }
    entry.lastUsed = now;
    return entry;
  }

  /** The live entry for `key`, refreshing its lifetime. */
  byKey(key: string): ConfEntry | undefined {
    const entry = this.#byKey.get(key);
    return entry && this.get(entry.token);
  }

  /**
   * The entry for `key`: the live one, the one being prepared right now (APISIX workers may
   * send the same key on several connections at once), or a new one from `build`. An empty
   * key (APISIX before 2.9) always gets a new entry.
   */
  prepare(key: string, build: () => Promise<ChainLink[]>): Promise<ConfEntry> {
    if (!key) return build().then((links) => this.add(key, links));
    const live = this.byKey(key);
    if (live) return Promise.resolve(live);
    let pending = this.#preparing.get(key);
    if (!pending) {
      pending = build().then((links) => this.add(key, links)).finally(() => {
        this.#preparing.delete(key);
      });
      this.#preparing.set(key, pending);
    }
    return pending;
  }

  /** Stores a new chain under `key` and returns its entry with a fresh token. */
  add(key: string, links: ChainLink[]): ConfEntry {
    const previous = key ? this.#byKey.get(key) : undefined;
    if (previous) this.#remove(previous);
    if (this.#byToken.size >= this.#maxEntries) this.#evictOldest();
    const entry: ConfEntry = {
      token: this.#issueToken(),
      key,
      links,
      requestChain: links.filter((link) => link.host.filters.request),
      responseChain: links.filter((link) => link.host.filters.response),
      lastUsed: Date.now(),
    };
    this.#byToken.set(entry.token, entry);
    if (key) this.#byKey.set(key, entry);
    this.#scheduleSweep(entry.lastUsed + this.#ttlMs);
    return entry;
  }

  /** Every live entry (a reload re-prepares their confs on the new plugin versions). */
  entries(): IterableIterator<ConfEntry> {
    return this.#byToken.values();
  }

  /**
   * Points a live entry at new links (a reload). Calls already running keep the chains they
   * started with; the old links are not released: their plugin versions are being retired.
   */
  relink(entry: ConfEntry, links: ChainLink[]): void {
    entry.links = links;
    entry.requestChain = links.filter((link) => link.host.filters.request);
    entry.responseChain = links.filter((link) => link.host.filters.response);
  }

  #issueToken(): number {
    for (;;) {
      const token = this.#nextToken;
      this.#nextToken = token >= 0xffff_ffff ? 1 : token + 1;
      if (!this.#byToken.has(token)) return token;
    }
  }

  #remove(entry: ConfEntry): void {
    this.#byToken.delete(entry.token);
    if (this.#byKey.get(entry.key) === entry) this.#byKey.delete(entry.key);
    for (const link of entry.links) link.host.release(link.handle);
  }

  /** Frees the least recently used 1% (at least one), so a full cache scans rarely. */
  #evictOldest(): void {
    const count = Math.max(1, Math.floor(this.#maxEntries / 100));
    const oldest = [...this.#byToken.values()]
      .sort((a, b) => a.lastUsed - b.lastUsed)
      .slice(0, count);
    for (const entry of oldest) this.#remove(entry);
  }

  /** Arms the sweep for `at` (ms since the epoch) unless one is due sooner. */
  #scheduleSweep(at: number): void {
    if (this.#closed || at >= this.#sweepAt) return;
    if (this.#sweeper !== undefined) clearTimeout(this.#sweeper);
    this.#sweepAt = at;
    // +1: an entry expires once strictly more than ttl has passed since its last use.
    this.#sweeper = setTimeout(() => this.#sweep(), Math.max(0, at - Date.now()) + 1);
    Deno.unrefTimer(this.#sweeper);
  }

  #sweep(): void {
    this.#sweeper = undefined;
    this.#sweepAt = Infinity;
    const now = Date.now();
    let oldest = Infinity;
    for (const entry of this.#byToken.values()) {
      if (now - entry.lastUsed > this.#ttlMs) this.#remove(entry);
      else if (entry.lastUsed < oldest) oldest = entry.lastUsed;
    }
    // Entries used since they were added slid their lifetimes: the next sweep is for the
    // least recently used one, and never sooner than a tick away, so a cache of many entries
    // expiring one by one is scanned at most once per tick.
    if (oldest !== Infinity) this.#scheduleSweep(Math.max(oldest + this.#ttlMs, now + this.#tick));
  }

  /** Stops the sweeper and drops every entry. */
  close(): void {
    this.#closed = true;
    if (this.#sweeper !== undefined) clearTimeout(this.#sweeper);
    this.#sweeper = undefined;
    for (const entry of [...this.#byToken.values()]) this.#remove(entry);
  }
}
