/**
 * The hot path's hand-written parsers against the reference they replace, property-based:
 * - tokenFromHeaders reads `Authorization` exactly as /^\s*(bearer|jwt)\s+(\S+)\s*$/i would;
 * - parseTarget's shortcut for plain paths gives what the URL parser gives.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tokenFromHeaders } from '../../src/auth/authenticate.ts';
import { parseTarget } from '../../src/http/request-input.ts';

const REFERENCE = /^\s*(bearer|jwt)\s+(\S+)\s*$/i;
const reference = (authorization: string) => REFERENCE.exec(authorization)?.[2];

describe('tokenFromHeaders', () => {
  const cases: Array<[string, string | undefined]> = [
    ['Bearer abc', 'abc'],
    ['bearer abc', 'abc'],
    ['JWT abc', 'abc'],
    ['  Bearer \t abc \t ', 'abc'],
    ['Bearer\u00a0abc', 'abc'],
    ['Bearerabc', undefined],
    ['Bearer', undefined],
    ['Bearer ', undefined],
    ['Bearer a b', undefined],
    ['Bearer a\tb', undefined],
    ['Bearer a\u00a0b', undefined],
    ['Basic abc', undefined],
    ['JWTabc', undefined],
    ['Bear abc', undefined],
    ['', undefined],
  ];
  for (const [header, token] of cases) {
    it(JSON.stringify(header), () => {
      expect(tokenFromHeaders({ authorization: header })).toBe(token);
      expect(reference(header)).toBe(token);
    });
  }

  it('property: the same answer as the regular expression, for any header value', () => {
    const piece = fc.oneof(
      fc.constantFrom('Bearer', 'bearer', 'BEARER', 'JWT', 'jwt', 'Jwt', 'Basic', 'Bear', ' ', '\t', '\u00a0', '  ', 'tok', 'a.b.c', '=', '\u2028', '\ufeff'),
      fc.string({ maxLength: 4 }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 6 }), (pieces) => {
        const header = pieces.join('');
        expect(tokenFromHeaders({ authorization: header })).toBe(reference(header));
      }),
      { numRuns: 5000 },
    );
  });

  it('Authorization-Bearer wins over Authorization', () => {
    expect(tokenFromHeaders({ 'authorization-bearer': ' x ', authorization: 'Bearer y' })).toBe('x');
  });
});

describe('parseTarget', () => {
  it('property: a plain path gives the pathname and query the URL parser gives', () => {
    const char = fc.constantFrom(...'abzAZ09_-/.%?#&=~:@!$\'()*+,;[]\\ é'.split(''));
    fc.assert(
      fc.property(fc.array(char, { maxLength: 20 }).map((cs) => `/${cs.join('')}`), (raw) => {
        const ours = parseTarget(raw);
        if (raw.startsWith('//')) {
          expect(ours).toBeNull();
          return;
        }
        let url: URL | null = null;
        try {
          url = new URL(raw, 'http://localhost');
        } catch {
          url = null;
        }
        expect(ours === null ? null : { pathname: ours.pathname, search: ours.search }).toEqual(url === null ? null : { pathname: url.pathname, search: url.search });
      }),
      { numRuns: 5000 },
    );
  });

  it('refuses what is not origin-form', () => {
    for (const raw of [undefined, '', '*', 'http://x/', '//x/y']) expect(parseTarget(raw)).toBeNull();
  });
});
