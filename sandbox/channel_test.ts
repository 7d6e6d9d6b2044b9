import { deepEqual, equal } from "node:assert/strict";
import { ChannelReader, ChannelWriter } from "./channel.ts";

Deno.test("channel frames of every size arrive intact and in order over a real socket", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/c.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const accepted = listener.accept();
  const client = await Deno.connect({ transport: "unix", path });
  const server = await accepted;
  const writer = new ChannelWriter(client);
  const sent: Uint8Array[] = [];
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 3000; i++) {
    const size = random() < 0.01 ? Math.floor(random() * 600_000) : Math.floor(random() * 5000);
    const batch = new Uint8Array(size);
    for (let j = 0; j < size; j += 97) batch[j] = (i + j) & 0xff;
    sent.push(batch);
    writer.send(i % 7, batch);
    if (i % 50 === 0) await new Promise((r) => setTimeout(r, 0));
  }
  const reader = new ChannelReader(server);
  for (let i = 0; i < sent.length; i++) {
    const frame = await reader.next();
    equal(frame!.slot, i % 7);
    deepEqual(frame!.batch, sent[i]);
  }
  client.close();
  equal(await reader.next(), null);
  server.close();
  listener.close();
  await Deno.remove(dir, { recursive: true });
});
