/**
 * Junk bearer tokens and a way to send many at once (flood tests, bench/junk-flood.ts).
 * Junk here means what an outsider can make up without any key: JWT-shaped tokens naming a
 * provider's issuer with a kid nobody has and a random "signature", and random opaque strings.
 */
import { randomBytes } from 'node:crypto';
import { base64url } from 'jose';
import { Pool } from 'undici';

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

/**
 * One GraphQL request per token, all in flight at once over `connections` keep-alive sockets.
 * Answers come back in the order of `tokens`.
 */
export async function sendAll(
  url: string,
  tokens: readonly string[],
  query: string,
  { connections = 100 }: { connections?: number } = {},
): Promise<Array<{ status: number; json: any }>> {
  const pool = new Pool(url, { connections, pipelining: 1 });
  const body = JSON.stringify({ query });
  try {
    return await Promise.all(
      tokens.map(async (token) => {
        const res = await pool.request({
          path: '/graphql/',
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body,
        });
        return { status: res.statusCode, json: (await res.body.json()) as any };
      }),
    );
  } finally {
    await pool.close();
  }
}
