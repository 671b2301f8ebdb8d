/**
 * A small hand-written OpenID provider for hostile/broken-provider tests: a real HTTP peer on
 * 127.0.0.1 (node:http) whose token and userinfo answers each test programs. Unlike
 * test/helpers/idp.ts (a real, well-behaved oidc-provider), this one says whatever the test
 * wants: id_tokens signed with the wrong key, `alg: none`, wrong claims, HTTP errors, garbage,
 * slow answers, redirects.
 *
 * Served:
 * - `<prefix>/.well-known/openid-configuration` for any path prefix: issuer = origin + prefix,
 *   endpoints at the root (/authorize, /token, /jwks, /userinfo, /logout); fields can be
 *   overridden per prefix with {@link FakeProvider.discoveryOverrides}.
 * - `/jwks`, and any path ending in `/.well-known/jwks.json` (AWS Cognito's layout, under an
 *   issuer prefix): {@link FakeProvider.jwks} (default: the provider's RSA public key with its kid).
 * - `/token`, `/userinfo`: {@link FakeProvider.token} / {@link FakeProvider.userinfo}.
 *   The default userinfo answers the claims registered for the bearer access token by
 *   {@link FakeProvider.tokenResponse}, 401 otherwise.
 * Every request is recorded ({@link FakeProvider.requests}, {@link FakeProvider.counts}).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomUUID } from 'node:crypto';
import { SignJWT, base64url, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The body parsed as application/x-www-form-urlencoded. */
  form: URLSearchParams;
}

export interface FakeReply {
  /** Default 200. */
  status?: number;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON (content-type application/json by default). */
  body?: unknown;
  /** Answer only after this many milliseconds. */
  delayMs?: number;
}

export type FakeHandler = (req: RecordedRequest) => FakeReply | Promise<FakeReply>;

/** One authorization request, read from the URL the server under test built. */
export interface FakeAuthorization {
  url: URL;
  clientId: string;
  redirectUri: string;
  state: string;
  nonce: string;
  codeChallenge: string;
  codeChallengeMethod: string;
  scope: string;
}

export interface SigningKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  kid: string;
}

export async function newRsaKey(kid: string = randomUUID()): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { privateKey, publicJwk, kid };
}

/** base64url(SHA-256(verifier)): the S256 code challenge (RFC 7636 §4.2). */
export function s256(verifier: string): string {
  return base64url.encode(createHash('sha256').update(verifier).digest());
}

export interface FakeProvider {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  readonly issuer: string;
  /** The provider's own signing key (its public half is in the default JWKS). */
  readonly key: SigningKey;
  /** Discovery fields to override, by path prefix ('' = the root issuer). */
  discoveryOverrides: Map<string, Record<string, unknown>>;
  /** The JWKS served at /jwks. */
  jwks: () => { keys: JWK[] };
  token: FakeHandler;
  userinfo: FakeHandler;
  readonly requests: RecordedRequest[];
  requestsTo(path: string): RecordedRequest[];
  counts(): Record<string, number>;
  /** Parses and remembers an authorization URL (looked up again by the PKCE verifier). */
  readAuthorizationUrl(url: string | URL): FakeAuthorization;
  /** The remembered authorization request whose code_challenge matches the token request's verifier. */
  authorizationFor(req: RecordedRequest): FakeAuthorization | undefined;
  /** Signs a JWT: RS256 with the provider's key unless told otherwise. */
  sign(claims: JWTPayload, opts?: { key?: SigningKey; kid?: string | null }): Promise<string>;
  /**
   * A successful token response (200, JSON) carrying `idToken`; registers `userinfo` claims
   * for its access token (default: sub and email of the id_token claims given).
   */
  tokenResponse(opts: {
    idToken?: string;
    refreshToken?: string;
    userinfo?: Record<string, unknown>;
    scope?: string;
  }): FakeReply;
  close(): Promise<void>;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startFakeProvider(): Promise<FakeProvider> {
  const key = await newRsaKey();
  const requests: RecordedRequest[] = [];
  const authorizations = new Map<string, FakeAuthorization>();
  const userinfoByAccessToken = new Map<string, Record<string, unknown>>();
  const timers = new Set<NodeJS.Timeout>();
  let issuer = '';

  const send = (res: http.ServerResponse, reply: FakeReply) => {
    if (res.destroyed || res.writableEnded) return;
    const headers: Record<string, string> = { ...reply.headers };
    let payload = '';
    if (typeof reply.body === 'string') payload = reply.body;
    else if (reply.body !== undefined) {
      payload = JSON.stringify(reply.body);
      headers['content-type'] ??= 'application/json';
    }
    res.writeHead(reply.status ?? 200, headers);
    res.end(payload);
  };

  const defaultUserinfo: FakeHandler = (req) => {
    const auth = req.headers['authorization'] ?? '';
    const m = /^Bearer (.+)$/i.exec(auth);
    const claims = m ? userinfoByAccessToken.get(m[1]!) : undefined;
    if (!claims) return { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' }, body: { error: 'invalid_token' } };
    return { body: claims };
  };

  const fake: FakeProvider = {
    get issuer() {
      return issuer;
    },
    key,
    discoveryOverrides: new Map(),
    jwks: () => ({ keys: [key.publicJwk] }),
    token: () => ({ status: 400, body: { error: 'invalid_grant', error_description: 'no token handler set' } }),
    userinfo: defaultUserinfo,
    requests,
    requestsTo: (path) => requests.filter((r) => r.path === path),
    counts() {
      const out: Record<string, number> = {};
      for (const r of requests) out[r.path] = (out[r.path] ?? 0) + 1;
      return out;
    },
    readAuthorizationUrl(url) {
      const u = new URL(url);
      const p = u.searchParams;
      const need = (name: string) => {
        const v = p.get(name);
        if (!v) throw new Error(`authorization URL without ${name}: ${u.href}`);
        return v;
      };
      const a: FakeAuthorization = {
        url: u,
        clientId: need('client_id'),
        redirectUri: need('redirect_uri'),
        state: need('state'),
        nonce: need('nonce'),
        codeChallenge: need('code_challenge'),
        codeChallengeMethod: need('code_challenge_method'),
        scope: need('scope'),
      };
      authorizations.set(a.codeChallenge, a);
      return a;
    },
    authorizationFor(req) {
      const verifier = req.form.get('code_verifier');
      return verifier ? authorizations.get(s256(verifier)) : undefined;
    },
    async sign(claims, opts = {}) {
      const k = opts.key ?? key;
      const kid = opts.kid === undefined ? k.kid : opts.kid;
      return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(kid === null ? {} : { kid }) }).sign(k.privateKey);
    },
    tokenResponse(opts) {
      const accessToken = `at-${randomUUID()}`;
      let info = opts.userinfo;
      if (!info && opts.idToken) {
        const payload = JSON.parse(Buffer.from(opts.idToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
        info = { sub: payload['sub'], ...(payload['email'] !== undefined ? { email: payload['email'] } : {}) };
      }
      userinfoByAccessToken.set(accessToken, info ?? {});
      return {
        status: 200,
        headers: { 'cache-control': 'no-store' },
        body: {
          access_token: accessToken,
          token_type: 'Bearer',
          expires_in: 300,
          scope: opts.scope ?? 'openid profile email offline_access',
          ...(opts.idToken !== undefined ? { id_token: opts.idToken } : {}),
          ...(opts.refreshToken !== undefined ? { refresh_token: opts.refreshToken } : {}),
        },
      };
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };

  const discovery = (prefix: string) => ({
    issuer: issuer + prefix,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    userinfo_endpoint: `${issuer}/userinfo`,
    end_session_endpoint: `${issuer}/logout`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    id_token_signing_alg_values_supported: ['RS256'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    ...fake.discoveryOverrides.get(prefix),
  });

  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const body = await readBody(req);
      const recorded: RecordedRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body,
        form: new URLSearchParams(body),
      };
      requests.push(recorded);
      const WELL_KNOWN = '/.well-known/openid-configuration';
      let reply: FakeReply;
      if (url.pathname.endsWith(WELL_KNOWN)) reply = { body: discovery(url.pathname.slice(0, -WELL_KNOWN.length)) };
      else if (url.pathname === '/jwks' || url.pathname.endsWith('/.well-known/jwks.json')) reply = { body: fake.jwks(), headers: { 'content-type': 'application/jwk-set+json' } };
      else if (url.pathname === '/token' && req.method === 'POST') reply = await fake.token(recorded);
      else if (url.pathname === '/userinfo') reply = await fake.userinfo(recorded);
      else reply = { status: 404, body: { error: 'not_found' } };
      if (reply.delayMs) {
        const t = setTimeout(() => {
          timers.delete(t);
          send(res, reply);
        }, reply.delayMs);
        timers.add(t);
      } else send(res, reply);
    })().catch((e: unknown) => {
      if (!res.headersSent) send(res, { status: 500, body: `fake provider error: ${(e as Error).message}` });
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}
