/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, e.g. through BENCH_SERVER_NODE_FLAGS of
 * `npm run bench`): the top functions and files by self time, as a share of the busy time
 * (samples outside idle, program and GC), with GC and idle on their own line.
 *
 *   npx tsx bench/profile-top.ts /tmp/prof/CPU.*.cpuprofile [--top 25] [--from ms --to ms | --last ms] [--requests N]
 *
 * Several profiles are added up. Files under node_modules are grouped by package, Node's own
 * by `node:<module>`, ours by path from the project root. `--from`/`--to` keep the samples of
 * that window (ms since the profile started), `--last ms` those of its last ms (e.g. only the
 * measured rounds, without the start-up); `--requests N` adds microseconds per request.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const option = (name: string) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const top = Number(option('--top') ?? 25);
const from = option('--from');
const to = option('--to');
const last = option('--last');
const requests = option('--requests');
const files = args;
if (!files.length) {
  console.error('usage: tsx bench/profile-top.ts <file.cpuprofile>... [--top N] [--from ms --to ms]');
  process.exit(2);
}

const root = path.resolve(import.meta.dirname, '..');

function fileOf(url: string): string {
  if (!url) return '(native)';
  if (url.startsWith('node:')) return url;
  const p = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
  const nm = p.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = p.slice(nm + '/node_modules/'.length).split('/');
    return `npm:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  return p.startsWith(root) ? path.relative(root, p) : p;
}

const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
const special = new Map<string, number>();
let busy = 0;

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  let t = 0;
  const length = profile.timeDeltas.reduce((a, b) => a + b, 0) / 1000;
  const lo = last !== undefined ? length - Number(last) : from !== undefined ? Number(from) : -Infinity;
  const hi = to !== undefined ? Number(to) : Infinity;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i + 1] ?? 0;
    t += profile.timeDeltas[i] ?? 0;
    const ms = t / 1000;
    if (ms < lo || ms > hi) continue;
    const frame = nodes.get(profile.samples[i]!)!.callFrame;
    const name = frame.functionName;
    if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') {
      special.set(name, (special.get(name) ?? 0) + dt);
      continue;
    }
    busy += dt;
    const f = fileOf(frame.url);
    const key = `${name || '(anonymous)'}  ${f}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + dt);
    byFile.set(f, (byFile.get(f) ?? 0) + dt);
  }
}

const gc = special.get('(garbage collector)') ?? 0;
const program = special.get('(program)') ?? 0;
const idle = special.get('(idle)') ?? 0;
const total = busy + gc + program;
const pct = (v: number) =>
  `${((100 * v) / total).toFixed(1).padStart(5)}%${requests ? `  ${(v / Number(requests)).toFixed(1).padStart(6)} us/req` : ''}`;
if (requests) console.log(`${requests} requests: ${(total / Number(requests)).toFixed(0)} us of CPU per request`);
console.log(`busy ${(total / 1000).toFixed(0)} ms (JS ${pct(busy)}, GC ${pct(gc)}, program/native ${pct(program)}); idle ${(idle / 1000).toFixed(0)} ms`);
const print = (title: string, m: Map<string, number>) => {
  console.log(`\n${title} (self time, share of busy)`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(v)}  ${k}`);
};
print('top functions', byFunction);
print('top files / packages', byFile);
