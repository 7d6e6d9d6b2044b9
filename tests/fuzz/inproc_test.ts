/**
 * The bounded CI run of the in-process fuzz targets (fixed seed; `deno task fuzz` runs them for
 * longer with fresh seeds). A failure message carries fast-check's seed and path to replay it.
 */
import fc from "fast-check";
import { CI_SETTINGS } from "./messages.ts";
import { INPROC_TARGETS } from "./inproc_targets.ts";

/** The seed of the CI run. */
const CI_SEED = 20_261_125;

for (const target of INPROC_TARGETS) {
  Deno.test(`fuzz: ${target.name}`, async () => {
    await fc.assert(target.property(CI_SETTINGS, undefined), {
      seed: CI_SEED,
      numRuns: target.ciRuns,
    });
  });
}
