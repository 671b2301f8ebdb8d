// `npm start`, `npm run migrate`, `npm run cli`: run the compiled JavaScript in dist/, building it
// first (`npm run build`, tsc) when it is missing or older than the sources, so that a fresh clone
// still needs only `npm install && npm start`.
//
//   node scripts/start.mjs serve | migrate   → dist/main.js
//   node scripts/start.mjs cli <args…>       → dist/cli.js
//
// The build goes to a temporary folder that replaces dist/ only once complete, so a process
// starting meanwhile never runs half a build, and two builds at once cannot mix their files.
// Build messages go to stderr: the CLI's stdout (a token) stays clean.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = path.join(root, 'dist');
const stamp = path.join(dist, '.built');
const buildInputs = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json'];

/** The newest modification time under `target` (ms), 0 when it does not exist. */
function newest(target) {
  let stats;
  try {
    stats = statSync(target);
  } catch {
    return 0;
  }
  if (!stats.isDirectory()) return stats.mtimeMs;
  let latest = stats.mtimeMs;
  for (const entry of readdirSync(target)) latest = Math.max(latest, newest(path.join(target, entry)));
  return latest;
}

function isStale() {
  if (!existsSync(stamp)) return true;
  const built = statSync(stamp).mtimeMs;
  return buildInputs.some((input) => newest(path.join(root, input)) > built);
}

function build() {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(tsc)) {
    process.stderr.write('dist/ is missing or out of date, and TypeScript is not installed to build it: run `npm install` (with dev dependencies) and `npm run build`.\n');
    process.exit(1);
  }
  const started = Date.now();
  process.stderr.write('building dist/ (tsc -p tsconfig.build.json) …\n');
  const temp = path.join(root, `.dist-build-${process.pid}`);
  rmSync(temp, { recursive: true, force: true });
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json'), '--outDir', temp], { cwd: root, stdio: ['ignore', 2, 2] });
  if (result.status !== 0) {
    rmSync(temp, { recursive: true, force: true });
    process.stderr.write('build failed\n');
    process.exit(1);
  }
  writeFileSync(path.join(temp, '.built'), new Date().toISOString() + '\n');
  const old = path.join(root, `.dist-old-${process.pid}`);
  try {
    if (existsSync(dist)) renameSync(dist, old);
    renameSync(temp, dist);
  } catch (e) {
    // Another build finished first: use it.
    rmSync(temp, { recursive: true, force: true });
    if (!existsSync(stamp)) throw e;
  }
  rmSync(old, { recursive: true, force: true });
  process.stderr.write(`built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

const [command = 'serve', ...rest] = process.argv.slice(2);
if (isStale()) build();
const entry = command === 'cli' ? 'cli.js' : 'main.js';
const args = command === 'cli' ? rest : [command, ...rest];
process.argv = [process.argv[0], path.join(dist, entry), ...args];
await import(pathToFileURL(path.join(dist, entry)).href);
