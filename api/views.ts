/**
 * The objects a plugin's filters receive, built lazily over the request bytes APISIX sent: a
 * field is decoded the first time a plugin reads it. Each view collects its changes into a
 * {@linkcode Patch}.
 *
 * @module
 */
import type { HttpReqCallReq } from "../protocol/gen/http_req_call_req.ts";
import type { HttpRespCallReq } from "../protocol/gen/http_resp_call_req.ts";
import { TextEntry } from "../protocol/gen/text_entry.ts";
import { IGNORED_RESPONSE_HEADERS, METHODS } from "../protocol/apisix_rules.ts";
import { Encoding } from "flatbuffers";
import { ArgStore } from "./args.ts";
import {
  decodeLatin1,
  decodeUtf8,
  decodeUtf8Lossless,
  encodeLatin1,
  encodeUtf8,
  encodeUtf8Lossless,
} from "./bytes.ts";
import { HeaderStore } from "./headers.ts";
import type { ByteEntry, Patch } from "./patch.ts";
import type {
  ArgMap,
  HeaderMap,
  HttpMethod,
  PluginRequest,
  PluginResponse,
  UpstreamResponse,
} from "./types.ts";

/** What a view needs from whoever runs the plugin: ExtraInfo questions and warnings. */
export interface CallHost {
  /** Asks APISIX for a variable, the request body or the response body; `null` when absent. */
  ask(info: "var" | "reqBody" | "respBody", name?: string): Promise<Uint8Array | null>;
  /** Logs a warning about this call under the plugin's name. */
  warn(message: string): void;
}

/**
 * Response headers APISIX silently ignores in a rewrite's resp_headers (PROTOCOL.md §5.2).
 */

/** Formats 4 or 16 address bytes as text (RFC 5952 for IPv6). */
export function formatIp(bytes: Uint8Array | null): string {
  if (!bytes) return "";
  if (bytes.length === 4) return bytes.join(".");
  if (bytes.length !== 16) return "";
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${bytes.subarray(12).join(".")}`;
  }
  // The longest run of two or more zero words becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

/** `bytes` typed as backed by an `ArrayBuffer` (what Web APIs such as `crypto.subtle` take). */
function owned(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : bytes.slice();
}

function toBytes(body: string | Uint8Array): Uint8Array {
  return typeof body === "string" ? encodeUtf8(body) : body;
}

// A plugin that answers with a fixed text sets the same string on every call: its bytes are
// kept from the call before (a new typed array per call costs more than the rest of `say`).
// For a patch's answer body only: that is read to be copied into the reply, and no plugin
// code ever gets it (unlike a body given to setBody, which body() hands back).
const REMEMBERED_TEXT = 4096;
let lastText = "";
let lastBytes: Uint8Array = new Uint8Array();

function answerBytes(body: string | Uint8Array): Uint8Array {
  if (typeof body !== "string") return body;
  if (body === lastText) return lastBytes;
  const bytes = encodeUtf8(body);
  if (body.length <= REMEMBERED_TEXT) {
    lastText = body;
    lastBytes = bytes;
  }
  return bytes;
}

function readEntries(
  count: number,
  entry: (index: number, into: TextEntry) => TextEntry | null,
): Array<[Uint8Array, Uint8Array | null]> {
  const out: Array<[Uint8Array, Uint8Array | null]> = [];
  const reused = new TextEntry();
  for (let i = 0; i < count; i++) {
    const e = entry(i, reused)!;
    const name = e.name(Encoding.UTF8_BYTES) as Uint8Array | null;
    const value = e.value(Encoding.UTF8_BYTES) as Uint8Array | null;
    out.push([name ?? new Uint8Array(), value]);
  }
  return out;
}

function headerPairs(entries: Array<[Uint8Array, Uint8Array | null]>): Array<[string, string]> {
  return entries.map(([name, value]) => [decodeLatin1(name), value ? decodeLatin1(value) : ""]);
}

/** Caches ExtraInfo answers for one call, so each is asked at most once. */
class Asked {
  #vars = new Map<string, Promise<string | null>>();
  #bodies = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

  constructor(private host: CallHost) {}

  var(name: string): Promise<string | null> {
    const key = String(name);
    let value = this.#vars.get(key);
    if (!value) {
      value = this.host.ask("var", key).then((bytes) => bytes === null ? null : decodeUtf8(bytes));
      this.#vars.set(key, value);
    }
    return value;
  }

  body(kind: "reqBody" | "respBody"): Promise<Uint8Array<ArrayBuffer>> {
    let body = this.#bodies.get(kind);
    if (!body) {
      body = this.host.ask(kind).then((bytes) => bytes ? owned(bytes) : new Uint8Array());
      this.#bodies.set(kind, body);
    }
    return body;
  }
}

function splitQuery(path: string): [string, Array<[string, string]>] {
  const at = path.indexOf("?");
  if (at < 0) return [path, []];
  return [path.slice(0, at), [...new URLSearchParams(path.slice(at + 1))]];
}

/** The request view for `requestFilter`, over an `HttpReqCallReq`. */
export class RequestView implements PluginRequest {
  #req: HttpReqCallReq;
  #overlay: Patch | null;
  #asked: Asked | null = null;
  #host: CallHost;
  #path: string | null = null;
  #pathChanged = false;
  #headers: HeaderStore | null = null;
  #args: ArgStore | null = null;
  #newBody: Uint8Array | null = null;

  constructor(req: HttpReqCallReq, overlay: Patch | null, host: CallHost) {
    this.#req = req;
    this.#overlay = overlay;
    this.#host = host;
  }

  get id(): number {
    return this.#req.id();
  }

  get srcIp(): string {
    return formatIp(this.#req.srcIpArray());
  }

  get method(): HttpMethod {
    return METHODS[this.#req.method()] ?? "GET";
  }

  get path(): string {
    if (this.#path === null) {
      const bytes = this.#overlay?.path ??
        (this.#req.path(Encoding.UTF8_BYTES) as Uint8Array | null);
      this.#path = bytes ? decodeUtf8Lossless(bytes) : "/";
    }
    return this.#path;
  }

  set path(value: string) {
    const [path, query] = splitQuery(String(value));
    if (!path.startsWith("/")) {
      throw new TypeError(`Invalid path ${JSON.stringify(value)}: it must start with "/"`);
    }
    this.#path = path;
    this.#pathChanged = true;
    const seen = new Set<string>();
    for (const [name, arg] of query) {
      if (seen.has(name)) this.args.append(name, arg);
      else this.args.set(name, arg);
      seen.add(name);
    }
  }

  get headers(): HeaderMap {
    return this.#headerStore();
  }

  #headerStore(): HeaderStore {
    if (!this.#headers) {
      const req = this.#req;
      const headers = HeaderStore.fromTrustedLazily(() =>
        headerPairs(readEntries(req.headersLength(), (i, e) => req.headers(i, e)))
      );
      for (const [name, values] of this.#overlay?.headers ?? []) {
        headers.restore(name, values.map(decodeLatin1));
      }
      this.#headers = headers;
    }
    return this.#headers;
  }

  get args(): ArgMap {
    return this.#argStore();
  }

  #argStore(): ArgStore {
    if (!this.#args) {
      const req = this.#req;
      const args = new ArgStore(
        readEntries(req.argsLength(), (i, e) => req.args(i, e)).map((
          [name, value],
        ) => [decodeUtf8Lossless(name), value ? decodeUtf8Lossless(value) : null]),
      );
      for (const [name, values] of this.#overlay?.args ?? []) {
        args.restore(
          decodeUtf8Lossless(encodeLatin1(name)),
          values.map((v) => v === null ? null : decodeUtf8Lossless(v)),
        );
      }
      this.#args = args;
    }
    return this.#args;
  }

  var(name: string): Promise<string | null> {
    return (this.#asked ??= new Asked(this.#host)).var(name);
  }

  body(): Promise<Uint8Array<ArrayBuffer>> {
    const replaced = this.#newBody ?? this.#overlay?.requestBody;
    return replaced
      ? Promise.resolve(owned(replaced))
      : (this.#asked ??= new Asked(this.#host)).body("reqBody");
  }

  async text(): Promise<string> {
    return decodeUtf8(await this.body());
  }

  async json<T = unknown>(): Promise<T> {
    return JSON.parse(await this.text()) as T;
  }

  setBody(body: string | Uint8Array): void {
    const bytes = toBytes(body);
    if (bytes.length === 0) {
      this.#host.warn("ignored an empty request body: APISIX cannot send an empty replacement");
      return;
    }
    this.#newBody = bytes;
  }

  /** Adds this view's changes to `patch`. */
  collect(patch: Patch): void {
    if (this.#pathChanged) patch.path = encodeUtf8Lossless(this.#path!);
    const headers = this.#headers;
    if (headers?.changed) {
      patch.headers = new Map();
      for (const name of headers.changed) {
        const values = headers.valuesOf(name);
        // APISIX would blank $upstream_host: the upstream request would go without a Host.
        if (name === "host" && values.length === 0) {
          this.#host.warn("ignored deleting the host header: APISIX cannot proxy without one");
          continue;
        }
        patch.headers.set(name, values.map(encodeLatin1));
      }
      if (patch.headers.size === 0) patch.headers = null;
    }
    const args = this.#args;
    if (args?.changed) {
      patch.args = new Map();
      for (const name of args.changed) {
        patch.args.set(
          decodeLatin1(encodeUtf8Lossless(name)),
          args.valuesOf(name).map((v) => v === null ? null : encodeUtf8Lossless(v)),
        );
      }
    }
    if (this.#newBody) patch.requestBody = this.#newBody;
  }
}

function entriesOf(headers: HeaderStore): ByteEntry[] {
  const list: ByteEntry[] = [];
  for (const [name, value] of headers.pairs()) list.push([encodeLatin1(name), encodeLatin1(value)]);
  return list;
}

function storeFrom(list: readonly ByteEntry[]): HeaderStore {
  return HeaderStore.fromTrusted(list.map(([n, v]) => [decodeLatin1(n), decodeLatin1(v)]));
}

/** The response writer for `requestFilter`. */
export class ResponseWriter implements PluginResponse {
  #status = 0;
  #body: string | Uint8Array | null = null;
  #headers: HeaderStore | null = null;
  #overlay: Patch | null;
  #host: CallHost;

  constructor(overlay: Patch | null, host: CallHost) {
    this.#overlay = overlay;
    this.#host = host;
  }

  get status(): number {
    return this.#status || 200;
  }

  set status(value: number) {
    const status = Number(value);
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new RangeError(`Invalid status ${value}: it must be an integer from 100 to 599`);
    }
    this.#status = status;
  }

  get headers(): HeaderMap {
    return this.#store();
  }

  #store(): HeaderStore {
    this.#headers ??= storeFrom(this.#overlay?.responseHeaders ?? []);
    return this.#headers;
  }

  get body(): string | Uint8Array | null {
    return this.#body;
  }

  set body(value: string | Uint8Array | null) {
    if (value !== null && typeof value !== "string" && !(value instanceof Uint8Array)) {
      throw new TypeError("The body must be a string, a Uint8Array or null");
    }
    this.#body = value;
  }

  get stopped(): boolean {
    return this.#status !== 0 || this.#body !== null;
  }

  /** Adds this writer's changes to `patch`. */
  collect(patch: Patch): void {
    const headers = this.#headers;
    if (this.stopped) {
      patch.stop = true;
      patch.status = this.status;
      patch.responseHeaders = headers ? entriesOf(headers) : null;
      if (this.#body !== null) patch.responseBody = answerBytes(this.#body);
      return;
    }
    if (!headers?.changed) return;
    const list: ByteEntry[] = [];
    const ignored = new Set<string>();
    for (const [name, value] of headers.pairs()) {
      if (IGNORED_RESPONSE_HEADERS.has(name)) ignored.add(name);
      else list.push([encodeLatin1(name), encodeLatin1(value)]);
    }
    if (ignored.size) {
      this.#host.warn(
        `dropped response header(s) ${[...ignored].join(", ")}: APISIX ignores them unless the ` +
          "plugin answers itself (set status or body)",
      );
    }
    patch.responseHeaders = list;
  }
}

/** The upstream response view for `responseFilter`, over an `HttpRespCallReq`. */
export class UpstreamResponseView implements UpstreamResponse {
  #req: HttpRespCallReq;
  #overlay: Patch | null;
  #asked: Asked | null = null;
  #host: CallHost;
  #status = 0;
  #raw: Array<[string, string]> | null = null;
  #headers: HeaderStore | null = null;
  #newBody: Uint8Array | null = null;

  constructor(req: HttpRespCallReq, overlay: Patch | null, host: CallHost) {
    this.#req = req;
    this.#overlay = overlay;
    this.#host = host;
  }

  get id(): number {
    return this.#req.id();
  }

  get status(): number {
    return this.#status || this.#overlay?.status || this.#req.status();
  }

  set status(value: number) {
    const status = Number(value);
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new RangeError(`Invalid status ${value}: it must be an integer from 100 to 599`);
    }
    this.#status = status;
  }

  get rawHeaders(): ReadonlyArray<readonly [string, string]> {
    if (!this.#raw) {
      const req = this.#req;
      this.#raw = headerPairs(readEntries(req.headersLength(), (i, e) => req.headers(i, e)));
    }
    return this.#raw;
  }

  get headers(): HeaderMap {
    return this.#store();
  }

  #store(): HeaderStore {
    if (!this.#headers) {
      const headers = HeaderStore.fromTrustedLazily(() => this.rawHeaders);
      for (const [name, values] of this.#overlay?.headers ?? []) {
        headers.restore(name, values.map(decodeLatin1));
      }
      this.#headers = headers;
    }
    return this.#headers;
  }

  body(): Promise<Uint8Array<ArrayBuffer>> {
    const replaced = this.#newBody ?? this.#overlay?.responseBody;
    return replaced
      ? Promise.resolve(owned(replaced))
      : (this.#asked ??= new Asked(this.#host)).body("respBody");
  }

  async text(): Promise<string> {
    return decodeUtf8(await this.body());
  }

  async json<T = unknown>(): Promise<T> {
    return JSON.parse(await this.text()) as T;
  }

  setBody(body: string | Uint8Array): void {
    const bytes = toBytes(body);
    if (bytes.length === 0) {
      this.#host.warn("ignored an empty response body: APISIX cannot send an empty replacement");
      return;
    }
    this.#newBody = bytes;
  }

  var(name: string): Promise<string | null> {
    return (this.#asked ??= new Asked(this.#host)).var(name);
  }

  /** Adds this view's changes to `patch`. */
  collect(patch: Patch): void {
    if (this.#status) patch.status = this.#status;
    // Only the names that changed, like request headers: the runner keeps the upstream's
    // others as they came, so nothing unchanged is decoded or encoded again.
    const headers = this.#headers;
    if (headers?.changed) {
      patch.headers = new Map();
      for (const name of headers.changed) {
        patch.headers.set(name, headers.valuesOf(name).map(encodeLatin1));
      }
    }
    if (this.#newBody) patch.responseBody = this.#newBody;
  }
}
