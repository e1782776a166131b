// Run the official CMS validator (@cmsgov/hpt-validator) the way its command line
// (@cmsgov/hpt-validator-cli 1.10.6, src/index.ts and src/commands.ts) calls it.
//
//   node hpt_validator_run.mjs FILE VERSION csv|json [MAX_ERRORS]
//       VERSION as typed on the official command line ("3.0.0", "v2.2", "2"; mapped by
//       cliVersionChoice). Prints one JSON object:
//       {valid, version, errors:[{path,field,message,class}], alerts:[...], seconds, peak_rss}.
//   node hpt_validator_run.mjs --batch LIST.json OUT.jsonl
//       LIST.json: [{file, declared, kind}]. Each file is checked with the rules the command line
//       picks for the declared major version typed alone ("2" -> 2.2.0, "3" -> 3.0.0; a missing or
//       unknown version is typed as "3"). Writes one JSON line per file to OUT.jsonl, in order, with
//       "file" added (a file, not stdout: node drops pending pipe writes when it exits).
//
// The package is looked up in $HPT_NODE_DIR/node_modules (default: benchmarks/.work/node).
import { appendFileSync, createReadStream, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.HPT_NODE_DIR || join(here, ".work", "node");
const lib = await import(
  pathToFileURL(join(nodeDir, "node_modules", "@cmsgov", "hpt-validator", "lib", "index.js")).href
);
// semver is a dependency of the validator (and of the command line)
const semver = createRequire(join(nodeDir, "package.json"))("semver");

// The command line's adjustVersionChoice: with a dot, that minor version (3.0.x, 2.2.x, 2.1.x);
// without one, the latest minor of the major. null: the command line rejects the value.
function cliVersionChoice(value) {
  const provided = semver.coerce(value);
  if (provided == null) return null;
  if (value.includes(".")) {
    if (semver.satisfies(provided.version, "3.0.*")) return "3.0.0";
    if (semver.satisfies(provided.version, "2.2.*")) return "2.2.0";
    if (semver.satisfies(provided.version, "2.1.*")) return "2.1.0";
    return null;
  }
  if (semver.satisfies(provided.version, "3.*")) return "3.0.0";
  if (semver.satisfies(provided, "2.*")) return "2.2.0";
  return null;
}

// What a user types for a file declaring `declared`: its major version alone; "3" when the file
// declares none the command line accepts.
function versionForDeclared(declared) {
  const major = declared == null ? null : semver.coerce(String(declared))?.major;
  return (major != null && cliVersionChoice(String(major))) || cliVersionChoice("3");
}

// After a result is resolved the streaming parsers may still throw on data that follows (e.g. bytes
// after a JSON document); the command line exits then, the batch carries on.
let current = null;
process.on("uncaughtException", (e) => {
  if (current) current.late.push(String((e && e.message) || e).slice(0, 200));
});

async function runOne(file, version, kind, maxErrors) {
  const conv = (e) => ({ path: e.path, field: e.field, message: e.message, class: e.constructor?.name });
  let peak = 0;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 50);
  const t0 = process.hrtime.bigint();
  const stream = createReadStream(file, { encoding: "utf8", highWaterMark: 1 << 20 });
  current = { late: [] };
  try {
    const result = kind === "json"
      ? await lib.validateJson(stream, version, { maxErrors })
      : await lib.validateCsv(stream, version, { maxErrors });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    peak = Math.max(peak, process.memoryUsage().rss);
    return {
      valid: result.valid, version, errors: result.errors.map(conv), alerts: result.alerts.map(conv),
      seconds, peak_rss: peak,
    };
  } catch (e) {
    return { crashed: String((e && e.message) || e), version };
  } finally {
    clearInterval(timer);
    stream.destroy();
  }
}

const args = process.argv.slice(2);
if (args[0] === "--batch") {
  const list = JSON.parse(readFileSync(args[1], "utf8"));
  writeFileSync(args[2], "");
  for (const { file, declared, kind } of list) {
    const res = await runOne(file, versionForDeclared(declared), kind, 0);
    await new Promise((r) => setImmediate(r)); // let a late parser error surface before the next file
    if (current.late.length) res.late_errors = current.late;
    appendFileSync(args[2], JSON.stringify({ file, declared: declared ?? null, ...res }) + "\n");
  }
} else {
  const [file, typed, kind, maxErr] = args;
  const version = cliVersionChoice(typed);
  if (version == null) {
    process.stdout.write(JSON.stringify({ crashed: `the official command line rejects version ${typed}` }) + "\n");
  } else {
    process.stdout.write(JSON.stringify(await runOne(file, version, kind, Number(maxErr || 0))) + "\n");
  }
}
// the parser may keep a stream open after an early resolve
process.exit(0);
