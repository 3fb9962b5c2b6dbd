// Copies the pinned front-end libraries from node_modules into static/vendor/,
// so the app runs fully offline. Run by `make setup` (npm ci && npm run build).
import { copyFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "static", "vendor");
mkdirSync(vendor, { recursive: true });
const files = [["konva/konva.min.js", "konva.min.js"], ["konva/LICENSE", "konva.LICENSE.txt"]];
for (const [src, dst] of files) {
  const from = join(here, "node_modules", src);
  if (!existsSync(from)) {
    console.error(`clickmask web build: error: ${from} is missing: run 'npm ci' in ${here} first`);
    process.exit(1);
  }
  copyFileSync(from, join(vendor, dst));
}
console.log(`clickmask web build: wrote ${files.length} files to ${vendor}`);
