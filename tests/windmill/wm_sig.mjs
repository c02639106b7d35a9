// Print Windmill's own reading of Python scripts: {"<path>": <parse_python result>, ...}.
// Usage: node tests/windmill/wm_sig.mjs [--main-override NAME] FILE.py...
// Uses windmill-parser-wasm-py, the parser `wmill generate-metadata` uses (npm ci --prefix tests/windmill).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const entry = createRequire(import.meta.url).resolve("windmill-parser-wasm-py");
const { initSync, parse_python } = await import(entry);
initSync({ module: readFileSync(join(dirname(entry), "windmill_parser_wasm_bg.wasm")) });

const argv = process.argv.slice(2);
let mainOverride;
const i = argv.indexOf("--main-override");
if (i !== -1) {
  mainOverride = argv[i + 1];
  argv.splice(i, 2);
}
const out = {};
for (const path of argv) {
  out[path] = JSON.parse(parse_python(readFileSync(path, "utf8"), mainOverride));
}
process.stdout.write(JSON.stringify(out, null, 2) + "\n");
