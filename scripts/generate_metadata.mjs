// Write each Windmill script's <name>.script.yaml as `wmill generate-metadata` (CLI 1.819) does,
// with Windmill's own packages: its Python parser, its schema rules (windmill-utils-internal's
// argSigToJsonSchemaType) and the CLI's YAML settings. Needs `npm ci --prefix tests/windmill`.
//
//   node scripts/generate_metadata.mjs            write or update the files
//   node scripts/generate_metadata.mjs --check    change nothing; exit 1 if a file is stale
//                                                 (exit 2: the packages are not installed)
//   node scripts/generate_metadata.mjs --synced PATH...   print {path: deployed?} as JSON
//
// Three choices of ours: the lock is never resolved here (a new file gets `lock: ''`); the
// schema gets an `order` in main() order, so that the form shows the signature's order (a
// hand-made order is kept; gone parameters leave it, new ones are appended); and each field's
// description is its line in main()'s docstring ("Args:"), so the form says what the code
// documents, written once. A library module (f/marketing/lib) is summarised from its own
// docstring, so that the UI says it is imported, not run.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(join(root, "tests", "windmill", "package.json"));
// Exit 2, in one line, when Windmill's packages are not installed: stale metadata is exit 1.
const resolve = (name) => {
  try {
    return require.resolve(name);
  } catch {
    console.error("generate_metadata: Windmill's packages are not installed in tests/windmill: "
      + "run `npm ci --prefix tests/windmill`");
    process.exit(2);
  }
};
const load = async (name) => import(pathToFileURL(resolve(name)).href);
const YAML = (await load("yaml")).default;
const { minimatch } = await load("minimatch");
const { argSigToJsonSchemaType } = await load("windmill-utils-internal");
const parserEntry = resolve("windmill-parser-wasm-py");
const { initSync, parse_python } = await import(pathToFileURL(parserEntry).href);
initSync({ module: readFileSync(join(dirname(parserEntry), "windmill_parser_wasm_bg.wasm")) });

// The CLI's YAML settings (cli/src/commands/sync/sync.ts yamlOptions, prioritizeName).
const FIRST = { version: "aaa", id: "aa", type: "ab", summary: "ad", name: "ae",
  display_name: "af", description: "ag", value: "ah", content: "ai", modules: "aj",
  failure_module: "ak", input_transforms: "al", lock: "az", locks: "azz" };
const rank = (key) => FIRST[String(key)] ?? String(key);
const yamlOptions = { sortMapEntries: (a, b) => rank(a.key).localeCompare(rank(b.key)),
  aliasDuplicateObjects: false, singleQuote: true };

const config = YAML.parse(readFileSync(join(root, "wmill.yaml"), "utf8")) ?? {};
const synced = (path) => (config.includes ?? ["f/**"]).some((p) => minimatch(path, p))
  && !(config.excludes ?? []).some((p) => minimatch(path, p));

function pythonFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === "__pycache__" ? [] : pythonFiles(join(dir, e.name)))
      : e.name.endsWith(".py") ? [join(dir, e.name)] : []);
}

// The CLI's inferSchema (cli/src/utils/metadata.ts), for Python.
function inferSchema(parsed, schema = {}) {
  const old = JSON.parse(JSON.stringify(schema.properties ?? {}));
  schema.required = [];
  schema.properties = {};
  for (const arg of parsed.args) {
    const prop = Object.fromEntries(Object.entries(old[arg.name] ?? { description: "", type: "" })
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    argSigToJsonSchemaType(arg.typ, prop);
    if (arg.otyp?.includes("[") && arg.otyp.includes("|")) prop.originalType = arg.otyp;
    prop.default = arg.default;
    schema.properties[arg.name] = prop;
    if (!arg.has_default && !schema.required.includes(arg.name)) schema.required.push(arg.name);
  }
  return schema;
}

// main()'s docstring, Google style: `name: text` under "Args:", continued on deeper lines.
function argDescriptions(code) {
  const doc = code.match(/^def main\([\s\S]*?\)(?:\s*->\s*[^:\n]+)?:\s*\n\s*"""([\s\S]*?)"""/m);
  const lines = doc ? doc[1].split("\n") : [];
  const start = lines.findIndex((line) => line.trim() === "Args:");
  const found = {};
  let name = null;
  let indent = null;
  for (const line of start < 0 ? [] : lines.slice(start + 1)) {
    const lead = line.length - line.trimStart().length;
    const arg = line.trim().match(/^(\w+)(?: \([^)]*\))?: (.*)$/);
    indent ??= lead;
    if (lead === indent && arg) [name, found[arg[1]]] = [arg[1], arg[2]];
    else if (lead > indent && name && line.trim()) found[name] += ` ${line.trim()}`;
    else break;
  }
  return found;
}

function metadata(path, code, existing) {
  const parsed = JSON.parse(parse_python(code));
  if (parsed.type === "Invalid") throw new Error(`${path}: Windmill's parser cannot read it`);
  const meta = existing ?? { summary: "", description: "", lock: "", kind: "script",
    schema: { $schema: "https://json-schema.org/draft/2020-12/schema", type: "object",
      properties: {}, required: [] } };
  if (path.split("/").includes("lib")) {
    const first = (code.match(/^"""([\s\S]*?)(?:\n\n|""")/) ?? ["", ""])[1].replace(/\s+/g, " ");
    meta.summary = `Library: ${first.trim().split(/[.:](?:\s|$)/)[0]}`;
    meta.description = "A module the f/marketing scripts import; it has no main and is not run.";
  }
  const schema = inferSchema(parsed, meta.schema);
  for (const [name, text] of Object.entries(argDescriptions(code))) {
    if (schema.properties[name]) schema.properties[name].description = text;
  }
  const names = parsed.args.map((a) => a.name);
  const kept = Array.isArray(schema.order) ? schema.order.filter((n) => names.includes(n)) : [];
  if (names.length) schema.order = [...kept, ...names.filter((n) => !kept.includes(n))];
  else if (Array.isArray(schema.order)) schema.order = [];
  meta.schema = schema;
  if (parsed.has_preprocessor) meta.has_preprocessor = true;
  else delete meta.has_preprocessor;
  delete meta.auto_kind;
  delete meta.no_main_func;
  meta.lock ??= "";
  return YAML.stringify(meta, yamlOptions);
}

const args = process.argv.slice(2);
if (args[0] === "--synced") {
  console.log(JSON.stringify(Object.fromEntries(args.slice(1).map((p) => [p, synced(p)]))));
  process.exit(0);
}
const stale = [];
const scripts = pythonFiles(join(root, "f")).map((p) => relative(root, p)).filter(synced).sort();
for (const path of scripts) {
  if (path.split("/").pop().slice(0, -3).includes(".")) {
    throw new Error(`${path}: Windmill cuts a script path at the first dot; rename the file`);
  }
  const target = join(root, path.replace(/\.py$/, ".script.yaml"));
  const current = existsSync(target) ? readFileSync(target, "utf8") : null;
  const text = metadata(path, readFileSync(join(root, path), "utf8"),
    current === null ? null : YAML.parse(current));
  if (text === current) continue;
  stale.push(relative(root, target));
  if (!args.includes("--check")) writeFileSync(target, text);
}
if (args.includes("--check") && stale.length) {
  console.log(`stale Windmill metadata (run node scripts/generate_metadata.mjs):\n  ${stale.join("\n  ")}`);
  process.exit(1);
}
console.log(stale.length && !args.includes("--check")
  ? `wrote ${stale.join(", ")}` : `${scripts.length} metadata file(s) up to date`);
