/**
 * All plugins the runner knows, grouped into the sandboxes that run them. A reload swaps in a
 * new set of supervisors ({@linkcode PluginRegistry.adopt}); see `reload.ts`.
 *
 * @module
 */
import type { PluginSettings, RunnerConfig } from "../config/config.ts";
import { inlineCarrier } from "./inline_carrier.ts";
import type { PluginHost } from "./plugin_host.ts";
import { removeChannelDirectory } from "./channel_dir.ts";
import { processCarrier } from "./process_carrier.ts";
import { Supervisor } from "./supervisor.ts";

/** The plugins of a configuration by sandbox key, in configuration order. */
export function sandboxGroups(config: RunnerConfig): Map<string, PluginSettings[]> {
  const groups = new Map<string, PluginSettings[]>();
  for (const settings of config.plugins.values()) {
    const members = groups.get(settings.sandbox) ?? [];
    members.push(settings);
    groups.set(settings.sandbox, members);
  }
  return groups;
}

/** A supervisor (not started) for one sandbox group. */
export function createSupervisor(key: string, members: readonly PluginSettings[]): Supervisor {
  const factory = members[0]!.isolation === "inline" ? inlineCarrier : processCarrier;
  return new Supervisor(key, members, factory);
}

/** Plugins by name and the supervisors of their sandboxes. */
export class PluginRegistry {
  #supervisors: Supervisor[] = [];
  #hosts = new Map<string, PluginHost>();

  constructor(config: RunnerConfig) {
    this.adopt(
      [...sandboxGroups(config)].map(([key, members]) => createSupervisor(key, members)),
    );
  }

  /** The supervisors of the current plugins. */
  get supervisors(): readonly Supervisor[] {
    return this.#supervisors;
  }

  /**
   * Makes `supervisors` the current ones (a reload). Their plugins answer every lookup from
   * now on; supervisors left out are the caller's to close.
   */
  adopt(supervisors: Supervisor[]): void {
    const hosts = new Map<string, PluginHost>();
    for (const supervisor of supervisors) {
      for (const host of supervisor.hosts) hosts.set(host.settings.name, host);
    }
    this.#supervisors = supervisors;
    this.#hosts = hosts;
  }

  /** The plugin called `name`, if there is one. */
  host(name: string): PluginHost | undefined {
    return this.#hosts.get(name);
  }

  /** Every plugin. */
  hosts(): IterableIterator<PluginHost> {
    return this.#hosts.values();
  }

  /** The supervisor of the sandbox running `host`. */
  supervisorOf(host: PluginHost): Supervisor | undefined {
    return this.#supervisors.find((s) => s.hosts.includes(host));
  }

  /** Stops every sandbox. */
  async close(): Promise<void> {
    for (const supervisor of this.#supervisors) supervisor.close();
    await removeChannelDirectory();
  }
}
