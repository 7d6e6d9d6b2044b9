/**
 * All plugins the runner knows, grouped into the sandboxes that run them.
 *
 * @module
 */
import type { PluginSettings, RunnerConfig } from "./config.ts";
import { inlineCarrier } from "./inline_carrier.ts";
import type { PluginHost } from "./plugin_host.ts";
import { processCarrier, removeChannelDirectory } from "./process_carrier.ts";
import { Supervisor } from "./supervisor.ts";

/** Plugins by name and the supervisors of their sandboxes. */
export class PluginRegistry {
  readonly supervisors: Supervisor[] = [];
  #hosts = new Map<string, PluginHost>();

  constructor(config: RunnerConfig) {
    const groups = new Map<string, PluginSettings[]>();
    for (const settings of config.plugins.values()) {
      const members = groups.get(settings.sandbox) ?? [];
      members.push(settings);
      groups.set(settings.sandbox, members);
    }
    for (const [key, members] of groups) {
      const factory = members[0]!.isolation === "inline" ? inlineCarrier : processCarrier;
      const supervisor = new Supervisor(key, members, factory);
      this.supervisors.push(supervisor);
      for (const host of supervisor.hosts) this.#hosts.set(host.settings.name, host);
    }
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
    return this.supervisors.find((s) => s.hosts.includes(host));
  }

  /** Stops every sandbox. */
  async close(): Promise<void> {
    for (const supervisor of this.supervisors) supervisor.close();
    await removeChannelDirectory();
  }
}
