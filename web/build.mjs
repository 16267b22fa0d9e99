// Copies the viewer library from node_modules into girder/web/dist, where
// go:embed picks it up. Run after `npm ci` (the Makefile's web target).
import { cpSync, mkdirSync, rmSync, existsSync, writeFileSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "node_modules", "openseadragon");
const src = join(pkg, "build", "openseadragon");
const out = join(here, "..", "girder", "web", "dist", "openseadragon");

if (!existsSync(join(src, "openseadragon.min.js"))) {
  console.error("openseadragon is not installed: run `npm ci` in web/ first");
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "images"), { recursive: true });
cpSync(join(src, "images"), join(out, "images"), { recursive: true });
// The license travels with the redistributed files (BSD-3-Clause).
cpSync(join(pkg, "LICENSE.txt"), join(out, "LICENSE.txt"));
const version = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")).version;
writeFileSync(join(out, "VERSION"), version + "\n");

// Mirador's self-contained bundle, for the IIIF browser test (it opens the
// server's manifests and collections in a real IIIF client).
const mirPkg = join(here, "node_modules", "mirador");
const mirOut = join(here, "..", "girder", "web", "dist", "mirador");
if (!existsSync(join(mirPkg, "dist", "mirador.min.js"))) {
  console.error("mirador is not installed: run `npm ci` in web/ first");
  process.exit(1);
}
rmSync(mirOut, { recursive: true, force: true });
mkdirSync(mirOut, { recursive: true });
// The license travels with the redistributed file (Apache-2.0).
cpSync(join(mirPkg, "LICENSE"), join(mirOut, "LICENSE"));
const mirVersion = JSON.parse(readFileSync(join(mirPkg, "package.json"), "utf8")).version;
writeFileSync(join(mirOut, "VERSION"), mirVersion + "\n");
cpSync(join(mirPkg, "dist", "mirador.min.js"), join(mirOut, "mirador.min.js"));
console.log(`mirador ${mirVersion} copied to girder/web/dist/mirador`);

// The script is copied last: make uses it as the target, so its time
// marks a complete copy.
cpSync(join(src, "openseadragon.min.js"), join(out, "openseadragon.min.js"));
console.log(`openseadragon ${version} copied to girder/web/dist/openseadragon`);
