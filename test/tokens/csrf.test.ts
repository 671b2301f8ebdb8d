import { describe, expect, it } from 'vitest';
import {
  createCsrfToken,
  csrfTokensMatch,
  maskCsrfSecret,
  unmaskCsrfToken,
} from '../../src/tokens/csrf.ts';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const TOKEN_RE = /^[a-zA-Z0-9]{64}$/;

/** Independent reference for Django's cipher: (idx(secret) + idx(mask)) % 62. */
function referenceCipher(secret: string, mask: string): string {
  return [...secret]
    .map((c, i) => ALPHABET[(ALPHABET.indexOf(c) + ALPHABET.indexOf(mask[i]!)) % 62])
    .join('');
}

const rep = (c: string, n = 32): string => c.repeat(n);
const SECRET_A = 'abcdefghijklmnopqrstuvwxyzABCDEF';
const SECRET_B = 'GHIJKLMNOPQRSTUVWXYZ0123456789ab';

describe('known vectors (computed by hand)', () => {
  it.each([
    // idx('a')=0 + idx('b')=1 → 'b'
    ['a', 'b', 'b'],
    // idx('9')=61 + idx('b')=1 = 62 → 0 → 'a' (wraps)
    ['9', 'b', 'a'],
    // idx('Z')=51 + idx('B')=27 = 78 → 16 → 'q'
    ['Z', 'B', 'q'],
    // idx('0')=52 + idx('a')=0 → '0'
    ['0', 'a', '0'],
    // idx('z')=25 + idx('9')=61 = 86 → 24 → 'y'
    ['z', '9', 'y'],
  ])('secret %s… with mask %s… ⇄ cipher %s…', (s, m, c) => {
    expect(referenceCipher(rep(s), rep(m))).toBe(rep(c));
    expect(unmaskCsrfToken(rep(m) + rep(c))).toBe(rep(s));
  });

  it('unmasks a mixed token', () => {
    // mask "ab" repeated, secret "ba" repeated: b+a → b (1+0), a+b → b (0+1)
    const mask = 'ab'.repeat(16);
    expect(unmaskCsrfToken(mask + rep('b'))).toBe('ba'.repeat(16));
  });

  it("masks secret 'a'*32 to a cipher equal to its mask", () => {
    const token = maskCsrfSecret(rep('a'));
    expect(token.slice(32)).toBe(token.slice(0, 32));
  });
});

describe('maskCsrfSecret / unmaskCsrfToken', () => {
  it.each([SECRET_A, SECRET_B, rep('a'), rep('9'), rep('Z')])('round trip %s', (secret) => {
    const token = maskCsrfSecret(secret);
    expect(token).toMatch(TOKEN_RE);
    expect(token.slice(32)).toBe(referenceCipher(secret, token.slice(0, 32)));
    expect(unmaskCsrfToken(token)).toBe(secret);
  });

  it.each([
    ['too short', rep('a', 31)],
    ['too long', rep('a', 33)],
    ['empty', ''],
    ['bad character', `${rep('a', 31)}-`],
    ['non-ASCII letter', `${rep('a', 31)}é`],
  ])('refuses a secret that is %s', (_label, secret) => {
    expect(() => maskCsrfSecret(secret)).toThrow(TypeError);
  });

  it.each([
    ['empty', ''],
    ['63 chars', rep('a', 63)],
    ['65 chars', rep('a', 65)],
    ['32 chars (a bare secret)', rep('a')],
    ['dash', `${rep('a', 63)}-`],
    ['underscore', `${rep('a', 63)}_`],
    ['space', `${rep('a', 63)} `],
    ['trailing newline', `${rep('a', 64)}\n`],
    ['non-ASCII', `${rep('a', 63)}ä`],
  ])('unmask gives null for %s', (_label, token) => {
    expect(unmaskCsrfToken(token)).toBeNull();
  });
});

describe('createCsrfToken', () => {
  it('creates 64-character tokens over the alphabet, all different', () => {
    const tokens = Array.from({ length: 50 }, () => createCsrfToken());
    for (const t of tokens) expect(t).toMatch(TOKEN_RE);
    expect(new Set(tokens).size).toBe(tokens.length);
    expect(new Set(tokens.map((t) => unmaskCsrfToken(t))).size).toBe(tokens.length);
  });

  it('uses the whole alphabet', () => {
    const seen = new Set(Array.from({ length: 200 }, () => createCsrfToken()).join(''));
    expect(seen.size).toBe(62);
  });
});

describe('csrfTokensMatch', () => {
  const a1 = maskCsrfSecret(SECRET_A);
  const a2 = maskCsrfSecret(SECRET_A);
  const b1 = maskCsrfSecret(SECRET_B);
  const fresh = createCsrfToken();

  it('two maskings of one secret differ', () => {
    expect(a1).not.toBe(a2);
  });

  it.each<[string, unknown, unknown, boolean]>([
    ['same token', a1, a1, true],
    ['two maskings of one secret', a1, a2, true],
    ['hand-built vector vs masking', rep('b') + rep('b'), maskCsrfSecret(rep('a')), true],
    ['different secrets', a1, b1, false],
    ['fresh tokens', fresh, createCsrfToken(), false],
    ['token vs its bare secret', a1, SECRET_A, false],
    ['bare secrets', SECRET_A, SECRET_A, false],
    ['truncated', a1, a1.slice(0, 63), false],
    ['extended', a1, `${a1}a`, false],
    ['bad character', a1, `${a1.slice(0, 63)}!`, false],
    ['empty strings', '', '', false],
    ['undefined', a1, undefined, false],
    ['null', null, a1, false],
    ['number', a1, 42, false],
    ['object', { toString: () => a1 }, a1, false],
    ['array', [a1], a1, false],
    ['both undefined', undefined, undefined, false],
  ])('%s → %s', (_label, x, y, expected) => {
    expect(csrfTokensMatch(x, y)).toBe(expected);
    expect(csrfTokensMatch(y, x)).toBe(expected);
  });

  it('detects a one-character change in the cipher', () => {
    const last = a1.at(-1) === 'a' ? 'b' : 'a';
    expect(csrfTokensMatch(a1, a1.slice(0, 63) + last)).toBe(false);
  });
});
