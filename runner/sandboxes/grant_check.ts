/**
 * Keeps symbolic links from widening what a plugin may read and write. Deno checks a path as
 * written, not where its links lead, so a link shipped in a plugin's own files (`data -> /`)
 * would read anything the runner can read. Before every sandbox start this walks each tree a
 * plugin may read (its module directory, its `read` grants) and write (its `write` grants),
 * follows every link in them, and refuses the start when one leads outside the real paths of
 * the trees of its kind, or when a file in a write grant has a name (a hard link) outside the
 * write grants. Links that stay inside (a package manager's `node_modules/.deno/…`) are fine.
 * A grant that is itself a link is the operator's choice: its real path is allowed too.
 * See docs/sandbox.md ("Links") for why this mechanism, and what it cannot see.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { ownDirectory, type PluginSettings } from "../config/config.ts";
import { StartRefused } from "./start_refused.ts";

/** The trees a plugin (or the sandbox's own code) may reach, as the configuration names them. */
export interface GrantRoots {
  /** Files and directories it may read. */
  read: readonly string[];
  /** Files and directories it may write. */
  write: readonly string[];
}

/** The paths to give Deno: each root as written and its real path, without duplicates. */
export interface GrantPaths {
  /** For `--allow-read` and the worker's `read`. */
  read: string[];
  /** For `--allow-write` and the worker's `write`. */
  write: string[];
}

/** Why a sandbox must not start: a link (or a tree too large to verify) in what it may reach. */
export class GrantRefused extends StartRefused {
  override name = "GrantRefused";
}

/** Entries (files, directories, links) one check visits at most before it refuses. */
export const MAX_ENTRIES = 100_000;
/** How many links a path may pass through before it counts as a loop (Linux's limit). */
const MAX_HOPS = 40;
/** Directories listed at once (the reads run on Deno's blocking thread pool). */
const PARALLEL_LISTINGS = 8;
/** Files in one directory of a write grant examined at once (for their count of names). */
const PARALLEL_STATS = 32;
/**
 * Trees never walked: the kernel makes their entries (no user can add a link there), they are
 * full of links into themselves, and Deno guards link targets there itself. `/dev` is walked:
 * `/dev/shm` is writable by everyone.
 */
const KERNEL_TREES = ["/proc", "/sys"];
/** Longest path quoted in a refusal (paths come from the plugin's files: bounded, escaped). */
const MAX_QUOTED = 300;

/** What plugin `settings` may read and write, as configured (its module directory included). */
export function grantRoots(settings: PluginSettings): GrantRoots {
  const own = ownDirectory(settings);
  return {
    read: own ? [own, ...settings.permissions.read] : [...settings.permissions.read],
    write: [...settings.permissions.write],
  };
}

/** Where a path leads once every link in it is followed. */
export interface Destination {
  /** The real path (a part that does not exist yet is kept as written). */
  path: string;
  /** Whether following it passed more than 40 links (a loop). */
  loops: boolean;
}

/**
 * Where `path` (absolute) leads when the kernel follows every link in it. A path that does
 * not exist (a dangling link) is followed as far as it exists, and the rest taken as written:
 * that is where a file created later would be read or written.
 */
export async function whereItLeads(path: string): Promise<Destination> {
  try {
    return { path: await Deno.realPath(path), loops: false };
  } catch {
    // Dangling, a loop, or not searchable: follow it one part at a time.
  }
  const absolute = path.startsWith("/") ? path : join(Deno.cwd(), path);
  const pending = absolute.split("/").reverse();
  let current = "/";
  let missing = false;
  let hops = 0;
  while (pending.length) {
    const part = pending.pop()!;
    if (part === "" || part === ".") continue;
    // `current` holds no link, so its parent is the physical one, as the kernel's `..` is.
    if (part === "..") {
      current = dirname(current);
      continue;
    }
    const next = join(current, part);
    if (!missing) {
      const info = await Deno.lstat(next).catch(() => null);
      if (!info) {
        missing = true;
      } else if (info.isSymlink) {
        if (++hops > MAX_HOPS) return { path: next, loops: true };
        const target = await Deno.readLink(next);
        pending.push(...target.split("/").reverse());
        if (target.startsWith("/")) current = "/";
        continue;
      }
    }
    current = next;
  }
  return { path: current, loops: false };
}

/** Whether `path` is `root` or inside it (both real, absolute, normalized). */
function within(path: string, root: string): boolean {
  return root === "/" || path === root || path.startsWith(root + "/");
}

function quote(path: string): string {
  const text = path.length > MAX_QUOTED ? path.slice(0, MAX_QUOTED) + "…" : path;
  return JSON.stringify(text);
}

interface Root {
  written: string;
  real: string;
}

type Kind = "read" | "write";

/** A file with more than one name, and how many of them a walk of the write grants met. */
interface HardLinked {
  path: string;
  root: string;
  nlink: number;
  seen: number;
}

/** What one check shares between its trees. */
interface Walk {
  owner: string;
  left: number;
  max: number;
  /** Files with several names in the write grants, by device and inode. */
  names: Map<string, HardLinked>;
}

async function realRoots(owner: string, kind: Kind, written: readonly string[]): Promise<Root[]> {
  const roots: Root[] = [];
  for (const path of new Set(written)) {
    const leads = await whereItLeads(path);
    if (leads.loops) {
      throw new GrantRefused(`${owner}: its ${kind} grant ${quote(path)} is a link loop`);
    }
    roots.push({ written: path, real: leads.path });
  }
  return roots;
}

/**
 * A root reached through a link is the operator's choice only where the plugin's files cannot
 * hold that link. A root inside another of the plugin's trees (a grant of `cache/` in its own
 * module directory, which its package could ship as `cache -> /`) follows that tree's rule: it
 * must lead inside the roots of its kind that lie in no other.
 */
function checkNested(owner: string, kind: Kind, roots: readonly Root[], all: readonly Root[]) {
  const nested = (root: Root) =>
    all.some((other) =>
      other.written !== root.written &&
      (within(root.written, other.written) || within(root.written, other.real))
    );
  const trusted = roots.filter((root) => !nested(root));
  for (const root of roots) {
    if (root.real === root.written || !nested(root)) continue;
    if (trusted.some((outer) => within(root.real, outer.real))) continue;
    throw new GrantRefused(
      `${owner}: its ${kind} grant ${quote(root.written)} lies inside another of its paths and ` +
        `leads through a link to ${quote(root.real)}, outside what it may ${kind}; its sandbox ` +
        "does not start until the link is removed or its target is granted",
    );
  }
}

/** The roots no other root contains (walking a nested one again would only cost time). */
function outermost(roots: readonly Root[]): Root[] {
  const kept: Root[] = [];
  for (const root of roots) {
    const covered = roots.some((other) =>
      other !== root && within(root.real, other.real) &&
      (other.real !== root.real || roots.indexOf(other) < roots.indexOf(root))
    );
    if (!covered) kept.push(root);
  }
  return kept;
}

async function checkLink(walk: Walk, link: string, allowed: readonly Root[], kind: Kind) {
  const leads = await whereItLeads(link);
  if (leads.loops) {
    throw new GrantRefused(
      `${walk.owner}: ${quote(link)} is a link loop (more than ${MAX_HOPS} links deep); ` +
        "its sandbox does not start until the link is removed",
    );
  }
  if (allowed.some((root) => within(leads.path, root.real))) return;
  const verb = kind === "read" ? "read" : "write";
  throw new GrantRefused(
    `${walk.owner}: ${quote(link)} is a link to ${quote(leads.path)}, outside what it may ` +
      `${verb}; its sandbox does not start until the link is removed or its target is granted`,
  );
}

async function noteFile(walk: Walk, path: string, root: Root): Promise<void> {
  const info = await Deno.lstat(path).catch(() => null);
  if (!info || info.nlink === null || info.nlink < 2) return;
  const key = `${info.dev}:${info.ino}`;
  const known = walk.names.get(key);
  if (known) known.seen++;
  else walk.names.set(key, { path, root: root.written, nlink: info.nlink, seen: 1 });
}

async function checkTree(
  walk: Walk,
  root: Root,
  allowed: readonly Root[],
  kind: Kind,
): Promise<void> {
  if (KERNEL_TREES.some((tree) => within(root.real, tree))) return;
  const info = await Deno.lstat(root.real).catch(() => null);
  if (!info) return; // Not there (yet): nothing in it to follow.
  if (!info.isDirectory) {
    if (kind === "write" && info.isFile) await noteFile(walk, root.real, root);
    return;
  }
  let level = [root.real];
  while (level.length) {
    const next: string[] = [];
    const list = async (dir: string) => {
      const files: string[] = [];
      try {
        for await (const entry of Deno.readDir(dir)) {
          if (--walk.left < 0) {
            throw new GrantRefused(
              `${walk.owner}: its ${kind} grant ${quote(root.written)} holds more than ` +
                `${walk.max} entries, too many to check for links at each start; grant a ` +
                "smaller directory",
            );
          }
          const path = join(dir, entry.name);
          if (entry.isSymlink) await checkLink(walk, path, allowed, kind);
          else if (entry.isDirectory) {
            if (!KERNEL_TREES.includes(path)) next.push(path);
          } else if (entry.isFile && kind === "write") files.push(path);
        }
        for (let i = 0; i < files.length; i += PARALLEL_STATS) {
          await Promise.all(files.slice(i, i + PARALLEL_STATS).map((f) => noteFile(walk, f, root)));
        }
      } catch (error) {
        if (error instanceof GrantRefused) throw error;
        // Unreadable (or gone meanwhile): the sandbox, running as this user, cannot read it
        // either.
      }
    };
    for (let i = 0; i < level.length; i += PARALLEL_LISTINGS) {
      await Promise.all(level.slice(i, i + PARALLEL_LISTINGS).map(list));
    }
    level = next;
  }
}

/** Limits and allowances of one check. */
export interface CheckOptions {
  /** Entries visited at most (default {@linkcode MAX_ENTRIES}). */
  maxEntries?: number;
  /** Real paths that links in the readable trees may lead into too (they are not walked). */
  alsoReadable?: readonly string[];
}

/**
 * Checks the trees `roots` for links that lead out of them (and, in write grants, for files
 * with names outside them), and returns the paths to grant: as written and as real paths.
 * `owner` names them in the refusal (`plugin leak`). Throws {@linkcode GrantRefused}, naming
 * the link and where it leads, when the sandbox must not start.
 */
export async function checkGrants(
  owner: string,
  roots: GrantRoots,
  options: CheckOptions = {},
): Promise<GrantPaths> {
  const max = options.maxEntries ?? MAX_ENTRIES;
  const read = await realRoots(owner, "read", roots.read);
  const write = await realRoots(owner, "write", roots.write);
  checkNested(owner, "read", read, [...read, ...write]);
  checkNested(owner, "write", write, [...read, ...write]);
  const readable = [
    ...read,
    ...(options.alsoReadable ?? []).map((path) => ({ written: path, real: path })),
  ];
  const walk: Walk = { owner, left: max, max, names: new Map() };
  for (
    const [kind, trees, allowed] of [["read", read, readable], ["write", write, write]] as const
  ) {
    // A grant of everything leaves nothing a link could add.
    if (trees.some((root) => root.real === "/")) continue;
    for (const root of outermost(trees)) await checkTree(walk, root, allowed, kind);
  }
  for (const file of walk.names.values()) {
    if (file.seen < file.nlink) {
      throw new GrantRefused(
        `${owner}: ${quote(file.path)} in its write grant ${quote(file.root)} has ` +
          `${file.nlink} names, some outside its write grants (a hard link): writing to it ` +
          "would change that file there; its sandbox does not start until the link is removed",
      );
    }
  }
  const paths = (roots: readonly Root[]) => [
    ...new Set(roots.flatMap((root) => [root.written, root.real])),
  ];
  return { read: paths(read), write: paths(write) };
}
