// Run the official CMS validator (@cmsgov/hpt-validator) on one plain (uncompressed) file.
// usage: node hpt_validator_run.mjs FILE VERSION csv|json [MAX_ERRORS]
// Prints one JSON object: {valid, errors:[{path,field,message,class}], alerts:[...], seconds, peak_rss}.
// The package is looked up in $HPT_NODE_DIR/node_modules (default: benchmarks/.work/node).
import { createReadStream } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.HPT_NODE_DIR || join(here, ".work", "node");
const lib = await import(
  pathToFileURL(join(nodeDir, "node_modules", "@cmsgov", "hpt-validator", "lib", "index.js")).href
);
const [file, version, kind, maxErr] = process.argv.slice(2);
const maxErrors = Number(maxErr || 0);
let peak = 0;
const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 50);
const t0 = process.hrtime.bigint();
const stream = createReadStream(file, { encoding: "utf8", highWaterMark: 1 << 20 });
let result;
try {
  result = kind === "json"
    ? await lib.validateJson(stream, version, { maxErrors })
    : await lib.validateCsv(stream, version, { maxErrors });
} catch (e) {
  clearInterval(timer);
  process.stdout.write(JSON.stringify({ crashed: String(e && e.message || e) }) + "\n");
  process.exit(0);
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
clearInterval(timer);
peak = Math.max(peak, process.memoryUsage().rss);
const conv = (e) => ({ path: e.path, field: e.field, message: e.message, class: e.constructor?.name });
process.stdout.write(JSON.stringify({
  valid: result.valid,
  errors: result.errors.map(conv),
  alerts: result.alerts.map(conv),
  seconds,
  peak_rss: peak,
}) + "\n");
// the parser may keep the stream open after an early resolve
process.exit(0);
