/**
 * Long fuzz runs: `deno task fuzz -- --minutes N`. Runs every fuzz target of `tests/fuzz`
 * (in-process ones against the frame reader, verifier and decoders; socket ones against a real
 * runner with a witness connection) round-robin with fresh seeds and payloads up to the
 * protocol's 16,777,215 bytes, until the time is up. Prints a line per minute, every failure
 * with its seed and fast-check path (replay with `--seed S --path P --target NAME`), and a JSON
 * summary; exits 1 if anything failed.
 *
 * @module
 */
import fc from "fast-check";
import { parseArgs } from "node:util";
import { type FuzzTarget, INPROC_TARGETS } from "../tests/fuzz/inproc_targets.ts";
import { type FuzzSettings, LONG_SETTINGS } from "../tests/fuzz/messages.ts";
import { SOCKET_TARGETS, SocketContext } from "../tests/fuzz/socket_targets.ts";
import { startRunnerUnderOwnName } from "./start_runner.ts";

const USAGE = `Usage: deno task fuzz [-- options]

  --minutes N        how long to run (default 1)
  --target TEXT      only targets whose name contains TEXT
  --seed S           first seed (default: random); batch i uses S + i
  --path P           with --seed and one --target: replay one failure
  --max-payload N    largest generated payload (default 16777215)
  --batch N          runs per batch of an in-process target (socket targets: N / 25)`;

interface Tally {
  target: string;
  cases: number;
  batches: number;
  firstSeed: number | null;
  lastSeed: number | null;
  failures: Array<
    { seed: number; path: string | undefined; counterexample: string; error: string }
  >;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    // `deno task fuzz -- --minutes 5` passes the "--" through.
    args: Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args,
    options: {
      minutes: { type: "string", default: "1" },
      target: { type: "string" },
      seed: { type: "string" },
      path: { type: "string" },
      "max-payload": { type: "string", default: String(LONG_SETTINGS.maxPayload) },
      batch: { type: "string", default: "500" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const minutes = Number(values.minutes);
  const batch = Number(values.batch);
  const settings: FuzzSettings = { maxPayload: Number(values["max-payload"]) };
  if (
    !(minutes > 0) || !(batch > 0) ||
    !(settings.maxPayload >= 64 && settings.maxPayload <= 0xff_ffff)
  ) {
    console.error(USAGE);
    return 2;
  }
  const filter = (t: { name: string }) => !values.target || t.name.includes(values.target);
  const inproc = INPROC_TARGETS.filter(filter);
  const socket = SOCKET_TARGETS.filter(filter);
  let seed = values.seed === undefined
    ? Math.floor(Math.random() * 0x7fff_ffff)
    : Number(values.seed);

  const ctx = socket.length
    ? await SocketContext.start((config) => startRunnerUnderOwnName(config))
    : null;
  const targets: Array<{ target: FuzzTarget<SocketContext>; runs: number }> = [
    ...inproc.map((target) => ({
      target: target as unknown as FuzzTarget<SocketContext>,
      runs: batch,
    })),
    ...socket.map((target) => ({ target, runs: Math.max(1, Math.round(batch / 25)) })),
  ];
  const tallies = new Map<string, Tally>(targets.map(({ target }) => [target.name, {
    target: target.name,
    cases: 0,
    batches: 0,
    firstSeed: null,
    lastSeed: null,
    failures: [],
  }]));
  console.log(
    `fuzzing ${targets.length} targets for ${minutes} min, payloads up to ${settings.maxPayload} bytes, first seed ${seed}`,
  );

  const started = performance.now();
  const deadline = started + minutes * 60_000;
  let nextReport = started + 60_000;
  const failed = new Set<string>();
  replay: if (values.path !== undefined) {
    const only = targets[0];
    if (targets.length !== 1 || !only) {
      console.error("--path needs --target naming exactly one target");
      return 2;
    }
    const details = await fc.check(only.target.property(settings, ctx!), {
      seed,
      path: values.path,
      numRuns: 1,
    });
    console.log(details.failed ? fc.defaultReportMessage(details) : "the case passes now");
    break replay;
  }
  while (values.path === undefined && performance.now() < deadline) {
    const live = targets.filter(({ target }) => !failed.has(target.name));
    if (live.length === 0) break;
    for (const { target, runs } of live) {
      if (performance.now() >= deadline) break;
      const tally = tallies.get(target.name)!;
      if (ctx) ctx.measuring = SOCKET_TARGETS.includes(target);
      const details = await fc.check(target.property(settings, ctx!), {
        seed,
        numRuns: runs,
        interruptAfterTimeLimit: Math.max(1000, deadline - performance.now()),
      });
      tally.cases += details.numRuns;
      tally.batches++;
      tally.firstSeed ??= seed;
      tally.lastSeed = seed;
      if (details.failed) {
        failed.add(target.name);
        const failure = {
          seed,
          path: details.counterexamplePath ?? undefined,
          counterexample: fc.stringify(details.counterexample).slice(0, 2000),
          error: String(details.errorInstance).slice(0, 2000),
        };
        tally.failures.push(failure);
        console.log(
          `FAILED ${target.name}\n  seed ${seed} path ${failure.path}\n  ${failure.error}`,
        );
      }
      seed = (seed + 1) % 0x7fff_ffff;
      if (performance.now() >= nextReport) {
        nextReport += 60_000;
        const minute = Math.round((performance.now() - started) / 60_000);
        const cases = [...tallies.values()].map((t) => `${t.cases}`).join(" ");
        console.log(`minute ${minute}: cases per target ${cases}; failures ${failed.size}`);
      }
    }
  }

  let witness = null;
  if (ctx) {
    witness = {
      calls: ctx.witnessCalls,
      failures: ctx.witnessFailures.length,
      maxMs: Math.round(ctx.witnessMaxMs),
    };
    try {
      await ctx.stop();
    } catch (error) {
      console.log(`FAILED the witness or the runner: ${error}`);
      failed.add("witness");
    }
  }
  const summary = {
    tool: "fuzz",
    minutes: Math.round((performance.now() - started) / 600) / 100,
    maxPayload: settings.maxPayload,
    witness,
    targets: [...tallies.values()],
    failed: failed.size,
  };
  console.log(JSON.stringify(summary));
  return failed.size ? 1 : 0;
}

Deno.exit(await main());
