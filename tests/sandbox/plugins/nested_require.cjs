// nested_worker.ts loads this CommonJS module: require() must meet the same block as import.
const { Worker } = require("worker_threads");
new Worker("process.kill(process.pid, 'SIGUSR1')", { eval: true });
module.exports = "started";
