/**
 * The JSON logger: every line holds exactly the members of `{ level, time, message, ...base,
 * ...fields }` (BigInts as strings; a field naming a base key replaces it), whichever way the
 * logger builds it (log.ts has a fast path from pre-serialised strings and the plain one); the
 * time is toISOString's format; levels filter.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLogger, type LogFields } from '../src/log.ts';

const TIME = /"time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"/;

/** What a line must be, with its time taken from the line itself. */
function expected(line: string, level: string, message: string, base: LogFields, fields?: LogFields): string {
  const time = TIME.exec(line)?.[1];
  const record = { level, time, message, ...base, ...fields };
  return JSON.stringify(record, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n';
}

function capture(base: LogFields = {}, level: 'debug' | 'info' | 'warn' | 'error' = 'debug') {
  const lines: string[] = [];
  return { lines, log: createLogger(level, base, (l) => lines.push(l)) };
}

describe('log lines', () => {
  const cases: Array<[string, LogFields, LogFields | undefined]> = [
    ['no base, no fields', {}, undefined],
    ['base and fields', { service: 'x', n: 1 }, { requestId: 'r1', ok: true, nested: { a: [1, 'b'] } }],
    ['a field that names a base key (the base key keeps its place, with the new value)', { requestId: 'a', z: 1 }, { requestId: 'b' }],
    ['reserved keys in the fields', {}, { level: 'fake', message: 'fake', time: 'fake' }],
    ['reserved keys in the base', { message: 'base' }, { x: 1 }],
    ['a BigInt', { id: 10n }, { count: 12345678901234567890n }],
    ['undefined values', { a: undefined }, { b: undefined, c: 1 }],
    ['escapes and unicode', {}, { path: '/a"b\\c\n\u2028é😀' }],
    ['a toJSON that is not an object', {}, { d: new Date(0) }],
    ['__proto__ as an own key', {}, JSON.parse('{"__proto__":{"x":1},"y":2}') as LogFields],
  ];
  for (const [name, base, fields] of cases) {
    it(name, () => {
      const { lines, log } = capture(base);
      log.info('msg "quoted"', fields);
      log.child({ extra: 'child' }).warn('child line', fields);
      expect(lines).toHaveLength(2);
      expect(lines[0]).toBe(expected(lines[0]!, 'info', 'msg "quoted"', base, fields));
      expect(lines[1]).toBe(expected(lines[1]!, 'warn', 'child line', { ...base, extra: 'child' }, fields));
    });
  }

  it('fields whose toJSON is not an object become a line of their own kind, as JSON.stringify has it', () => {
    const { lines, log } = capture();
    const odd = { toJSON: () => 'a string' } as unknown as LogFields;
    log.info('odd', odd);
    expect(lines[0]).toBe(expected(lines[0]!, 'info', 'odd', {}, odd));
  });

  it('a cycle does not throw: the line says its fields could not be written', () => {
    const { lines, log } = capture();
    const cyclic: LogFields = { a: 1 };
    cyclic['self'] = cyclic;
    expect(() => log.error('cyclic', cyclic)).not.toThrow();
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'error', message: 'cyclic', note: 'unserialisable fields' });
  });

  it('property: any base and fields give the reference line', () => {
    const key = fc.oneof(fc.constantFrom('level', 'time', 'message', 'requestId', 'a', 'b'), fc.string({ maxLength: 6 }));
    const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.bigInt(), fc.constant(undefined), fc.string());
    const record = fc.dictionary(key, value, { maxKeys: 5 });
    fc.assert(
      fc.property(record, fc.option(record, { nil: undefined }), fc.string(), (base, fields, message) => {
        const { lines, log } = capture(base);
        log.debug(message, fields);
        // The same members, each once (equal length: no duplicate key), in any order (a key such
        // as "0" comes first in a JavaScript object, not necessarily in the line).
        const want = expected(lines[0]!, 'debug', message, base, fields);
        expect(JSON.parse(lines[0]!)).toEqual(JSON.parse(want));
        expect(lines[0]!.length).toBe(want.length);
      }),
      { numRuns: 500 },
    );
  });

  it('the time is the current time in toISOString format', () => {
    const { lines, log } = capture();
    const before = Date.now();
    log.info('t');
    const after = Date.now();
    const t = Date.parse(TIME.exec(lines[0]!)![1]!);
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(after);
  });

  it('levels below the logger level are dropped', () => {
    const { lines, log } = capture({}, 'warn');
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    expect(lines.map((l) => JSON.parse(l).message)).toEqual(['w', 'e']);
  });
});
