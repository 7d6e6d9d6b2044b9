/**
 * File watching for reloads: the configuration file (in `run` and `dev`) and, in `dev`, the
 * plugins' source directories. Events are collected until the files have been quiet for a
 * moment, so that an editor's save (often several events) triggers one reload.
 *
 * @module
 */
import { basename, dirname, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { RunnerConfig } from "../config/config.ts";
import { log } from "../telemetry/log.ts";

/** A running watcher. */
export interface Watcher {
  /** Stops watching. */
  close(): void;
}

/** Files that never trigger a plugin reload: tests, editor backups and swap files. */
export function ignoredFile(path: string): boolean {
  const name = basename(path);
  return /(_test|\.test)\.[cm]?[jt]sx?$/.test(name) || name.endsWith("~") ||
    name.startsWith(".#") || /\.sw[a-p]$/.test(name) || name === "4913" ||
    path.split(sep).some((part) => part === "node_modules" || part === ".git");
}

/**
 * Watches `paths` (directories; `recursive` for all of them) and calls `onChange` with the
 * changed files once no event has arrived for `quietMs`.
 */
export function watchPaths(
  paths: readonly string[],
  recursive: boolean,
  onChange: (changed: string[]) => void,
  quietMs = 150,
): Watcher {
  let watcher: Deno.FsWatcher;
  try {
    watcher = Deno.watchFs([...paths], { recursive });
  } catch (error) {
    log.runner.warn("cannot watch {paths}: {reason}; reload with SIGHUP instead", {
      paths: paths.join(", "),
      reason: (error as Error).message,
    });
    return { close() {} };
  }
  const changed = new Set<string>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  (async () => {
    try {
      for await (const event of watcher) {
        if (event.kind === "access" || event.kind === "other") continue;
        for (const path of event.paths) changed.add(path);
        clearTimeout(timer);
        timer = setTimeout(() => {
          const batch = [...changed];
          changed.clear();
          onChange(batch);
        }, quietMs);
      }
    } catch {
      // Closed.
    }
  })();
  return {
    close() {
      clearTimeout(timer);
      try {
        watcher.close();
      } catch {
        // Already closed.
      }
    },
  };
}

/** The local source file of each plugin (`file:` modules only), by plugin name. */
export function pluginFiles(config: RunnerConfig): Map<string, string> {
  const files = new Map<string, string>();
  for (const settings of config.plugins.values()) {
    if (settings.module.startsWith("file:")) {
      files.set(settings.name, fileURLToPath(settings.module));
    }
  }
  return files;
}

/** Directories to watch for plugin changes. */
export function pluginDirectories(config: RunnerConfig): string[] {
  return [...new Set([...pluginFiles(config).values()].map((file) => dirname(file)))].sort();
}

/**
 * The plugins a set of changed files affects: a plugin's own module file affects only that
 * plugin; any other file in a plugin's directory (a helper it may import) affects every plugin
 * in that directory or below it.
 */
export function affectedPlugins(config: RunnerConfig, changed: readonly string[]): Set<string> {
  const files = pluginFiles(config);
  const own = new Map([...files].map(([name, file]) => [file, name]));
  const affected = new Set<string>();
  for (const raw of changed) {
    const path = resolve(raw);
    if (ignoredFile(path)) continue;
    const owner = own.get(path);
    if (owner) {
      affected.add(owner);
      continue;
    }
    for (const [name, file] of files) {
      if (path.startsWith(dirname(file) + sep)) affected.add(name);
    }
  }
  return affected;
}
