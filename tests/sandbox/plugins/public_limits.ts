/**
 * Too much through the public API alone: more request headers than a reply may carry, more
 * values for one header than its 16-bit count holds, a response body whose getter throws,
 * ExtraInfo questions by the ten thousand, a variable name of 5,000 bytes, and a thrown proxy
 * whose prototype trap throws. Each is this
 * plugin's error for that call, and nothing else.
 *
 * @module
 */
import { definePlugin } from "@apisix/deno-plugin-runner";

class ThrowingBody extends Uint8Array {
  override get length(): number {
    throw new Error("a body that cannot say its length");
  }
}

export default definePlugin({
  name: "public_limits",
  async requestFilter(_conf, req, res) {
    switch (req.headers.get("x-case")) {
      case "headers":
        for (let i = 0; i < 70_000; i++) req.headers.set(`h${i}`, "v");
        return;
      case "values":
        for (let i = 0; i < 70_000; i++) req.headers.append("x-many", "v");
        return;
      case "body":
        res.body = new ThrowingBody(4);
        return;
      case "vars":
        for (let i = 0; i < 50_000; i++) await req.var(`arg_q${i}`);
        return;
      case "longVar":
        await req.var("x".repeat(5000));
        return;
      case "proxyError":
        // Even asking what kind of error this is throws.
        throw new Proxy(new Error("hidden"), {
          getPrototypeOf() {
            throw new Error("a trap");
          },
        });
      default:
        res.body = "alive";
    }
  },
});
