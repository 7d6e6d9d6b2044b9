/**
 * The runner's private directory for sandbox channels: one per runner process, mode 0700, named
 * after the runner's pid. A runner killed with SIGKILL cannot remove its own, so every runner,
 * when it makes its directory, removes those of runners that are gone.
 *
 * Whether a runner is gone: each directory holds `alive.sock`, on which its runner listens for as
 * long as it runs. Connecting to it is refused once that process has ended, whoever it was; a
 * pid cannot tell (it may be reused, and Deno reads no `/proc` without `--allow-all`).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { log } from "../telemetry/log.ts";

const PREFIX = "a6-deno-runner-";
const ALIVE = "alive.sock";

let privateDir: Promise<{ dir: string; alive: Deno.Listener }> | null = null;

/** The runner's private directory for sandbox channels, made (and the dead ones swept) once. */
export async function channelDirectory(): Promise<string> {
  privateDir ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: `${PREFIX}${Deno.pid}-` });
    const alive = Deno.listen({ transport: "unix", path: join(dir, ALIVE) });
    // Only sweepers connect, to see that it listens; it must not keep the runner from exiting.
    alive.unref();
    (async () => {
      try {
        for await (const conn of alive) conn.close();
      } catch {
        // Closed at shutdown.
      }
    })();
    await sweepDeadChannelDirectories(dirname(dir));
    return { dir, alive };
  })();
  return (await privateDir).dir;
}

/** Removes the private directory (at shutdown). */
export async function removeChannelDirectory(): Promise<void> {
  if (!privateDir) return;
  const { dir, alive } = await privateDir;
  privateDir = null;
  alive.close();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/**
 * Removes the channel directories in `parent` whose runner has ended (see the module
 * documentation). Directories without `alive.sock` (made by older versions, or by a runner
 * killed in the instant between the two steps) are left alone, as is anything not a directory.
 * Resolves to how many it removed; never throws: a sweep is housekeeping.
 */
export async function sweepDeadChannelDirectories(parent: string): Promise<number> {
  let removed = 0;
  try {
    for await (const entry of Deno.readDir(parent)) {
      // A symlink named like ours (another user's trap in /tmp) is not a directory here.
      if (!entry.isDirectory || !entry.name.startsWith(PREFIX)) continue;
      const path = join(parent, entry.name);
      if (!await refused(join(path, ALIVE))) continue;
      try {
        await Deno.remove(path, { recursive: true });
        removed++;
      } catch {
        // Another runner swept it first, or it is not ours to remove.
      }
    }
  } catch (error) {
    log.runner.debug("could not sweep old channel directories in {parent}: {error}", {
      parent,
      error,
    });
  }
  if (removed) {
    log.runner.info("removed {removed} channel directories of runners that are gone", {
      removed,
    });
  }
  return removed;
}

/** Whether a connection to `socket` is refused: it exists, and nothing listens on it. */
async function refused(socket: string): Promise<boolean> {
  try {
    (await Deno.connect({ transport: "unix", path: socket })).close();
    return false;
  } catch (error) {
    return error instanceof Deno.errors.ConnectionRefused;
  }
}
