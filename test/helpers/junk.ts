/**
 * Junk bearer tokens (flood tests, bench/junk-flood.ts; send them with burst.ts sendAll).
 * Junk here means what an outsider can make up without any key: JWT-shaped tokens naming a
 * provider's issuer with a kid nobody has and a random "signature", and random opaque strings.
 */
import { randomBytes } from 'node:crypto';
import { base64url } from 'jose';

const b64json = (v: unknown) => base64url.encode(JSON.stringify(v));

/** A JWT-shaped access token naming `issuer`, with an unknown kid and a random signature. */
export function junkJwt(issuer: string, claims: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const header = b64json({ alg: 'RS256', typ: 'at+jwt', kid: `junk-${base64url.encode(randomBytes(9))}` });
  const payload = b64json({ iss: issuer, sub: 'nobody', iat: now, exp: now + 600, ...claims });
  return `${header}.${payload}.${base64url.encode(randomBytes(256))}`;
}

/** A random opaque token (the shape of oidc-provider's). */
export const junkOpaque = (): string => base64url.encode(randomBytes(32));
