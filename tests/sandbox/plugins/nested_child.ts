// The module nested_worker.ts tries to start. Were it ever started, it would open the inspector
// of its sandbox process and leave a trace the suite checks for.
Deno.kill(Deno.pid, "SIGUSR1");
