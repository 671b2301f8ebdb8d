/**
 * Authenticated encryption of secrets at rest (IdP client secrets, refresh tokens from the
 * IdP, private signing keys, …) under a key derived from the server secret, plus helpers
 * for random tokens stored only as hashes.
 *
 * Scheme, version 1:
 * - key = HKDF-SHA256(ikm = UTF-8 server secret, salt = `saleor-oidc-auth/secret-box/v1`,
 *   info = UTF-8 purpose label, length = 32) (RFC 5869), so each use ("purpose") gets its
 *   own key and a value sealed for one purpose cannot be opened as another;
 * - AES-256-GCM (NIST SP 800-38D) with a random 96-bit IV (the size GCM is designed for),
 *   a 128-bit tag, and the purpose label also bound as additional authenticated data;
 * - text form `v1.<iv>.<ciphertext>.<tag>`, each part unpadded base64url (RFC 4648 §5).
 *
 * A random IV per message is safe for about 2^32 messages under one key (SP 800-38D §8.3),
 * far beyond what a server stores per purpose.
 *
 * @module
 */
import * as crypto from 'node:crypto';

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  hkdfSync,
  randomBytes,
} from 'node:crypto';

/** HKDF salt: fixed, names this scheme and its version. */
const HKDF_SALT = 'saleor-oidc-auth/secret-box/v1';
/** Version prefix of the sealed format. */
const VERSION = 'v1';
/** AES-256 key length in bytes. */
const KEY_BYTES = 32;
/** GCM IV length in bytes (96 bits, the recommended size). */
const IV_BYTES = 12;
/** GCM tag length in bytes (128 bits, the full tag). */
const TAG_BYTES = 16;
/** Minimum length of the server secret, in characters. */
const MIN_SECRET_CHARS = 16;
/** Node's `hkdfSync` refuses `info` longer than 1024 bytes. */
const MAX_PURPOSE_BYTES = 1024;

const BASE64URL_PART = /^[A-Za-z0-9_-]*$/;

/** Thrown by {@link SecretBox.open} for any value that does not open: malformed, wrong key, wrong purpose or tampered. */
export class SecretBoxError extends Error {
  override name = 'SecretBoxError';
}

/** Decodes an unpadded base64url part, refusing non-canonical spellings. */
function decodePart(part: string): Buffer | null {
  if (!BASE64URL_PART.test(part) || part.length % 4 === 1) return null;
  const bytes = Buffer.from(part, 'base64url');
  return bytes.toString('base64url') === part ? bytes : null;
}

/** The three binary parts of a well-formed `v1` value, or `null`. */
function parseSealed(value: unknown): { iv: Buffer; ciphertext: Buffer; tag: Buffer } | null {
  if (typeof value !== 'string') return null;
  const parts = value.split('.');
  if (parts.length !== 4 || parts[0] !== VERSION) return null;
  const iv = decodePart(parts[1]!);
  const ciphertext = decodePart(parts[2]!);
  const tag = decodePart(parts[3]!);
  if (iv === null || ciphertext === null || tag === null) return null;
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return null;
  return { iv, ciphertext, tag };
}

/** Validates a purpose label; it is the HKDF `info` and the GCM AAD. */
function checkPurpose(purpose: string): void {
  if (typeof purpose !== 'string' || purpose.length === 0) {
    throw new TypeError('A SecretBox purpose must be a non-empty string');
  }
  if (Buffer.byteLength(purpose, 'utf8') > MAX_PURPOSE_BYTES) {
    throw new TypeError(`A SecretBox purpose must be at most ${MAX_PURPOSE_BYTES} bytes`);
  }
}

/**
 * Seals and opens secrets with AES-256-GCM under per-purpose keys derived from one server
 * secret. Create it with {@link SecretBox.fromSecret}.
 *
 * Purposes are meant to be a handful of fixed labels (e.g. `'oidc-client-secret'`); each
 * derived key is cached for the life of the instance.
 */
export class SecretBox {
  readonly #ikm: Buffer;
  readonly #keys = new Map<string, Buffer>();

  private constructor(ikm: Buffer) {
    this.#ikm = ikm;
  }

  /**
   * Creates a box from the server secret.
   *
   * @param secret at least 16 characters (code points); longer, random secrets are better.
   * @throws {Error} when the secret is shorter than 16 characters.
   */
  static fromSecret(secret: string): SecretBox {
    if (typeof secret !== 'string' || Array.from(secret).length < MIN_SECRET_CHARS) {
      throw new Error(`The server secret must be at least ${MIN_SECRET_CHARS} characters long`);
    }
    return new SecretBox(Buffer.from(secret, 'utf8'));
  }

  /** The 32-byte key for a purpose, derived once with HKDF-SHA256 and cached. */
  #key(purpose: string): Buffer {
    let key = this.#keys.get(purpose);
    if (key === undefined) {
      key = Buffer.from(hkdfSync('sha256', this.#ikm, HKDF_SALT, purpose, KEY_BYTES));
      this.#keys.set(purpose, key);
    }
    return key;
  }

  /**
   * A public identifier derived from the secret for `purpose` (16 hex characters): the same
   * for every process sharing the secret, revealing nothing about it (e.g. a channel name).
   */
  identifier(purpose: string): string {
    checkPurpose(purpose);
    return this.#key(purpose).subarray(0, 8).toString('hex');
  }

  /**
   * Encrypts and authenticates `plaintext` for `purpose`.
   *
   * @param plaintext any string (UTF-8 encoded before encryption); may be empty.
   * @param purpose label of the use; the same label is needed to open the value.
   * @returns `v1.<iv>.<ciphertext>.<tag>` (base64url parts); different on every call.
   * @throws {TypeError} for an empty purpose or one longer than 1024 bytes.
   */
  seal(plaintext: string, purpose: string): string {
    checkPurpose(purpose);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key(purpose), iv, {
      authTagLength: TAG_BYTES,
    });
    cipher.setAAD(Buffer.from(purpose, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [
      VERSION,
      iv.toString('base64url'),
      ciphertext.toString('base64url'),
      tag.toString('base64url'),
    ].join('.');
  }

  /**
   * Decrypts a value made by {@link SecretBox.seal} with the same server secret and purpose.
   *
   * @throws {SecretBoxError} when the value is not a well-formed `v1` value, or it does not
   *   authenticate (another server secret, another purpose, or any tampering).
   * @throws {TypeError} for an empty purpose or one longer than 1024 bytes.
   */
  open(sealed: string, purpose: string): string {
    checkPurpose(purpose);
    const parts = parseSealed(sealed);
    if (parts === null) throw new SecretBoxError('Malformed sealed value');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key(purpose), parts.iv, {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(Buffer.from(purpose, 'utf8'));
      decipher.setAuthTag(parts.tag);
      const plaintext = Buffer.concat([decipher.update(parts.ciphertext), decipher.final()]);
      return plaintext.toString('utf8');
    } catch {
      throw new SecretBoxError('Sealed value failed authentication');
    }
  }

  /**
   * Whether `value` has the shape of a sealed `v1` value (version, 12-byte IV, 16-byte tag,
   * canonical base64url parts). A format check only: it does not prove the value opens.
   */
  isSealed(value: unknown): boolean {
    return parseSealed(value) !== null;
  }
}

/**
 * SHA-256 of a token, as lower-case hex, for storing lookups of random tokens (the database
 * keeps the hash; the token itself is shown once). Suitable only for high-entropy values
 * such as {@link randomToken} output, not for passwords.
 */
export function hashToken(value: string): string {
  // One-shot crypto.hash (Node >= 20.12) where present: about twice as fast as a Hash object,
  // and this runs on every authenticated request.
  return typeof oneShotHash === 'function' ? oneShotHash('sha256', value, 'hex') : createHash('sha256').update(value, 'utf8').digest('hex');
}

const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;

/**
 * A random token: `bytes` bytes from the CSPRNG, as unpadded base64url.
 *
 * @param bytes number of random bytes, a positive integer (default 32, i.e. 256 bits,
 *   43 characters).
 * @throws {RangeError} when `bytes` is not a positive integer.
 */
export function randomToken(bytes = 32): string {
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new RangeError('randomToken needs a positive integer number of bytes');
  }
  return randomBytes(bytes).toString('base64url');
}
