/**
 * Our own JWTs over HTTP: tokenVerify, the request authentication headers, the refusals (each
 * with its exact Saleor error code), tokensDeactivateAll, tokenRefresh, and signing-key
 * rotation. Tokens are minted in-process with the running server's own services.
 */
import { generateKeyPair, SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { upsertStaffUser } from '../../src/accounts/users.ts';
import { CORE_TOKEN_OWNER } from '../../src/tokens/jwt.ts';
import { rotateSigningKey } from '../../src/tokens/keyring.ts';
import { keyringOptions } from '../../src/app.ts';
import { createCsrfToken, maskCsrfSecret, unmaskCsrfToken } from '../../src/tokens/csrf.ts';
import type { User } from '../../src/generated/prisma/client.ts';

let s: TestServer;
/** Every token (and CSRF value) these tests handled; none may appear in the server's logs. */
const secrets: string[] = [];

beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.close();
});

const app = () => s.running.app;

function remember<T extends string>(value: T): T {
  secrets.push(value);
  return value;
}

async function staff(email: string, permissions: Parameters<typeof upsertStaffUser>[1]['permissions'] = ['MANAGE_USERS']) {
  return upsertStaffUser(app().db.prisma, { email, permissions });
}

async function mint(user: User, permissions: string[] = ['MANAGE_USERS']): Promise<string> {
  return remember(await app().tokens.mintAccessToken(user, permissions, CORE_TOKEN_OWNER));
}

async function reloadUser(id: number): Promise<User> {
  return (await app().db.prisma.user.findUniqueOrThrow({ where: { id } }));
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The claims our server would put in an access token for `user`, with a chosen iat/exp. */
function accessClaims(user: User, iat: number, exp: number) {
  return {
    owner: CORE_TOKEN_OWNER,
    type: 'access',
    token: user.tokenKey,
    email: user.email,
    user_id: Buffer.from(`User:${user.id}`).toString('base64'),
    is_staff: true,
    permissions: ['MANAGE_USERS'],
    iss: s.config.issuer,
    iat,
    exp,
    jti: `forged-${iat}-${exp}`,
  };
}

const ME = '{ me { email isStaff userPermissions { code name } } }';
const VERIFY = `mutation($t: String!) {
  tokenVerify(token: $t) {
    isValid payload user { email }
    errors { field code message }
    accountErrors { field code message }
  }
}`;

async function me(headers: Record<string, string>) {
  const r = await s.gql(ME, undefined, { headers });
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  return r.body.data.me as null | { email: string; isStaff: boolean; userPermissions: Array<{ code: string; name: string }> };
}

async function verify(token: string) {
  const r = await s.gql(VERIFY, { t: token });
  expect(r.status).toBe(200);
  expect(r.body.errors).toBeUndefined();
  return r.body.data.tokenVerify as {
    isValid: boolean;
    payload: Record<string, unknown> | null;
    user: { email: string } | null;
    errors: Array<{ field: string | null; code: string; message: string }>;
    accountErrors: Array<{ field: string | null; code: string; message: string }>;
  };
}

/**
 * tokenVerify refuses the token with `code` on field "token", and `me` stays anonymous (an
 * expired token of ours is the exception: see expectExpiredSignature).
 */
async function expectRefused(token: string, code: string, options: { meAnonymous?: boolean } = {}) {
  const v = await verify(token);
  expect(v.isValid).toBe(false);
  expect(v.user).toBeNull();
  expect(v.payload).toBeNull();
  expect(v.errors).toHaveLength(1);
  expect(v.errors[0]).toMatchObject({ field: 'token', code });
  expect(v.accountErrors).toEqual(v.errors);
  if (options.meAnonymous !== false) expect(await me({ authorization: `Bearer ${token}` })).toBeNull();
}

/**
 * Saleor's answer to an expired token of ours in a request's header, wherever a resolver needs
 * the user: `ExpiredSignatureError` (the Saleor Dashboard refreshes on it), the field null. Fields
 * that need no user still answer.
 */
async function expectExpiredSignature(headers: Record<string, string>) {
  const r = await s.gql('query Shell { me { email } shop { permissions { code } } }', undefined, { headers });
  expect(r.status).toBe(200);
  expect(r.body.data).toEqual({ me: null, shop: { permissions: expect.any(Array) } });
  expect(r.body.errors).toHaveLength(1);
  expect(r.body.errors![0]).toMatchObject({
    message: 'Signature has expired',
    path: ['me'],
    extensions: { exception: { code: 'ExpiredSignatureError' } },
  });
  // A permission-checked field says the same, not PermissionDenied.
  const admin = await s.gql('{ staffUsers(first: 1) { totalCount } }', undefined, { headers });
  expect(admin.body.data?.staffUsers).toBeNull();
  expect(admin.body.errors?.map((e: { extensions?: { exception?: { code?: string } } }) => e.extensions?.exception?.code)).toEqual(['ExpiredSignatureError']);
}

const MANAGE_USERS_VIEW = { code: 'MANAGE_USERS', name: 'Manage customers.' };

describe('tokenVerify and request authentication', () => {
  let user: User;
  let token: string;

  beforeAll(async () => {
    user = await staff('verify@example.com');
    token = await mint(user);
  });

  it('verifies a freshly minted access token with Saleor claim names', async () => {
    const v = await verify(token);
    expect(v.isValid).toBe(true);
    expect(v.errors).toEqual([]);
    expect(v.accountErrors).toEqual([]);
    expect(v.user).toEqual({ email: 'verify@example.com' });
    const p = v.payload!;
    expect(p['type']).toBe('access');
    expect(p['owner']).toBe('saleor');
    expect(p['user_id']).toBe(Buffer.from(`User:${user.id}`).toString('base64'));
    expect(p['user_id']).toMatch(/^VXNlcj/);
    expect(p['email']).toBe('verify@example.com');
    expect(p['is_staff']).toBe(true);
    expect(p['permissions']).toEqual(['MANAGE_USERS']);
    expect(p['token']).toBe(user.tokenKey);
    expect(p['iss']).toBe(s.config.issuer);
    expect(typeof p['iat']).toBe('number');
    expect((p['exp'] as number) - (p['iat'] as number)).toBe(300);
    // The header names one of our published keys.
    const jwks = (await (await fetch(`${s.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((k) => k.kid)).toContain(decodeProtectedHeader(token).kid);
  });

  it('authenticates `me` with Authorization: Bearer', async () => {
    expect(await me({ authorization: `Bearer ${token}` })).toEqual({
      email: 'verify@example.com',
      isStaff: true,
      userPermissions: [MANAGE_USERS_VIEW],
    });
  });

  it('authenticates `me` with Authorization: JWT', async () => {
    expect(await me({ authorization: `JWT ${token}` })).toMatchObject({ email: 'verify@example.com', isStaff: true });
  });

  it('accepts the prefix in any case', async () => {
    expect(await me({ authorization: `bearer ${token}` })).toMatchObject({ email: 'verify@example.com' });
    expect(await me({ authorization: `jwt ${token}` })).toMatchObject({ email: 'verify@example.com' });
  });

  it('prefers Authorization-Bearer over a garbage Authorization header', async () => {
    expect(await me({ 'authorization-bearer': token })).toMatchObject({ email: 'verify@example.com' });
    expect(await me({ 'authorization-bearer': token, authorization: 'Bearer garbage.garbage.garbage' })).toEqual({
      email: 'verify@example.com',
      isStaff: true,
      userPermissions: [MANAGE_USERS_VIEW],
    });
  });

  it('is anonymous without a token', async () => {
    expect(await me({})).toBeNull();
  });
});

describe('tokenVerify refusals (and `me` stays anonymous)', () => {
  let user: User;

  beforeAll(async () => {
    user = await staff('refusals@example.com');
  });

  it('refuses an expired token with JWT_SIGNATURE_EXPIRED', async () => {
    const key = app().keyring.signingKey();
    const now = Math.floor(Date.now() / 1000);
    const expired = remember(
      await new SignJWT(accessClaims(user, now - 600, now - 300))
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
        .sign(key.privateKey),
    );
    // Sanity: the same claims with a future exp are accepted, so only exp is wrong.
    const fresh = remember(
      await new SignJWT(accessClaims(user, now, now + 300))
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
        .sign(key.privateKey),
    );
    expect((await verify(fresh)).isValid).toBe(true);
    await expectRefused(expired, 'JWT_SIGNATURE_EXPIRED', { meAnonymous: false });
    // Twice per header form: the second answer comes from the refusal cache.
    const headerForms: Array<Record<string, string>> = [{ authorization: `Bearer ${expired}` }, { authorization: `JWT ${expired}` }, { 'authorization-bearer': expired }];
    for (const headers of headerForms) {
      await expectExpiredSignature(headers);
      await expectExpiredSignature(headers);
    }
    // An expired token signed by a key that is not ours is no ExpiredSignatureError: anonymous.
    const { privateKey } = await generateKeyPair('RS256');
    const foreign = remember(
      await new SignJWT(accessClaims(user, now - 600, now - 300)).setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' }).sign(privateKey),
    );
    expect(await me({ authorization: `Bearer ${foreign}` })).toBeNull();
  });

  it('refuses a string that is not a JWT with JWT_DECODE_ERROR', async () => {
    await expectRefused('this-is-not-a-jwt', 'JWT_DECODE_ERROR');
  });

  it('refuses a token signed by a foreign key that claims our kid with JWT_DECODE_ERROR', async () => {
    const ours = app().keyring.signingKey();
    const foreign = await generateKeyPair('RS256', { modulusLength: 2048 });
    const now = Math.floor(Date.now() / 1000);
    const forged = remember(
      await new SignJWT(accessClaims(user, now, now + 300))
        .setProtectedHeader({ alg: 'RS256', kid: ours.kid, typ: 'JWT' })
        .sign(foreign.privateKey),
    );
    await expectRefused(forged, 'JWT_DECODE_ERROR');
  });

  it('refuses an alg "none" token with JWT_DECODE_ERROR', async () => {
    const ours = app().keyring.signingKey();
    const now = Math.floor(Date.now() / 1000);
    const unsigned = remember(`${b64url({ alg: 'none', kid: ours.kid, typ: 'JWT' })}.${b64url(accessClaims(user, now, now + 300))}.`);
    await expectRefused(unsigned, 'JWT_DECODE_ERROR');
  });

  it('refuses an HS256 token keyed with our public key with JWT_DECODE_ERROR', async () => {
    const ours = app().keyring.signingKey();
    const n = ours.publicJwk.n;
    expect(typeof n).toBe('string');
    const now = Math.floor(Date.now() / 1000);
    const confused = remember(
      await new SignJWT(accessClaims(user, now, now + 300))
        .setProtectedHeader({ alg: 'HS256', kid: ours.kid, typ: 'JWT' })
        .sign(new TextEncoder().encode(n!)),
    );
    await expectRefused(confused, 'JWT_DECODE_ERROR');
  });

  it('refuses one of our refresh tokens with JWT_INVALID_TOKEN', async () => {
    const refresh = remember(
      await app().tokens.mintRefreshToken(user, CORE_TOKEN_OWNER, {
        id: 'verify-session',
        refreshTokenId: 'r1',
        csrfToken: remember(createCsrfToken()),
        expiresAt: new Date(Date.now() + 60_000),
      }),
    );
    await expectRefused(refresh, 'JWT_INVALID_TOKEN');
  });

  it("refuses a token whose key is not the user's current one with JWT_INVALID_TOKEN", async () => {
    const stale = await mint({ ...user, tokenKey: 'not-the-users-token-key' });
    await expectRefused(stale, 'JWT_INVALID_TOKEN');
  });

  it('refuses the token of a deactivated user with JWT_INVALID_TOKEN', async () => {
    const inactive = await staff('inactive@example.com');
    const token = await mint(inactive);
    expect((await verify(token)).isValid).toBe(true);
    await app().db.pool.query('UPDATE users SET is_active = false WHERE id = $1', [inactive.id]);
    await expectRefused(token, 'JWT_INVALID_TOKEN');
  });
});

describe('tokensDeactivateAll', () => {
  const DEACTIVATE = 'mutation { tokensDeactivateAll { errors { field code message } accountErrors { code } } }';

  it('is refused to anonymous requests', async () => {
    const r = await s.gql(DEACTIVATE);
    expect(r.status).toBe(200);
    expect(r.body.data?.tokensDeactivateAll).toBeNull();
    expect(r.body.errors).toHaveLength(1);
    expect(r.body.errors![0]!.extensions?.['exception']?.code).toBe('PermissionDenied');
    expect(r.body.errors![0]!.path).toEqual(['tokensDeactivateAll']);
  });

  it("kills every token of the user, and only the user's older tokens", async () => {
    const user = await staff('deactivate@example.com');
    const other = await staff('bystander@example.com');
    const token = await mint(user);
    const otherToken = await mint(other);
    const keyBefore = user.tokenKey;

    const r = await s.gql(DEACTIVATE, undefined, { token });
    expect(r.status).toBe(200);
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data.tokensDeactivateAll).toEqual({ errors: [], accountErrors: [] });

    // The same token is dead.
    expect(await me({ authorization: `Bearer ${token}` })).toBeNull();
    const v = await verify(token);
    expect(v.isValid).toBe(false);
    expect(v.user).toBeNull();
    expect(v.errors).toMatchObject([{ field: 'token', code: 'JWT_INVALID_TOKEN' }]);

    // The key changed in the database, and a token minted with the new key works.
    const { rows } = await app().db.pool.query<{ token_key: string }>('SELECT token_key FROM users WHERE id = $1', [user.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.token_key).not.toBe(keyBefore);
    const fresh = await mint(await reloadUser(user.id));
    expect(await me({ authorization: `Bearer ${fresh}` })).toMatchObject({ email: 'deactivate@example.com' });
    expect((await verify(fresh)).isValid).toBe(true);

    // Other users are not affected.
    expect(await me({ authorization: `Bearer ${otherToken}` })).toMatchObject({ email: 'bystander@example.com' });

    // Audited.
    const audit = await app().db.pool.query<{ outcome: string; user_id: number; actor_user_id: number }>(
      "SELECT outcome, user_id, actor_user_id FROM audit_events WHERE type = 'tokens.deactivated'",
    );
    expect(audit.rows).toEqual([{ outcome: 'success', user_id: user.id, actor_user_id: user.id }]);
  });
});

describe('tokenRefresh', () => {
  const REFRESH = `mutation($r: String, $c: String) {
    tokenRefresh(refreshToken: $r, csrfToken: $c) { token user { email } errors { field code message } accountErrors { field code } }
  }`;

  async function refresh(variables: { r?: string; c?: string }, headers: Record<string, string> = {}) {
    const res = await s.gql(REFRESH, variables, { headers });
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    const out = res.body.data.tokenRefresh;
    expect(out.token).toBeNull();
    expect(out.user).toBeNull();
    expect(out.accountErrors).toEqual(out.errors.map((e: { field: string; code: string }) => ({ field: e.field, code: e.code })));
    return out.errors as Array<{ field: string; code: string; message: string }>;
  }

  let user: User;
  let csrf: string;
  let refreshToken: string;

  beforeAll(async () => {
    user = await staff('refresh@example.com');
    csrf = remember(createCsrfToken());
    refreshToken = remember(
      await app().tokens.mintRefreshToken(user, CORE_TOKEN_OWNER, {
        id: 's1',
        refreshTokenId: 'r1',
        csrfToken: csrf,
        expiresAt: new Date(Date.now() + 60_000),
      }),
    );
  });

  it('asks for a token when there is none (JWT_MISSING_TOKEN)', async () => {
    expect(await refresh({})).toMatchObject([{ field: 'refreshToken', code: 'JWT_MISSING_TOKEN' }]);
  });

  it('refuses garbage (JWT_DECODE_ERROR)', async () => {
    expect(await refresh({ r: 'garbage' })).toMatchObject([{ field: 'refreshToken', code: 'JWT_DECODE_ERROR' }]);
  });

  it('refuses an access token (JWT_INVALID_TOKEN)', async () => {
    const access = await mint(user);
    expect(await refresh({ r: access })).toMatchObject([{ field: 'refreshToken', code: 'JWT_INVALID_TOKEN' }]);
  });

  it('requires the CSRF token when the refresh token comes from the cookie (JWT_INVALID_CSRF_TOKEN)', async () => {
    const cookie = { cookie: `refreshToken=${refreshToken}` };
    expect(await refresh({}, cookie)).toMatchObject([{ field: 'csrfToken', code: 'JWT_INVALID_CSRF_TOKEN' }]);
    // A CSRF token carrying another secret does not match either.
    expect(await refresh({ c: createCsrfToken() }, cookie)).toMatchObject([{ field: 'csrfToken', code: 'JWT_INVALID_CSRF_TOKEN' }]);
  });

  it('with the right CSRF token, refuses a core-owned refresh token (no refresh path for owner "saleor")', async () => {
    const cookie = { cookie: `refreshToken=${refreshToken}` };
    // Documents current behaviour: the core never issues refresh tokens, so owner "saleor"
    // has no plugin to refresh with.
    expect(await refresh({ c: csrf }, cookie)).toMatchObject([{ field: 'refreshToken', code: 'JWT_INVALID_TOKEN' }]);
    // A different masking of the same secret matches as well (the error is not the CSRF one).
    const remasked = remember(maskCsrfSecret(unmaskCsrfToken(csrf)!));
    expect(remasked).not.toBe(csrf);
    expect(await refresh({ c: remasked }, cookie)).toMatchObject([{ field: 'refreshToken', code: 'JWT_INVALID_TOKEN' }]);
  });
});

describe('signing key rotation', () => {
  async function jwksKids(): Promise<string[]> {
    const res = await fetch(`${s.url}/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
  }

  it('keeps old tokens valid after a rotation, until the retired key stops verifying', async () => {
    const user = await staff('rotation@example.com');
    const tokenA = await mint(user);
    const kidA = decodeProtectedHeader(tokenA).kid!;
    expect(await jwksKids()).toEqual([kidA]);

    const rotated = await rotateSigningKey(app().db.prisma, app().box, { ...keyringOptions(s.config), publishSeconds: 0 });
    expect(rotated.retired).toEqual([kidA]);
    await app().keyring.reload();

    const kids = await jwksKids();
    expect(kids).toHaveLength(2);
    expect(new Set(kids)).toEqual(new Set([kidA, rotated.kid]));

    const tokenB = await mint(user);
    const kidB = decodeProtectedHeader(tokenB).kid;
    expect(kidB).toBe(rotated.kid);
    expect(kidB).not.toBe(kidA);
    const { rows } = await app().db.pool.query<{ kid: string; retired: boolean }>(
      'SELECT kid, retired_at IS NOT NULL AS retired FROM signing_keys ORDER BY created_at',
    );
    expect(rows).toEqual([
      { kid: kidA, retired: true },
      { kid: kidB, retired: false },
    ]);

    for (const t of [tokenA, tokenB]) {
      expect((await verify(t)).isValid).toBe(true);
      expect(await me({ authorization: `Bearer ${t}` })).toMatchObject({ email: 'rotation@example.com' });
    }

    // The retired key's verify window ends.
    await app().db.pool.query("UPDATE signing_keys SET verify_until = now() - interval '1 second' WHERE retired_at IS NOT NULL");
    await app().keyring.reload();

    expect(await jwksKids()).toEqual([kidB]);
    await expectRefused(tokenA, 'JWT_DECODE_ERROR');
    expect((await verify(tokenB)).isValid).toBe(true);
    expect(await me({ authorization: `Bearer ${tokenB}` })).toMatchObject({ email: 'rotation@example.com' });
    expect(decodeJwt(tokenB)['iss']).toBe(s.config.issuer);
  });

  it('staged: a rotated-in key is published at once and signs only from signsFrom, when the old one retires', async () => {
    const user = await staff('staged@example.com');
    const before = await mint(user);
    const oldKid = decodeProtectedHeader(before).kid!;
    // 5 s: generating the key and the steps below take well over a second on a loaded machine.
    const rotated = await rotateSigningKey(app().db.prisma, app().box, { ...keyringOptions(s.config), publishSeconds: 5 });
    expect(rotated.retired).toEqual([oldKid]);
    expect(rotated.signsFrom.getTime()).toBeGreaterThan(Date.now());
    await app().keyring.reloadAfterChange();

    // Published, not signing: relying parties can fetch it before they meet a token it signed.
    expect(new Set(await jwksKids())).toEqual(new Set([oldKid, rotated.kid]));
    const during = await mint(user);
    expect(Date.now(), 'minted before signsFrom').toBeLessThan(rotated.signsFrom.getTime());
    expect(decodeProtectedHeader(during).kid).toBe(oldKid);
    const { rows } = await app().db.pool.query<{ kid: string; retired_at: Date | null; signs_from: Date | null; verify_until: Date | null }>(
      'SELECT kid, retired_at, signs_from, verify_until FROM signing_keys WHERE kid = ANY($1)',
      [[oldKid, rotated.kid]],
    );
    const old = rows.find((r) => r.kid === oldKid)!;
    const next = rows.find((r) => r.kid === rotated.kid)!;
    expect(old.retired_at?.getTime()).toBe(rotated.signsFrom.getTime());
    expect(next.signs_from?.getTime()).toBe(rotated.signsFrom.getTime());
    expect(old.verify_until!.getTime() - rotated.signsFrom.getTime()).toBe(keyringOptions(s.config).maxTokenLifetimeSeconds * 1000);

    await new Promise((r) => setTimeout(r, rotated.signsFrom.getTime() - Date.now() + 50));
    const after = await mint(user);
    expect(decodeProtectedHeader(after).kid).toBe(rotated.kid);
    // Tokens of the retired key keep verifying until its window closes.
    for (const t of [before, during, after]) expect((await verify(t)).isValid).toBe(true);
    expect(new Set(await jwksKids())).toEqual(new Set([oldKid, rotated.kid]));
  });
});

describe('logs', () => {
  it('never contain a token or CSRF value', () => {
    expect(secrets.length).toBeGreaterThan(10);
    const logs = s.logs.join('\n');
    expect(logs.length).toBeGreaterThan(0);
    for (const secret of secrets) expect(logs.includes(secret), `log contains ${secret.slice(0, 16)}…`).toBe(false);
    // Not even the signature part of a JWT.
    for (const secret of secrets.filter((t) => t.split('.').length === 3 && t.split('.')[2]!.length > 20)) {
      expect(logs.includes(secret.split('.')[2]!)).toBe(false);
    }
  });
});
