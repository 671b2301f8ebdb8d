import { createCipheriv, createDecipheriv, createHash, hkdfSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashToken, randomToken, SecretBox, SecretBoxError } from '../../src/crypto/secret-box.ts';

const SECRET = 'correct horse battery staple';
const OTHER_SECRET = 'another server secret, 32 chars!';
const PURPOSE = 'oidc-client-secret';

const box = SecretBox.fromSecret(SECRET);

/** Flips one bit of byte `index` (negative counts from the end) of a base64url part. */
function flipByte(part: string, index: number): string {
  const bytes = Buffer.from(part, 'base64url');
  const i = index < 0 ? bytes.length + index : index;
  bytes[i] = bytes[i]! ^ 0x01;
  return bytes.toString('base64url');
}

/** Replaces part `n` (0 = version, 1 = iv, 2 = ciphertext, 3 = tag) of a sealed value. */
function withPart(sealed: string, n: number, f: (part: string) => string): string {
  const parts = sealed.split('.');
  parts[n] = f(parts[n]!);
  return parts.join('.');
}

describe('SecretBox.fromSecret', () => {
  it.each([
    ['empty', ''],
    ['15 characters', 'x'.repeat(15)],
    ['15 code points in 30 UTF-16 units', '🙂'.repeat(15)],
  ])('refuses a secret that is %s', (_label, secret) => {
    expect(() => SecretBox.fromSecret(secret)).toThrow(/at least 16 characters/);
  });

  it.each([
    ['16 characters', 'x'.repeat(16)],
    ['16 emoji', '🙂'.repeat(16)],
    ['long', 'x'.repeat(200)],
  ])('accepts a secret that is %s', (_label, secret) => {
    const b = SecretBox.fromSecret(secret);
    expect(b.open(b.seal('hello', PURPOSE), PURPOSE)).toBe('hello');
  });
});

describe('seal / open', () => {
  it.each([
    ['empty', ''],
    ['ascii', 'client-secret-123'],
    ['unicode', 'pässwörd 🙂 密码'],
    ['long', 'x'.repeat(100_000)],
    ['looks sealed', 'v1.a.b.c'],
  ])('round trips %s plaintext', (_label, plaintext) => {
    const sealed = box.seal(plaintext, PURPOSE);
    expect(box.isSealed(sealed)).toBe(true);
    expect(box.open(sealed, PURPOSE)).toBe(plaintext);
  });

  it('produces v1.<iv>.<ct>.<tag> with a 12-byte IV and a 16-byte tag', () => {
    const sealed = box.seal('abc', PURPOSE);
    const parts = sealed.split('.');
    expect(parts).toHaveLength(4);
    expect(parts[0]).toBe('v1');
    for (const part of parts.slice(1)) expect(part).toMatch(/^[A-Za-z0-9_-]*$/);
    expect(Buffer.from(parts[1]!, 'base64url')).toHaveLength(12);
    expect(Buffer.from(parts[2]!, 'base64url')).toHaveLength(3);
    expect(Buffer.from(parts[3]!, 'base64url')).toHaveLength(16);
  });

  it('uses a random IV: two seals of one plaintext differ and both open', () => {
    const a = box.seal('same', PURPOSE);
    const b = box.seal('same', PURPOSE);
    expect(a).not.toBe(b);
    expect(a.split('.')[1]).not.toBe(b.split('.')[1]);
    expect(box.open(a, PURPOSE)).toBe('same');
    expect(box.open(b, PURPOSE)).toBe('same');
  });

  it('opens with another instance built from the same secret', () => {
    expect(SecretBox.fromSecret(SECRET).open(box.seal('x', PURPOSE), PURPOSE)).toBe('x');
  });

  it('follows the documented scheme (HKDF-SHA256 key, AES-256-GCM, purpose as AAD)', () => {
    const key = Buffer.from(
      hkdfSync('sha256', Buffer.from(SECRET), 'saleor-oidc-auth/secret-box/v1', PURPOSE, 32),
    );
    // Decrypt what the box sealed.
    const [, iv, ct, tag] = box.seal('interop', PURPOSE).split('.') as [string, string, string, string];
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(PURPOSE));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    const plain = Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]);
    expect(plain.toString()).toBe('interop');

    // And open what was sealed independently.
    const iv2 = Buffer.alloc(12, 7);
    const cipher = createCipheriv('aes-256-gcm', key, iv2);
    cipher.setAAD(Buffer.from(PURPOSE));
    const ct2 = Buffer.concat([cipher.update('by hand', 'utf8'), cipher.final()]);
    const sealed = ['v1', iv2, ct2, cipher.getAuthTag()]
      .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
      .join('.');
    expect(box.open(sealed, PURPOSE)).toBe('by hand');
  });

  it('does not accept a value sealed without the purpose as AAD', () => {
    const key = Buffer.from(
      hkdfSync('sha256', Buffer.from(SECRET), 'saleor-oidc-auth/secret-box/v1', PURPOSE, 32),
    );
    const iv = Buffer.alloc(12, 1);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    const ct = Buffer.concat([cipher.update('no aad', 'utf8'), cipher.final()]);
    const sealed = `v1.${iv.toString('base64url')}.${ct.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}`;
    expect(() => box.open(sealed, PURPOSE)).toThrow(SecretBoxError);
  });
});

describe('open refuses', () => {
  const sealed = box.seal('top secret value', PURPOSE);

  it.each<[string, () => string]>([
    ['the wrong purpose', () => box.open(sealed, 'idp-refresh-token')],
    ['a purpose differing in case', () => box.open(sealed, PURPOSE.toUpperCase())],
    ['the wrong server secret', () => SecretBox.fromSecret(OTHER_SECRET).open(sealed, PURPOSE)],
    ['a tampered first ciphertext byte', () => box.open(withPart(sealed, 2, (p) => flipByte(p, 0)), PURPOSE)],
    ['a tampered last ciphertext byte', () => box.open(withPart(sealed, 2, (p) => flipByte(p, -1)), PURPOSE)],
    ['a truncated ciphertext', () => box.open(withPart(sealed, 2, (p) => p.slice(0, -4)), PURPOSE)],
    ['an emptied ciphertext', () => box.open(withPart(sealed, 2, () => ''), PURPOSE)],
    ['a tampered tag', () => box.open(withPart(sealed, 3, (p) => flipByte(p, 5)), PURPOSE)],
    ['a truncated tag', () => box.open(withPart(sealed, 3, (p) => Buffer.from(p, 'base64url').subarray(0, 12).toString('base64url')), PURPOSE)],
    ['a tampered IV', () => box.open(withPart(sealed, 1, (p) => flipByte(p, 0)), PURPOSE)],
    ['a short IV', () => box.open(withPart(sealed, 1, (p) => Buffer.from(p, 'base64url').subarray(0, 8).toString('base64url')), PURPOSE)],
    ['swapped parts from another value', () => {
      const other = box.seal('top secret value', PURPOSE).split('.');
      return box.open(withPart(sealed, 3, () => other[3]!), PURPOSE);
    }],
    ['another version', () => box.open(withPart(sealed, 0, () => 'v2'), PURPOSE)],
    ['an upper-case version', () => box.open(withPart(sealed, 0, () => 'V1'), PURPOSE)],
    ['no version', () => box.open(sealed.slice(3), PURPOSE)],
    ['padded base64url', () => box.open(withPart(sealed, 3, (p) => `${p}==`), PURPOSE)],
    ['standard base64 characters', () => box.open(withPart(sealed, 3, (p) => `${p.slice(0, -2)}+/`), PURPOSE)],
    ['an extra part', () => box.open(`${sealed}.AAAA`, PURPOSE)],
    ['trailing whitespace', () => box.open(`${sealed} `, PURPOSE)],
    ['an empty string', () => box.open('', PURPOSE)],
    ['plain text', () => box.open('top secret value', PURPOSE)],
    ['dots only', () => box.open('v1...', PURPOSE)],
    ['a non-string', () => box.open(42 as unknown as string, PURPOSE)],
  ])('%s', (_label, attempt) => {
    expect(attempt).toThrow(SecretBoxError);
  });

  it('reports SecretBoxError by name and as an Error', () => {
    try {
      box.open('nope', PURPOSE);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(Error);
      expect(error).toBeInstanceOf(SecretBoxError);
      expect((error as Error).name).toBe('SecretBoxError');
    }
  });
});

describe('purpose validation', () => {
  it.each([
    ['empty', ''],
    ['over 1024 bytes', 'p'.repeat(1025)],
  ])('seal and open refuse a purpose that is %s', (_label, purpose) => {
    expect(() => box.seal('x', purpose)).toThrow(TypeError);
    expect(() => box.open(box.seal('x', PURPOSE), purpose)).toThrow(TypeError);
  });

  it('accepts a 1024-byte purpose', () => {
    const purpose = 'p'.repeat(1024);
    expect(box.open(box.seal('x', purpose), purpose)).toBe('x');
  });
});

describe('isSealed', () => {
  const sealed = box.seal('value', PURPOSE);

  it.each<[string, unknown, boolean]>([
    ['a sealed value', sealed, true],
    ['a sealed empty plaintext', box.seal('', PURPOSE), true],
    ['a value sealed under another secret (format only)', SecretBox.fromSecret(OTHER_SECRET).seal('v', 'x'), true],
    ['a tampered but well-formed value', withPart(sealed, 2, (p) => flipByte(p, 0)), true],
    ['another version', withPart(sealed, 0, () => 'v2'), false],
    ['a short IV', withPart(sealed, 1, () => 'AAAA'), false],
    ['a short tag', withPart(sealed, 3, () => 'AAAA'), false],
    ['three parts', sealed.split('.').slice(0, 3).join('.'), false],
    ['plain text', 'hunter2', false],
    ['empty string', '', false],
    ['undefined', undefined, false],
    ['null', null, false],
    ['number', 1, false],
    ['object', { toString: () => sealed }, false],
  ])('%s → %s', (_label, value, expected) => {
    expect(box.isSealed(value)).toBe(expected);
  });
});

describe('hashToken', () => {
  it.each([
    // FIPS 180-2 / well-known SHA-256 test vectors.
    ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  ])('sha256(%j)', (input, expected) => {
    expect(hashToken(input)).toBe(expected);
  });

  it('hashes UTF-8', () => {
    expect(hashToken('ünï')).toBe(createHash('sha256').update(Buffer.from('ünï', 'utf8')).digest('hex'));
  });
});

describe('randomToken', () => {
  it.each([
    [undefined, 43],
    [16, 22],
    [1, 2],
    [64, 86],
  ])('randomToken(%s) is %d base64url characters', (bytes, length) => {
    const token = bytes === undefined ? randomToken() : randomToken(bytes);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(token).toHaveLength(length);
  });

  it('differs every time', () => {
    const tokens = new Set(Array.from({ length: 100 }, () => randomToken()));
    expect(tokens.size).toBe(100);
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses %s bytes', (bytes) => {
    expect(() => randomToken(bytes)).toThrow(RangeError);
  });
});
