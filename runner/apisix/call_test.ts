import { deepEqual, equal, rejects } from "node:assert/strict";
import { Phase } from "../../sandbox/messages.ts";
import { type AskApisix, CallState } from "./call.ts";

/** An APISIX stand-in whose answers the test releases one at a time. */
function apisix() {
  const asked: string[] = [];
  const pending: Array<{ resolve(value: Uint8Array | null): void; reject(e: Error): void }> = [];
  const ask: AskApisix = (info, name) => {
    asked.push(info === "var" ? `var:${new TextDecoder().decode(name)}` : info);
    return new Promise((resolve, reject) => pending.push({ resolve, reject }));
  };
  return { ask, asked, pending };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
const text = (bytes: Uint8Array | null) => bytes && new TextDecoder().decode(bytes);

Deno.test("CallState: questions go to APISIX one at a time, in the order asked (§8.47)", async () => {
  const fake = apisix();
  const state = new CallState(Phase.Request, new Uint8Array(12), fake.ask);
  const a = state.ask("var", "a");
  const b = state.ask("var", "b");
  const body = state.ask("reqBody", "");
  await tick();
  deepEqual(fake.asked, ["var:a"], "the second question waits for the first answer");
  fake.pending[0]!.resolve(new TextEncoder().encode("A"));
  await tick();
  deepEqual(fake.asked, ["var:a", "var:b"]);
  fake.pending[1]!.resolve(null);
  await tick();
  deepEqual(fake.asked, ["var:a", "var:b", "reqBody"]);
  fake.pending[2]!.resolve(new Uint8Array());
  deepEqual([text(await a), await b, (await body)!.length], ["A", null, 0]);
});

Deno.test("CallState: a repeated question is answered from the call's cache (§8.47, §8.49)", async () => {
  const fake = apisix();
  const state = new CallState(Phase.Response, new Uint8Array(12), fake.ask);
  const first = state.ask("respBody", "");
  const again = state.ask("respBody", "");
  const v1 = state.ask("var", "uri");
  const v2 = state.ask("var", "uri");
  await tick();
  fake.pending[0]!.resolve(new TextEncoder().encode("body"));
  await tick();
  fake.pending[1]!.resolve(new TextEncoder().encode("/p"));
  deepEqual(await Promise.all([first, again, v1, v2]).then((all) => all.map(text)), [
    "body",
    "body",
    "/p",
    "/p",
  ]);
  deepEqual(fake.asked, ["respBody", "var:uri"]);
  // A var named like the body kinds is a different question.
  const named = state.ask("var", "respBody");
  await tick();
  deepEqual(fake.asked, ["respBody", "var:uri", "var:respBody"]);
  fake.pending[2]!.resolve(null);
  equal(await named, null);
});

Deno.test("CallState: the response body is refused locally during a request (§8.50)", async () => {
  const fake = apisix();
  const state = new CallState(Phase.Request, new Uint8Array(12), fake.ask);
  equal(await state.ask("respBody", ""), null);
  deepEqual(fake.asked, []);
});

Deno.test("CallState: a connection that fails an ask abandons the call (§8.48)", async () => {
  const fake = apisix();
  const state = new CallState(Phase.Request, new Uint8Array(12), fake.ask);
  const a = state.ask("var", "a");
  await tick();
  fake.pending[0]!.reject(new Error("connection closed"));
  await rejects(a, /connection closed/);
  equal(state.gone, true);
  await rejects(state.ask("var", "b"), /the connection closed during the call/);
  deepEqual(fake.asked, ["var:a"]);
});

Deno.test("CallState.finish: waits for a question still on the wire; queued ones are never sent", async () => {
  const fake = apisix();
  const state = new CallState(Phase.Request, new Uint8Array(12), fake.ask);
  const a = state.ask("reqBody", "");
  const b = state.ask("var", "b");
  await tick();
  let finished = false;
  const done = state.finish()!.then(() => finished = true);
  await tick();
  equal(finished, false, "the answer to the first question is still owed");
  fake.pending[0]!.resolve(new TextEncoder().encode("late"));
  await done;
  equal(text(await a), "late");
  await rejects(b, /already answered/);
  deepEqual(fake.asked, ["reqBody"]);
  equal(state.gone, false);
});
