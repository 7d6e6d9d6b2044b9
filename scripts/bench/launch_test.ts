import { deepEqual, equal } from "node:assert/strict";
import { isRefusal, pluginNames } from "./launch.ts";
import { selectScenarios } from "./scenarios.ts";

Deno.test("a runner is configured for every plugin of the selected scenarios, once each", () => {
  deepEqual(pluginNames(selectScenarios("say,chain3")), ["say", "request-rewrite", "limit-req"]);
});

Deno.test("a refused conf is recognised in this runner's log", () => {
  equal(
    isRefusal(
      'level=warning logger=a6.plugin.limit-req msg="route x: conf rejected (bad_conf): rate: ..."',
    ),
    true,
  );
  equal(isRefusal('level=info msg="listening on unix:/tmp/x.sock"'), false);
});
