// Builds the viewer page the service serves (issue 49): the modules of viewer/src/ combined and minified
// by esbuild into viewer/, each file named by its version (a hash of its bytes) where another names it.
//
//   node viewer/src/build.mjs [--out DIR] [--esbuild DIR]    (scripts/build-viewer runs it)
//
// Writes, into viewer/ (or DIR):
//   viewer.min.js    src/viewer.js with every module it imports statically (the page's one module)
//   watching.min.js  src/watching.js, the heartbeat, imported by viewer.js once the page plays
//   p2p.min.js       src/p2p.js, viewer-to-viewer sharing with P2P Media Loader (viewer/*.es.min.js,
//                    vendored), imported by viewer.js only when config.json has "p2p"
//   viewer.min.css   src/viewer.css, minified
//   index.html       src/index.html, naming hls.min.js, viewer.min.css and viewer.min.js `name?v=<version>`
// viewer.min.js names the two it imports dynamically the same way (its `import('./p2p.js')` becomes
// `import("./p2p.min.js?v=...")`), so a change in either changes viewer.min.js's version too, and the
// page's. A version is the first 16 hex digits of the SHA-256 of the file's bytes: what the service
// answers as its ETag (broadcaster/http/viewer_files.py). The built files' names differ from their
// sources' (.min), so a source moved here is still known to git as the file it was.
//
// The same sources and the same esbuild (package-lock.json) give the same bytes:
// tests/test_viewer_build.py builds again and compares them with the committed files.

import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = path.dirname(fileURLToPath(import.meta.url));
const VIEWER = path.dirname(SRC); // the served folder: hls.min.js and the vendored modules live there
// Source -> built file. The two viewer.js imports dynamically are built first: it names their versions.
const DYNAMIC = { 'watching.js': 'watching.min.js', 'p2p.js': 'p2p.min.js' };
const REFERENCED = ['hls.min.js', 'viewer.min.css', 'viewer.min.js']; // what index.html names (hls.min.js: vendored)

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 && process.argv[at + 1] ? path.resolve(process.argv[at + 1]) : fallback;
}

const out = option('--out', VIEWER);
const esbuildDir = option('--esbuild', null);
const esbuild = esbuildDir ? createRequire(import.meta.url)(esbuildDir) : await import('esbuild');

const version = (bytes) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

const common = {
  absWorkingDir: SRC,
  bundle: true,
  minify: true,
  write: false,
  logLevel: 'warning',
  legalComments: 'eof', // P2P Media Loader's and hls.js's notices stay with their code
};

/** One entry, bundled, as bytes (esbuild's single output file). */
async function bundle(entry, built, options = {}) {
  const result = await esbuild.build({ ...common, entryPoints: [path.join(SRC, entry)], format: 'esm',
    outfile: path.join(out, built), ...options });
  if (result.outputFiles.length !== 1) throw new Error(`${entry}: expected one output file`);
  return result.outputFiles[0].contents;
}

/** viewer.js's dynamic imports of the files built before it, at their versioned URLs (left to the browser). */
function versionedImports(versions) {
  return {
    name: 'versioned-imports',
    setup(build) {
      build.onResolve({ filter: /^\.\/[\w.-]+\.js$/ }, (args) => {
        const file = args.path.slice(2);
        if (args.kind !== 'dynamic-import' || !(file in DYNAMIC)) return undefined;
        return { path: `./${DYNAMIC[file]}?v=${versions[DYNAMIC[file]]}`, external: true };
      });
    },
  };
}

const files = {};
for (const [entry, built] of Object.entries(DYNAMIC)) files[built] = await bundle(entry, built);
const dynamicVersions = Object.fromEntries(Object.values(DYNAMIC).map((built) => [built, version(files[built])]));
files['viewer.min.js'] = await bundle('viewer.js', 'viewer.min.js', { plugins: [versionedImports(dynamicVersions)] });
for (const [entry, built] of Object.entries(DYNAMIC)) {
  if (!Buffer.from(files['viewer.min.js']).includes(`./${built}?v=${dynamicVersions[built]}`)) {
    throw new Error(`viewer.js does not import ./${entry} (as import('./${entry}')): the build names it by version`);
  }
}
files['viewer.min.css'] = await bundle('viewer.css', 'viewer.min.css', { format: undefined });

const versions = {};
for (const name of REFERENCED) {
  versions[name] = version(files[name] || await readFile(path.join(VIEWER, name)));
}
let page = await readFile(path.join(SRC, 'index.html'), 'utf8');
for (const name of REFERENCED) {
  const plain = new RegExp(`(src|href)="${name.replace(/\./g, '\\.')}"`, 'g');
  const found = page.match(plain);
  if (!found || found.length !== 1) throw new Error(`index.html must name ${name} once, as src="${name}" or href="${name}"`);
  page = page.replace(plain, `$1="${name}?v=${versions[name]}"`);
}
files['index.html'] = Buffer.from(page);

await mkdir(out, { recursive: true });
for (const [name, bytes] of Object.entries(files)) {
  await writeFile(path.join(out, name), bytes);
  console.log(`${name.padEnd(15)} ${String(bytes.length).padStart(7)} B  v=${version(bytes)}`);
}
