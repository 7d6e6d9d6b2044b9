import { deepEqual, equal, ok } from "node:assert/strict";
import fc from "fast-check";
import { ByteReader, ByteWriter, decodeUtf8, encodeUtf8 } from "../../api/bytes.ts";
import { Patch } from "../../api/patch.ts";
import { writePrefetch } from "../../api/prefetch.ts";
import { BatchWriter, Info, Kind, Phase, readMessages } from "../../sandbox/messages.ts";
import { bundledSettings } from "../config/config.ts";
import { type CallContext, PluginHost } from "./plugin_host.ts";

// The hosts arm deadline timers that outlive a test by design.
const OPTIONS = { sanitizeOps: false, sanitizeResources: false };

/** A host attached to a fake sandbox that records what the runner sends it. */
function attachedHost() {
  const kills: string[] = [];
  const sent: Uint8Array[] = [];
  const host = new PluginHost(bundledSettings("say"), {
    kill: (_host, cause, message) => kills.push(`${cause}: ${message}`),
    wake: () => {},
  });
  host.attach((batch) => sent.push(batch.slice()));
  return { host, kills, sent };
}

/** A batch from the fake worker. */
function batch(write: (out: BatchWriter) => void): Uint8Array {
  const out = new BatchWriter();
  write(out);
  return out.take();
}

function ack(): Uint8Array {
  return batch((out) => {
    out.begin(Kind.Ack);
    out.end();
  });
}

/** Every message the runner sent, as `[kind, body bytes]`. */
function messages(sent: Uint8Array[]): Array<[number, Uint8Array]> {
  const all: Array<[number, Uint8Array]> = [];
  for (const bytes of sent) {
    readMessages(bytes, (kind, body) => all.push([kind, body.rest().slice()]));
  }
  return all;
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test({
  name: "a prefetching conf: the answers are asked first and travel with the call",
  ...OPTIONS,
  async fn() {
    const { host, kills, sent } = attachedHost();
    const preparing = host.prepare('{"body":"x"}');
    await tick();
    const [kind, body] = messages(sent)[0]!;
    equal(kind, Kind.Conf);
    const confId = new ByteReader(body).u32();
    host.receive(batch((out) => {
      writePrefetch(out.begin(Kind.ConfOk).u32(confId), {
        vars: ["remote_addr", "uri"],
        requestBody: true,
        responseBody: true,
      });
      out.end();
      out.begin(Kind.Ack);
      out.end();
    }));
    const prepared = await preparing;
    ok(prepared.ok);
    deepEqual(prepared.handle.prefetch?.vars, ["remote_addr", "uri"]);

    const asked: string[] = [];
    const request = new Uint8Array([1, 2, 3]);
    const ctx: CallContext = {
      ask(info, name) {
        asked.push(info === "var" ? `var:${name}` : info);
        return Promise.resolve(name === "uri" ? null : encodeUtf8(`${info}:${name}`));
      },
      // The call's own copy, as CallState keeps it once it has asked APISIX.
      request: request.slice(),
    };
    const outcome = host.call(prepared.handle, Phase.Request, request, null, ctx);
    await tick();
    // The response body is not asked in the request phase.
    deepEqual(asked, ["var:remote_addr", "var:uri", "reqBody"]);
    const call = messages(sent).find(([k]) => k === Kind.Call)![1];
    const reader = new ByteReader(call);
    const callId = reader.u32();
    equal(reader.u32(), confId);
    equal(reader.u8(), Phase.Request);
    deepEqual([...reader.bytesView()], [1, 2, 3]);
    const answers: Array<[number, string, string | null]> = [];
    for (let n = reader.u8(); n > 0; n--) {
      const info = reader.u8();
      const name = decodeUtf8(reader.raw(reader.u16()));
      const present = reader.u8() === 1;
      const value = reader.bytesView();
      answers.push([info, name, present ? decodeUtf8(value) : null]);
    }
    deepEqual(answers, [
      [Info.Var, "remote_addr", "var:remote_addr"],
      [Info.Var, "uri", null],
      [Info.ReqBody, "", "reqBody:"],
    ]);
    equal(reader.remaining, 0, "no overlay");

    const patch = new Patch();
    patch.status = 204;
    host.receive(batch((out) => {
      patch.encode(out.begin(Kind.Result).u32(callId));
      out.end();
    }));
    const result = await outcome;
    ok(result.ok);
    equal(result.patch.status, 204);
    deepEqual(kills, []);
  },
});

Deno.test({
  name: "a prefetch list out of bounds from the worker is a protocol violation",
  ...OPTIONS,
  async fn() {
    for (
      const list of [
        [9, 0], // unknown flags
        [0, 33], // more than 32 names
        [0, 1, 0, 0], // an empty name
        [0, 2, 1, 0, 0x61], // fewer names than counted
      ]
    ) {
      const { host, kills, sent } = attachedHost();
      const preparing = host.prepare("{}");
      await tick();
      const confId = new ByteReader(messages(sent)[0]![1]).u32();
      host.receive(batch((out) => {
        out.begin(Kind.ConfOk).u32(confId).raw(new Uint8Array(list));
        out.end();
      }));
      equal(kills.length, 1, `${list}`);
      ok(kills[0]!.startsWith("violation: protocol violation"), kills[0]);
      // The supervisor's kill detaches the host; the parse waits for the next sandbox.
      host.markUnavailable("test over");
      equal((await preparing).ok, false);
    }
  },
});

Deno.test({
  name: "whatever bytes a worker sends, receive() never throws: it handles or reports them",
  ...OPTIONS,
  fn() {
    const valid = (): Uint8Array =>
      batch((out) => {
        out.begin(Kind.Ready).u8(3).rawUtf8("say");
        out.end();
        writePrefetch(out.begin(Kind.ConfOk).u32(1), {
          vars: ["a"],
          requestBody: false,
          responseBody: false,
        });
        out.end();
        out.begin(Kind.Log).u8(2).rawUtf8("a line");
        out.end();
        out.begin(Kind.Ask).u32(7).u32(0).u8(Info.Var).rawUtf8("uri");
        out.end();
        const patch = new Patch();
        patch.path = encodeUtf8("/x");
        patch.encode(out.begin(Kind.Result).u32(7));
        out.end();
        out.begin(Kind.Failed).u32(8).u8(0).rawUtf8("boom");
        out.end();
        out.begin(Kind.Ack);
        out.end();
      });
    const mutated = fc.tuple(
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      fc.nat(),
    ).map(([flips, cut]) => {
      const bytes = valid();
      for (const [at, value] of flips) bytes[at % bytes.length] = value;
      return bytes.subarray(0, bytes.length - (cut % 8));
    });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 256 }), mutated), (bytes) => {
        const { host, kills } = attachedHost();
        host.receive(ack());
        host.receive(bytes);
        for (const kill of kills) ok(kill.startsWith("violation: "), kill);
      }),
      { numRuns: 2_000, seed: 20261126 },
    );
  },
});

Deno.test({
  name: "a batch without kind-length framing is refused whole",
  ...OPTIONS,
  fn() {
    const { host, kills } = attachedHost();
    const out = new ByteWriter();
    out.u32(1000).u8(Kind.Ack);
    host.receive(out.take());
    equal(kills.length, 1);
    ok(/needed 1000 bytes/.test(kills[0]!), kills[0]);
  },
});

Deno.test({
  name: "messages that answer nothing: past 64 MiB of them in a second, the sandbox is ended",
  ...OPTIONS,
  async fn() {
    const { host, kills } = attachedHost();
    // A result for a call that does not exist, carrying 1 MiB.
    const stray = batch((out) => {
      out.begin(Kind.Result).u32(123_456).raw(new Uint8Array(1 << 20));
      out.end();
    });
    for (let i = 0; i < 63; i++) await host.receive(stray);
    deepEqual(kills, [], "late answers are normal in small numbers, large or not");
    await host.receive(stray);
    equal(kills.length, 1);
    ok(
      /^violation: protocol violation: message flood: more than 64 MiB in a second/.test(kills[0]!),
      kills[0],
    );
    // The next sandbox starts with limits of its own (replayed confs answer as strays).
    host.detach("violation", "killed");
    host.attach(() => {});
    await host.receive(stray);
    equal(kills.length, 1);
  },
});
