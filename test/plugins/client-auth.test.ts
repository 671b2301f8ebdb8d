/**
 * Client authentication at the provider (OpenID Connect Core §9): parsing and validation of
 * the method, what each method puts on the wire, and the pure rules of the connection key
 * store (which key signs, which are published, public members only).
 */
import { describe, expect, it } from 'vitest';
import * as oidc from 'openid-client';
import { decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK } from 'jose';
import {
  TOKEN_ENDPOINT_AUTH_METHODS,
  clientAuthentication,
  needsClientSecret,
  parseTokenEndpointAuthMethod,
  usesConnectionKey,
  validateTokenEndpointAuthMethod,
  type ClientSigningKey,
} from '../../src/plugins/openid-connect/client-auth.ts';
import { isPublished, publicJwkOf } from '../../src/plugins/openid-connect/client-keys.ts';
import { currentSigner } from '../../src/crypto/staged-keys.ts';

const AS: oidc.ServerMetadata = { issuer: 'https://idp.example.com', token_endpoint: 'https://idp.example.com/token' };
const CLIENT = { client_id: 'shop client' } as oidc.ClientMetadata;
const LONG_SECRET = 'a-secret-of-more-than-32-bytes-0123456789';

/** Runs a ClientAuth the way oauth4webapi does (awaited) and returns what it set. */
async function apply(auth: oidc.ClientAuth) {
  const body = new URLSearchParams();
  const headers = new Headers();
  await auth(AS, CLIENT, body, headers);
  return { body, headers };
}

describe('parseTokenEndpointAuthMethod / validateTokenEndpointAuthMethod', () => {
  it.each([
    [undefined, 'client_secret_basic'],
    [null, 'client_secret_basic'],
    ['', 'client_secret_basic'],
    ['  ', 'client_secret_basic'],
    ['client_secret_basic', 'client_secret_basic'],
    ['client_secret_post', 'client_secret_post'],
    [' client_secret_jwt ', 'client_secret_jwt'],
    ['private_key_jwt', 'private_key_jwt'],
    ['none', undefined],
    ['tls_client_auth', undefined],
    ['PRIVATE_KEY_JWT', undefined],
    [true, 'client_secret_basic'],
  ])('%j → %j', (value, expected) => {
    expect(parseTokenEndpointAuthMethod(value)).toBe(expected);
  });

  it('knows exactly the four methods of OpenID Connect Core §9 that a confidential client uses', () => {
    expect([...TOKEN_ENDPOINT_AUTH_METHODS].sort()).toEqual(['client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt']);
    expect(TOKEN_ENDPOINT_AUTH_METHODS.filter(needsClientSecret)).toEqual(['client_secret_basic', 'client_secret_post', 'client_secret_jwt']);
    expect(TOKEN_ENDPOINT_AUTH_METHODS.filter(usesConnectionKey)).toEqual(['private_key_jwt']);
  });

  it.each([
    ['client_secret_basic', 's', []],
    ['', 's', []],
    ['client_secret_basic', '', [['clientSecret', 'Client Secret is required.']]],
    ['client_secret_post', '  ', [['clientSecret', 'Client Secret is required.']]],
    ['client_secret_jwt', '', [['clientSecret', 'Client Secret is required.']]],
    ['client_secret_jwt', 'x'.repeat(31), [['clientSecret', 'client_secret_jwt signs with HS256: the Client Secret must be at least 32 bytes long.']]],
    ['client_secret_jwt', 'x'.repeat(32), []],
    ['private_key_jwt', '', []],
    ['private_key_jwt', null, []],
    ['private_key_jwt', 'ignored', []],
    ['none', 's', [['tokenEndpointAuthMethod', 'Use one of: client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt.']]],
  ] as const)('method %j with secret %j', (method, secret, expected) => {
    expect(validateTokenEndpointAuthMethod(method, secret).map((p) => [p.field, p.message])).toEqual(expected);
  });
});

describe('clientAuthentication', () => {
  it('client_secret_basic form-urlencodes id and secret before base64 (RFC 6749 §2.3.1)', async () => {
    const secret = 'a-b+c:d%e f~g';
    const { body, headers } = await apply(clientAuthentication('client_secret_basic', secret));
    expect([...body.keys()]).toEqual([]);
    const [scheme, value] = headers.get('authorization')!.split(' ');
    expect(scheme).toBe('Basic');
    const decoded = Buffer.from(value!, 'base64').toString('utf8');
    expect(decoded).toBe('shop+client:a%2Db%2Bc%3Ad%25e+f%7Eg');
    // What a provider does (RFC 6749 §2.3.1): split at the first ':' and form-decode each part.
    const [id, pw] = [decoded.slice(0, decoded.indexOf(':')), decoded.slice(decoded.indexOf(':') + 1)];
    const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
    expect([formDecode(id), formDecode(pw)]).toEqual(['shop client', secret]);
  });

  it('client_secret_post sends the id and secret in the body', async () => {
    const { body, headers } = await apply(clientAuthentication('client_secret_post', 's+3:cr%t'));
    expect(Object.fromEntries(body)).toEqual({ client_id: 'shop client', client_secret: 's+3:cr%t' });
    expect(headers.get('authorization')).toBeNull();
  });

  it('client_secret_jwt sends an HS256 assertion keyed with the secret (RFC 7523 §3)', async () => {
    const { body, headers } = await apply(clientAuthentication('client_secret_jwt', LONG_SECRET));
    expect(headers.get('authorization')).toBeNull();
    expect(body.get('client_id')).toBe('shop client');
    expect(body.get('client_secret')).toBeNull();
    expect(body.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    const { payload, protectedHeader } = await jwtVerify(body.get('client_assertion')!, new TextEncoder().encode(LONG_SECRET), { algorithms: ['HS256'] });
    expect(protectedHeader.alg).toBe('HS256');
    expect(payload).toMatchObject({ iss: 'shop client', sub: 'shop client', aud: AS.issuer });
    expect(typeof payload.jti).toBe('string');
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60);
  });

  it.each(['RS256', 'ES256'] as const)('private_key_jwt signs with the current key (%s), asked for on every request', async (alg) => {
    const keys: ClientSigningKey[] = [];
    const publics: CryptoKey[] = [];
    for (const kid of ['k1', 'k2']) {
      const pair = await generateKeyPair(alg);
      keys.push({ key: pair.privateKey, kid });
      publics.push(pair.publicKey);
    }
    let current = 0;
    let asked = 0;
    const auth = clientAuthentication('private_key_jwt', '', async () => {
      asked++;
      return keys[current]!;
    });
    for (const index of [0, 1]) {
      current = index;
      const { body, headers } = await apply(auth);
      expect(headers.get('authorization')).toBeNull();
      expect(body.get('client_secret')).toBeNull();
      const assertion = body.get('client_assertion')!;
      expect(decodeProtectedHeader(assertion)).toEqual({ alg, kid: keys[index]!.kid });
      const { payload } = await jwtVerify(assertion, publics[index]!, { algorithms: [alg], audience: AS.issuer, issuer: 'shop client', subject: 'shop client' });
      expect(typeof payload.jti).toBe('string');
    }
    expect(asked).toBe(2);
  });

  it('refuses a missing secret or key source (a configuration error, not a request)', () => {
    expect(() => clientAuthentication('client_secret_basic', '')).toThrow(/needs a client secret/);
    expect(() => clientAuthentication('client_secret_jwt', '')).toThrow(/needs a client secret/);
    expect(() => clientAuthentication('private_key_jwt', 'secret')).toThrow(/signing key/);
  });
});

describe('connection key rules', () => {
  const at = (s: number) => new Date(s * 1000);
  const key = (kid: string, signsFrom: number, retiredAt: number | null) => ({ kid, signsFrom: at(signsFrom), retiredAt: retiredAt === null ? null : at(retiredAt) });

  it('a staged key signs only from its signsFrom, when the key it replaces retires', () => {
    const keys = [key('old', 0, 100), key('new', 100, null)];
    expect(currentSigner(keys, 50_000)?.kid).toBe('old');
    expect(currentSigner(keys, 99_999)?.kid).toBe('old');
    expect(currentSigner(keys, 100_000)?.kid).toBe('new');
    expect(currentSigner([key('staged', 100, null)], 50_000)).toBeUndefined();
    expect(currentSigner([], 0)).toBeUndefined();
    // A rotation whose new key this process has not loaded: the latest retired key keeps signing.
    expect(currentSigner([key('a', 0, 50), key('b', 10, 60)], 70_000)?.kid).toBe('b');
  });

  it('retired keys stay published for the retention, current and staged ones always', () => {
    expect(isPublished(key('k', 0, null), 1e12, 86_400)).toBe(true);
    expect(isPublished(key('k', 0, 100), 100_000 + 86_399_000, 86_400)).toBe(true);
    expect(isPublished(key('k', 0, 100), 100_000 + 86_400_000, 86_400)).toBe(false);
  });

  it.each(['RS256', 'ES256'] as const)('publicJwkOf keeps only public members (%s)', async (alg) => {
    const { privateKey } = await generateKeyPair(alg, { extractable: true });
    const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid: 'k', alg, use: 'sig', key_ops: ['sign'], ext: true };
    const pub = publicJwkOf(privateJwk);
    expect(Object.keys(pub).sort()).toEqual(alg === 'RS256' ? ['alg', 'e', 'kid', 'kty', 'n', 'use'] : ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']) expect(pub).not.toHaveProperty(member);
  });
});
