import { describe, expect, it } from 'vitest';
import { corsHeaders, exactOriginMatcher, originMatcher } from '../../src/http/cors.ts';

describe('origin patterns', () => {
  const allowed = originMatcher(['https://shop.example.com', 'https://*.preview.example.com', 'http://localhost:*', 'https://*-*-*.vercel.app']);
  it.each([
    ['https://shop.example.com', true],
    ['HTTPS://SHOP.EXAMPLE.COM', true],
    ['https://shop.example.com.evil.test', false],
    ['https://evil.test/https://shop.example.com', false],
    ['https://pr-1.preview.example.com', true],
    ['https://preview.example.com', false],
    ['https://x.preview.example.com.evil.test', false],
    ['http://localhost:3000', true],
    ['https://a-b-c.vercel.app', true],
    ['https://a-b.vercel.app', false],
    ['null', false],
  ])('%s → %s', (origin, expected) => {
    expect(allowed(origin)).toBe(expected);
  });

  it('treats regex characters in patterns literally', () => {
    const m = originMatcher(['https://shop.example.com']);
    expect(m('https://shopXexample.com')).toBe(false);
  });

  it('`*` alone allows any well-formed origin, never `null`', () => {
    expect(originMatcher(['*'])('https://anything.test')).toBe(true);
    expect(originMatcher(['*'])('null')).toBe(false);
    expect(originMatcher(['*', 'null'])('null')).toBe(false);
  });

  it.each([
    'http://localhost:3000.evil.test',
    'http://localhost:3000/path',
    'http://user@localhost:3000',
    'http://localhost:3000?x',
    'file://localhost:3000',
    'http://localhost:80',
    'http://localhost:',
  ])('only well-formed origins match: %s is refused by http://localhost:*', (origin) => {
    expect(originMatcher(['http://localhost:*'])(origin)).toBe(false);
  });

  it('an empty list (production default) allows nobody', () => {
    expect(originMatcher([])('https://shop.example.com')).toBe(false);
  });

  it('stays fast on a crafted long Origin with several wildcards, and refuses over-long origins', () => {
    const m = originMatcher(['https://*-*-*-*.vercel.app']);
    const crafted = `https://${'-'.repeat(400)}`;
    const started = performance.now();
    for (let i = 0; i < 100; i++) m(crafted);
    expect(performance.now() - started).toBeLessThan(200);
    expect(originMatcher(['*'])(`https://${'a'.repeat(600)}.test`)).toBe(false);
  });

  it('answers with the origin, credentials and Vary only when allowed', () => {
    const m = originMatcher(['https://shop.example.com']);
    expect(corsHeaders('https://shop.example.com', m, false)).toEqual({
      'access-control-allow-origin': 'https://shop.example.com',
      'access-control-allow-credentials': 'true',
      vary: 'Origin',
    });
    expect(corsHeaders('https://evil.test', m, true)).toEqual({});
    expect(corsHeaders(undefined, m, true)).toEqual({});
  });
});

describe('exactOriginMatcher (CSRF proof for the Dashboard logout)', () => {
  const trusted = exactOriginMatcher(['https://dashboard.example.com', 'https://*.preview.example.com', '*']);
  it.each([
    ['https://dashboard.example.com', true],
    ['HTTPS://DASHBOARD.EXAMPLE.COM', true],
    // Only origins listed one by one: a wildcard match is not enough.
    ['https://a.preview.example.com', false],
    ['https://evil.example.com', false],
    ['https://dashboard.example.com.evil.test', false],
    ['https://dashboard.example.com:8443', false],
    ['http://dashboard.example.com', false],
    ['https://dashboard.example.com/', false],
    ['null', false],
    ['', false],
    [undefined, false],
  ])('%s → %s', (origin, expected) => {
    expect(trusted(origin)).toBe(expected);
  });
  it('trusts nothing when nothing is listed exactly', () => {
    expect(exactOriginMatcher(['*'])('https://dashboard.example.com')).toBe(false);
    expect(exactOriginMatcher([])('https://dashboard.example.com')).toBe(false);
  });
});
