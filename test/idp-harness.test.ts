/**
 * Self-test of the test IdP harness (test/helpers/idp.ts), against the harness alone:
 * openid-client v6 plays the relying party, node:http receives back-channel logout POSTs.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as client from 'openid-client';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { startIdp, type CookieJar, type TestIdp } from './helpers/idp.ts';

const CLIENT_ID = 'saleor-test';
const CLIENT_SECRET = 'saleor-test-secret';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const SCOPE = 'openid email profile offline_access saleor:manage_users saleor:staff';

interface LogoutPost {
  body: string;
}

let idp: TestIdp;
let receiver: http.Server;
const logoutPosts: LogoutPost[] = [];

async function rp(): Promise<client.Configuration> {
  return client.discovery(new URL(idp.issuer), CLIENT_ID, undefined, client.ClientSecretBasic(CLIENT_SECRET), {
    execute: [client.allowInsecureRequests],
  });
}

async function login(config: client.Configuration, extra: Record<string, string> = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
    prompt: 'consent',
    ...extra,
  });
  const result = await idp.authorize(url.href, { login: 'alice' });
  expect(result.error).toBeUndefined();
  expect(result.code).toBeTruthy();
  expect(result.state).toBe(state);
  expect(result.iss).toBe(idp.issuer);
  const tokens = await client.authorizationCodeGrant(config, new URL(result.redirectUri), {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
  });
  return { tokens, cookies: result.cookies, nonce };
}

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      logoutPosts.push({ body });
      res.statusCode = 200;
      res.end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const receiverPort = (receiver.address() as AddressInfo).port;

  idp = await startIdp({
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [REDIRECT_URI],
        backchannel_logout_uri: `http://127.0.0.1:${receiverPort}/backchannel`,
        backchannel_logout_session_required: true,
      },
    ],
    accounts: [
      {
        sub: 'alice',
        email: 'alice@example.com',
        email_verified: true,
        given_name: 'Alice',
        family_name: 'Liddell',
        permissions: ['MANAGE_USERS'],
        groups: ['staff'],
      },
    ],
  });
});

afterAll(async () => {
  await idp?.close();
  await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
});

describe('test IdP harness', () => {
  let refreshToken: string;
  let sessionCookies: CookieJar;

  it('serves discovery on 127.0.0.1', async () => {
    const config = await rp();
    const meta = config.serverMetadata();
    expect(meta.issuer).toBe(idp.issuer);
    expect(idp.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(meta.scopes_supported).toEqual(expect.arrayContaining(['saleor:manage_users', 'saleor:staff', 'offline_access']));
    expect(meta.backchannel_logout_supported).toBe(true);
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
  });

  it('logs in with code + PKCE + nonce, releases claims and scopes, issues a refresh token', async () => {
    const config = await rp();
    const { tokens, cookies, nonce } = await login(config);
    sessionCookies = cookies;
    expect(tokens.scope?.split(' ').sort()).toEqual(SCOPE.split(' ').sort());
    expect(tokens.refresh_token).toBeTruthy();
    refreshToken = tokens.refresh_token!;
    const claims = tokens.claims()!;
    expect(claims).toMatchObject({
      sub: 'alice',
      nonce,
      email: 'alice@example.com',
      email_verified: true,
      given_name: 'Alice',
      family_name: 'Liddell',
      name: 'Alice Liddell',
      permissions: ['MANAGE_USERS'],
      groups: ['staff'],
    });
    expect(claims['sid']).toBeTruthy();
    // The opaque access token works at the userinfo endpoint and introspects as active.
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, 'alice');
    expect(userinfo.email).toBe('alice@example.com');
    const introspection = await client.tokenIntrospection(config, tokens.access_token);
    expect(introspection.active).toBe(true);
  });

  it('refreshes and rotates the refresh token; account changes show up', async () => {
    const config = await rp();
    idp.accounts.get('alice')!.given_name = 'Alicia';
    const refreshed = await client.refreshTokenGrant(config, refreshToken);
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(refreshToken);
    expect(refreshed.claims()?.['given_name']).toBe('Alicia');
    // The old refresh token is consumed.
    await expect(client.refreshTokenGrant(config, refreshToken)).rejects.toMatchObject({ error: 'invalid_grant' });
    idp.accounts.get('alice')!.given_name = 'Alice';
  });

  it('rejects an authorization request without PKCE; consent: false gives access_denied', async () => {
    const config = await rp();
    const noPkce = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT_URI, scope: 'openid', state: 's1' });
    const r1 = await idp.authorize(noPkce.href, { login: 'alice' });
    expect(r1.error).toBe('invalid_request');
    expect(r1.state).toBe('s1');
    const denied = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid email saleor:manage_orders',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
      state: 's2',
    });
    const r2 = await idp.authorize(denied.href, { login: 'alice', consent: false });
    expect(r2.error).toBe('access_denied');
    expect(r2.state).toBe('s2');
  });

  it('counts /jwks requests', async () => {
    idp.resetCounts();
    expect(idp.counts()['/jwks']).toBeUndefined();
    const jwks = createRemoteJWKSet(new URL('/jwks', idp.issuer));
    const config = await rp();
    const { tokens } = await login(config);
    await jwtVerify(tokens.id_token!, jwks, { issuer: idp.issuer, audience: CLIENT_ID });
    expect(idp.counts()['/jwks']).toBe(1);
    expect(idp.counts()['/token']).toBe(1);
  });

  it('rotateKeys() changes the kid of new id_tokens and the JWKS; grants survive', async () => {
    const config = await rp();
    const before = await login(config);
    const oldKid = decodeProtectedHeader(before.tokens.id_token!).kid;
    const { kid } = await idp.rotateKeys();
    expect(kid).not.toBe(oldKid);
    const after = await login(config);
    expect(decodeProtectedHeader(after.tokens.id_token!).kid).toBe(kid);
    let jwks = (await (await fetch(new URL('/jwks', idp.issuer))).json()) as JSONWebKeySet;
    expect(jwks.keys.map((k) => k.kid)).toEqual([kid]);
    expect(jwks.keys[0]).not.toHaveProperty('d');
    // A refresh token from before the rotation still works (same storage).
    const refreshed = await client.refreshTokenGrant(config, before.tokens.refresh_token!);
    expect(decodeProtectedHeader(refreshed.id_token!).kid).toBe(kid);

    const { kid: kid2 } = await idp.rotateKeys({ keepOld: true });
    jwks = (await (await fetch(new URL('/jwks', idp.issuer))).json()) as JSONWebKeySet;
    expect(jwks.keys.map((k) => k.kid)).toEqual([kid2, kid]);
    const third = await login(config);
    expect(decodeProtectedHeader(third.tokens.id_token!).kid).toBe(kid2);
  });

  it('stop() refuses connections fast, start() brings the provider back', async () => {
    await idp.stop();
    const t0 = Date.now();
    await expect(rp()).rejects.toThrow();
    const err = await fetch(new URL('/.well-known/openid-configuration', idp.issuer)).catch((e: unknown) => e);
    expect((err as { cause?: { code?: string } }).cause?.code).toBe('ECONNREFUSED');
    expect(Date.now() - t0).toBeLessThan(2000);
    await idp.start();
    const config = await rp();
    expect(config.serverMetadata().issuer).toBe(idp.issuer);
  });

  it('issues JWT access tokens for a resource (client_credentials and models)', async () => {
    const jwks = createLocalJWKSet((await (await fetch(new URL('/jwks', idp.issuer))).json()) as JSONWebKeySet);
    idp.resetCounts();
    const cc = await idp.issueAccessToken({
      clientId: CLIENT_ID,
      scope: 'saleor:manage_users',
      resource: 'https://api.example.com',
      format: 'jwt',
    });
    expect(idp.counts()['/token']).toBeUndefined();
    const { payload, protectedHeader } = await jwtVerify(cc, jwks, {
      issuer: idp.issuer,
      audience: 'https://api.example.com',
      typ: 'at+jwt',
    });
    expect(protectedHeader.alg).toBe('RS256');
    expect(String(payload['scope']).split(' ')).toContain('saleor:manage_users');
    expect(payload['client_id']).toBe(CLIENT_ID);

    const user = await idp.issueAccessToken({
      sub: 'alice',
      clientId: CLIENT_ID,
      scope: 'saleor:manage_users saleor:staff',
      resource: 'https://api.example.com',
      format: 'jwt',
    });
    const verified = await jwtVerify(user, jwks, { issuer: idp.issuer, audience: 'https://api.example.com' });
    expect(verified.payload.sub).toBe('alice');
    expect(String(verified.payload['scope']).split(' ').sort()).toEqual(['saleor:manage_users', 'saleor:staff']);
  });

  it('code flow with a resource parameter yields a JWT access token; SSO with a kept jar', async () => {
    const config = await rp();
    const first = await login(config);
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid saleor:manage_users',
      resource: 'https://api.example.com',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: 's3',
    });
    idp.resetCounts();
    const result = await idp.authorize(url.href, { login: 'alice', cookies: first.cookies });
    expect(result.code).toBeTruthy();
    // Existing IdP session: no login form was posted, only the consent for the resource scope.
    expect(idp.counts()['/auth']).toBe(1);
    const tokens = await client.authorizationCodeGrant(
      config,
      new URL(result.redirectUri),
      { pkceCodeVerifier: verifier, expectedState: 's3' },
      { resource: 'https://api.example.com' },
    );
    const at = decodeJwt(tokens.access_token);
    expect(at.aud).toBe('https://api.example.com');
    expect(at.sub).toBe('alice');
    expect(at['scope']).toBe('saleor:manage_users');
    await expect(idp.authorize(url.href, { login: 'nobody' })).rejects.toThrow(/unknown account/);
  });

  it('issues opaque access tokens that introspect as active', async () => {
    const config = await rp();
    const cc = await idp.issueAccessToken({ clientId: CLIENT_ID, scope: 'saleor:manage_users', format: 'opaque' });
    expect(cc.split('.').length).toBe(1);
    const i1 = await client.tokenIntrospection(config, cc);
    expect(i1.active).toBe(true);
    expect(i1.scope).toBe('saleor:manage_users');

    const user = await idp.issueAccessToken({ sub: 'alice', clientId: CLIENT_ID, scope: 'openid email saleor:staff', format: 'opaque' });
    const i2 = await client.tokenIntrospection(config, user);
    expect(i2).toMatchObject({ active: true, sub: 'alice', client_id: CLIENT_ID });
    expect(i2.scope?.split(' ')).toContain('saleor:staff');
    const userinfo = await client.fetchUserInfo(config, user, 'alice');
    expect(userinfo.email).toBe('alice@example.com');

    await client.tokenRevocation(config, user);
    expect((await client.tokenIntrospection(config, user)).active).toBe(false);
  });

  it('endSession() makes the provider POST a logout_token to the back-channel URI', async () => {
    logoutPosts.length = 0;
    const result = await idp.endSession(sessionCookies);
    expect(result).toEqual({ delivered: [CLIENT_ID], failed: [] });
    expect(logoutPosts).toHaveLength(1);
    const logoutToken = new URLSearchParams(logoutPosts[0]!.body).get('logout_token');
    expect(logoutToken).toBeTruthy();
    const jwks = createLocalJWKSet((await (await fetch(new URL('/jwks', idp.issuer))).json()) as JSONWebKeySet);
    const { payload } = await jwtVerify(logoutToken!, jwks, { issuer: idp.issuer, audience: CLIENT_ID });
    expect(payload['events']).toEqual({ 'http://schemas.openid.net/event/backchannel-logout': {} });
    expect(payload.sub).toBe('alice');
    expect(payload['sid']).toBeTruthy();
    expect(decodeJwt(logoutToken!)['nonce']).toBeUndefined();
    expect(idp.serverErrors).toEqual([]);
  });
});
