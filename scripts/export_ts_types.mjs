// Write f/marketing/emitter/ts/user_events.ts, the TypeScript types of the events, from the JSON
// Schema that scripts/export_schemas.py writes from the contract: one source for every language.
// Usage: node scripts/export_ts_types.mjs [--check]   (needs `npm ci --prefix tests/typescript`)
// --check exits 1 when the file is stale, writing nothing.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(join(root, "tests", "typescript", "package.json"));
let compile;
try {
  ({ compile } = require("json-schema-to-typescript"));
} catch {
  console.error("export_ts_types: run `npm ci --prefix tests/typescript` first");
  process.exit(2);
}
const schemaPath = join(root, "f", "marketing", "user_events.schema.json");
const target = join(root, "f", "marketing", "emitter", "ts", "user_events.ts");
const banner =
  "// The event bodies f/marketing/handle_user_event accepts. Generated from\n" +
  "// f/marketing/user_events.schema.json by scripts/export_ts_types.mjs: do not edit.";
const text = await compile(JSON.parse(readFileSync(schemaPath, "utf8")), "UserLifecycleEvent", {
  bannerComment: banner,
  additionalProperties: false,
});
if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(target, "utf8");
  } catch {}
  if (current !== text) {
    console.error("export_ts_types: f/marketing/emitter/ts/user_events.ts is stale: run node scripts/export_ts_types.mjs");
    process.exit(1);
  }
} else {
  writeFileSync(target, text);
}
