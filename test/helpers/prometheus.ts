/**
 * Reads Prometheus text exposition (format 0.0.4) for assertions: every sample line as
 * name, labels and value; look-ups by exact label set or by a subset (summed).
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g;

const unescape = (v: string) => v.replace(/\\(["\\n])/g, (_m, c: string) => (c === 'n' ? '\n' : c));

export function parseMetrics(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = unescape(l[2]!);
    out.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

/** The value of the sample with exactly these labels, or undefined. */
export function sampleValue(samples: PromSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels);
  return samples.find((s) => s.name === name && Object.keys(s.labels).length === want.length && want.every(([k, v]) => s.labels[k] === v))?.value;
}

/** The sum over samples of `name` whose labels include `labels` (0 when none). */
export function sampleSum(samples: PromSample[], name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels);
  return samples.filter((s) => s.name === name && want.every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

/** The samples of `name` (any labels). */
export function samplesOf(samples: PromSample[], name: string): PromSample[] {
  return samples.filter((s) => s.name === name);
}
