/**
 * The runner's command line under another file name, for `scripts/soak.ts`: on a shared machine
 * other sessions clean up with `pkill -f "main.ts run"`, which would stop a soak's runner too.
 * Sandboxes are still started from main.ts, as always.
 *
 * @module
 */
import { main } from "../runner/ops/cli.ts";

Deno.exit(await main(Deno.args));
