/**
 * Pure readings of a provider access token's claims (RFC 9068, RFC 7662 and the providers'
 * own shapes): its granted scope, its audiences, and (unverified) its issuer.
 */
import { decodeJwt } from 'jose';

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** One scope-token (RFC 6749 section 3.3: NQCHAR, so no whitespace, quote or backslash). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/**
 * The granted scope: `scope` (a string), else `scp` (Okta: an array of scope-tokens, of which
 * an item that is not one scope-token is dropped, not split; Entra ID: a string).
 */
export function scopeOf(claims: Record<string, unknown>): string {
  if (typeof claims['scope'] === 'string') return claims['scope'];
  if (Array.isArray(claims['scp'])) return claims['scp'].filter((s): s is string => typeof s === 'string' && SCOPE_TOKEN.test(s)).join(' ');
  if (typeof claims['scp'] === 'string') return claims['scp'];
  return '';
}

/** `aud` as a list (a string is one audience; non-strings are dropped). */
export function audiences(aud: unknown): string[] {
  if (typeof aud === 'string') return [aud];
  return Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [];
}

/** Cheap look at a token: the issuer a JWT claims (not verified); undefined for anything else. */
export function jwtIssuer(token: string): string | undefined {
  if (token.split('.').length !== 3) return undefined;
  try {
    return str(decodeJwt(token).iss);
  } catch {
    return undefined;
  }
}
