/**
 * A well-behaved plugin whose parseConf takes a while (it awaits, as one that fetched a key
 * would): after its sandbox restarts, the calls that waited must not overtake the replayed conf.
 */
import { definePlugin } from "@apisix/deno-plugin-runner";

export default definePlugin<{ answer: string }>({
  name: "slow_conf",
  async parseConf(raw) {
    await new Promise((resolve) => setTimeout(resolve, 150));
    return JSON.parse(raw);
  },
  requestFilter(conf, _req, res) {
    res.body = conf.answer;
  },
});
