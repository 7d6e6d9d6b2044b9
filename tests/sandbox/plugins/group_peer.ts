/** A well-behaved plugin sharing a process with `public_limits` (`isolation: "shared"`). */
import { definePlugin } from "@apisix/deno-plugin-runner";

export default definePlugin({
  name: "group_peer",
  requestFilter(_conf, _req, res) {
    res.body = "peer ok";
  },
});
