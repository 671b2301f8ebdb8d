/**
 * CSRF tokens in Saleor's format, which is Django's masking scheme
 * (`django.middleware.csrf`: `_get_new_csrf_string`, `_mask_cipher_secret`,
 * `_unmask_cipher_token`). Saleor puts such a token in the refresh token (`csrfToken`)
 * and expects it back with `externalRefresh`; see docs/saleor-contract.md §3.
 *
 * - The alphabet is `a-z A-Z 0-9` in that order (Django's `CSRF_ALLOWED_CHARS`, i.e.
 *   `string.ascii_letters + string.digits`), 62 characters.
 * - A secret is 32 characters from the alphabet (`CSRF_SECRET_LENGTH`).
 * - A token is 64 characters: a fresh random 32-character mask followed by the cipher,
 *   where `cipher[i] = alphabet[(idx(secret[i]) + idx(mask[i])) % 62]`.
 *
 * Masking makes every issued token different (so the value cannot be used as a BREACH
 * oracle) while two tokens carrying the same secret still match.
 *
 * @module
 */

import { randomInt, timingSafeEqual } from 'node:crypto';

/** Django's `CSRF_ALLOWED_CHARS`: lowercase, uppercase, digits. */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const ALPHABET_SIZE = ALPHABET.length; // 62

/** Django's `CSRF_SECRET_LENGTH`. */
const SECRET_LENGTH = 32;

/** Django's `CSRF_TOKEN_LENGTH` (mask + cipher). */
const TOKEN_LENGTH = 2 * SECRET_LENGTH;

const SECRET_PATTERN = new RegExp(`^[a-zA-Z0-9]{${SECRET_LENGTH}}$`);
const TOKEN_PATTERN = new RegExp(`^[a-zA-Z0-9]{${TOKEN_LENGTH}}$`);

/** Position of a character in {@link ALPHABET}; the caller has validated it. */
function indexOf(char: string): number {
  return ALPHABET.indexOf(char);
}

/**
 * `length` characters drawn uniformly from the alphabet. `crypto.randomInt` draws without
 * modulo bias (unlike `byte % 62`), like Django's `get_random_string` with `secrets.choice`.
 */
function randomString(length: number): string {
  let out = '';
  for (let i = 0; i < length; i += 1) out += ALPHABET[randomInt(ALPHABET_SIZE)];
  return out;
}

/**
 * Creates a new CSRF token: a random 32-character secret, masked with
 * {@link maskCsrfSecret}.
 *
 * @returns a 64-character token over `a-zA-Z0-9`.
 */
export function createCsrfToken(): string {
  return maskCsrfSecret(randomString(SECRET_LENGTH));
}

/**
 * Masks a secret with a fresh random mask (Django's `_mask_cipher_secret`): returns
 * `mask + cipher`, 64 characters. Each call gives a different token for the same secret.
 *
 * @param secret exactly 32 characters from `a-zA-Z0-9`.
 * @throws {TypeError} when the secret is not 32 characters from the alphabet.
 */
export function maskCsrfSecret(secret: string): string {
  if (typeof secret !== 'string' || !SECRET_PATTERN.test(secret)) {
    throw new TypeError(`A CSRF secret must be ${SECRET_LENGTH} characters from a-zA-Z0-9`);
  }
  const mask = randomString(SECRET_LENGTH);
  let cipher = '';
  for (let i = 0; i < SECRET_LENGTH; i += 1) {
    cipher += ALPHABET[(indexOf(secret[i]!) + indexOf(mask[i]!)) % ALPHABET_SIZE];
  }
  return mask + cipher;
}

/**
 * Recovers the secret from a token (Django's `_unmask_cipher_token`):
 * `secret[i] = alphabet[(idx(cipher[i]) - idx(mask[i])) mod 62]`.
 *
 * @returns the 32-character secret, or `null` when the token is not exactly 64 characters
 *   from `a-zA-Z0-9`.
 */
export function unmaskCsrfToken(token: string): string | null {
  if (typeof token !== 'string' || !TOKEN_PATTERN.test(token)) return null;
  let secret = '';
  for (let i = 0; i < SECRET_LENGTH; i += 1) {
    const cipherIndex = indexOf(token[SECRET_LENGTH + i]!);
    const maskIndex = indexOf(token[i]!);
    // Python's % is never negative; add the modulus so JavaScript's isn't either.
    secret += ALPHABET[(cipherIndex - maskIndex + ALPHABET_SIZE) % ALPHABET_SIZE];
  }
  return secret;
}

/**
 * Whether two CSRF tokens carry the same secret (Django's `_does_token_match`, which
 * compares the unmasked secrets with `constant_time_compare`). Both values must be valid
 * 64-character tokens; anything else (wrong length, characters outside the alphabet,
 * non-strings) gives `false`. The secrets are compared with `crypto.timingSafeEqual`.
 * Never throws.
 */
export function csrfTokensMatch(a: unknown, b: unknown): boolean {
  try {
    if (typeof a !== 'string' || typeof b !== 'string') return false;
    const secretA = unmaskCsrfToken(a);
    const secretB = unmaskCsrfToken(b);
    if (secretA === null || secretB === null) return false;
    // Both are 32 ASCII characters, so the buffers have equal length.
    return timingSafeEqual(Buffer.from(secretA, 'latin1'), Buffer.from(secretB, 'latin1'));
  } catch {
    return false;
  }
}
