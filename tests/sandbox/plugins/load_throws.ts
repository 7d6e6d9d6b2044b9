/** Fault: the module throws while it loads, so the plugin never starts. */
throw new Error("load_throws refuses to load");
