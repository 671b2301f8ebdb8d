/**
 * A REAL OpenID Provider for tests: `oidc-provider` 9.x running in the test process on
 * 127.0.0.1, with its development login/consent pages driven over HTTP by {@link TestIdp.authorize}.
 *
 * Usage (one per test file, like startTestServer):
 * ```ts
 * const idp = await startIdp({
 *   clients: [{ client_id: 'saleor', client_secret: 's3cret', redirect_uris: ['http://127.0.0.1:8000/callback'] }],
 *   accounts: [{ sub: 'alice', email: 'alice@example.com', email_verified: true, permissions: ['MANAGE_USERS'] }],
 * });
 * const { code, state } = await idp.authorize(authorizationUrlBuiltByTheServer, { login: 'alice' });
 * await idp.close();
 * ```
 *
 * Provider configuration (what a test can rely on):
 * - Scopes: `openid`, `email` (email, email_verified), `profile` (given_name, family_name, name,
 *   permissions, groups), `offline_access`, `saleor:staff`, one `saleor:<codename>` per Saleor
 *   permission ({@link SALEOR_PERMISSION_CODENAMES}), plus `extraScopes`.
 *   `conformIdTokenClaims: false`: the scope-released claims are in the id_token too.
 * - Granted scopes: everything requested (the dev consent accepts all), unless the account has
 *   {@link TestAccount.scopes}: then only those of the `saleor:*` / `extraScopes` scopes (the
 *   others are recorded as rejected in the grant, as a partial consent would), plus its listed
 *   `extraScopes` even when not requested.
 * - Claims are read from {@link TestIdp.accounts} every time the provider asks (findAccount),
 *   so a test can change an account between logins/refreshes; deleting an account makes the
 *   provider treat the subject as gone (refresh → invalid_grant).
 * - PKCE is required for every authorization request (S256 only, the library's default
 *   method list).
 * - Refresh tokens: issued when the client allows the `refresh_token` grant and the granted
 *   scope contains `offline_access`. oidc-provider DROPS `offline_access` from the request
 *   unless the authorization request also has `prompt=consent` (OIDC Core 11) — the server
 *   under test must send it. Refresh tokens rotate on every use (`rotateRefreshToken: true`).
 * - TTLs: access token 600 s, id_token 600 s, refresh token `refreshTokenTtlSeconds`
 *   (default 1 day), authorization code 60 s.
 * - Access tokens are opaque (introspectable, usable at /me) unless a `resource` parameter is
 *   sent (RFC 8707, features.resourceIndicators): then the token is for that resource server,
 *   `aud` = the resource, scope = the requested `saleor:*`/extra scopes, and — when
 *   `accessTokenFormat` is `'jwt'` (the default) — a RS256 JWT (`typ: at+jwt`) signed with the
 *   provider's current key. With `accessTokenFormat: 'opaque'` resource tokens stay opaque.
 * - Enabled: devInteractions, revocation, introspection, clientCredentials, backchannelLogout,
 *   rpInitiatedLogout, resourceIndicators. Endpoints keep oidc-provider's default paths:
 *   /auth, /token, /me, /jwks, /token/introspection, /token/revocation, /session/end,
 *   /.well-known/openid-configuration.
 * - Clients are static (no dynamic registration). http:// redirect URIs on 127.0.0.1/localhost
 *   need no special setting for `web` clients using the code flow (oidc-provider only forbids
 *   http/localhost for the implicit flow). Defaults: response_types ['code'], grant_types
 *   ['authorization_code', 'refresh_token', 'client_credentials'] (without client_credentials
 *   for public `token_endpoint_auth_method: 'none'` clients), client_secret_basic.
 * - Storage: an in-memory adapter owned by this TestIdp (not oidc-provider's process-global
 *   one), so several IdPs in one process do not share state, and grants, sessions and refresh
 *   tokens survive {@link TestIdp.rotateKeys} and {@link TestIdp.stop}/{@link TestIdp.start}.
 * - Outgoing HTTP (back-channel logout POSTs) goes through a `fetch` override that drops
 *   oidc-provider's SSRF-guard dispatcher, which otherwise refuses to connect to 127.0.0.1.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider, { errors } from 'oidc-provider';

export type { JWK };

/** Saleor's 25 permission codenames (lower case); each is offered as scope `saleor:<codename>`. */
export const SALEOR_PERMISSION_CODENAMES = [
  'manage_users',
  'manage_staff',
  'impersonate_user',
  'manage_apps',
  'manage_observability',
  'manage_checkouts',
  'handle_checkouts',
  'handle_taxes',
  'manage_taxes',
  'manage_channels',
  'manage_customer_types_and_attributes',
  'manage_discounts',
  'manage_gift_card',
  'manage_menus',
  'manage_orders',
  'manage_orders_import',
  'manage_pages',
  'manage_page_types_and_attributes',
  'handle_payments',
  'manage_plugins',
  'manage_products',
  'manage_product_types_and_attributes',
  'manage_shipping',
  'manage_settings',
  'manage_translations',
] as const;

/** `saleor:<codename>` for every Saleor permission, plus `saleor:staff`. */
export const SALEOR_SCOPES: readonly string[] = [
  ...SALEOR_PERMISSION_CODENAMES.map((c) => `saleor:${c}`),
  'saleor:staff',
];

export interface TestAccount {
  sub: string;
  email?: string;
  email_verified?: boolean;
  given_name?: string;
  family_name?: string;
  /** Released with scope `profile` as claim `permissions`. */
  permissions?: string[];
  /** Released with scope `profile` as claim `groups`. */
  groups?: string[];
  /**
   * The scopes this account may be granted among those the option governs: the `saleor:*`
   * scopes ({@link SALEOR_SCOPES}) and `extraScopes`. Absent: every requested scope is granted
   * (the dev consent's behaviour, unchanged). Present:
   * - a requested governed scope is granted only when listed here; the others are recorded in
   *   the grant as rejected (a partial consent: the provider does not ask again for them);
   * - a listed scope that is in `extraScopes` but is not a `saleor:*` permission/staff scope is
   *   granted even when not requested (providers that add scopes of their own), e.g. a
   *   near-miss such as `saleor:staffing`;
   * - `openid`, `email`, `profile`, `offline_access` are not affected.
   * Read when the grant and the authorization code are saved, so a change applies from the
   * next login (a refresh keeps the scope of its login).
   */
  scopes?: string[];
}

export interface TestClient {
  client_id: string;
  /** Ignored for `token_endpoint_auth_method: 'none'`. */
  client_secret: string;
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
  backchannel_logout_uri?: string;
  backchannel_logout_session_required?: boolean;
  grant_types?: string[];
  response_types?: string[];
  /** e.g. 'client_secret_jwt' or 'private_key_jwt' (with `jwks_uri` or `jwks`). */
  token_endpoint_auth_method?: string;
  id_token_signed_response_alg?: string;
  /** Where the provider reads the client's public keys (private_key_jwt). */
  jwks_uri?: string;
  /** The client's public keys, inline (private_key_jwt without a jwks_uri). */
  jwks?: { keys: JWK[] };
  /** The only alg accepted for the client's assertions (client_secret_jwt, private_key_jwt). */
  token_endpoint_auth_signing_alg?: string;
}

export interface StartIdpOptions {
  clients: TestClient[];
  accounts: TestAccount[];
  /** 0 or absent = a random free port (kept across stop()/start()). */
  port?: number;
  /** Private JWKs (signing keys); the first one of an alg signs. Default: one fresh RS256 key. */
  keys?: JWK[];
  /**
   * Format of access tokens issued for a `resource` (RFC 8707). Default `'jwt'`. Tokens
   * without a resource are always opaque (that is oidc-provider's model).
   */
  accessTokenFormat?: 'opaque' | 'jwt';
  /** Default 86400. */
  refreshTokenTtlSeconds?: number;
  /** More scopes the provider accepts (no claims attached; also allowed on resource servers). */
  extraScopes?: string[];
}

/** Result of {@link TestIdp.authorize}: the query of the final redirect to the client. */
export interface AuthorizeResult {
  code?: string;
  state?: string;
  iss?: string;
  error?: string;
  error_description?: string;
  /**
   * The full URL the browser would land on (redirect_uri + query), ready to hand to the
   * server under test's callback. Empty string when the IdP showed an error page instead of
   * redirecting (then `error`/`error_description` come from that page).
   */
  redirectUri: string;
  /** Every parameter of the final redirect (or form_post body). */
  params: Record<string, string>;
  /** The browser's cookie jar at the IdP (holds the IdP session; pass it to endSession()). */
  cookies: CookieJar;
}

/** What {@link TestIdp.endSession} observed: which clients' back-channel POSTs succeeded. */
export interface EndSessionResult {
  /** client_ids whose backchannel_logout_uri answered 200/204. */
  delivered: string[];
  /** client_ids whose back-channel POST failed (network error or other status). */
  failed: Array<{ clientId: string; error: string }>;
}

export interface TestIdp {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  readonly issuer: string;
  readonly port: number;
  /** The current oidc-provider instance (a new one after rotateKeys()). */
  readonly provider: Provider;
  /** Mutable: tests may change claims between logins (read at every findAccount). */
  accounts: Map<string, TestAccount>;
  /** Errors oidc-provider reported through its `server_error` event (should stay empty). */
  readonly serverErrors: Error[];
  /**
   * Drives the real dev interactions (login form, consent form) over HTTP with a cookie jar,
   * starting at `authorizationUrl` (as built by the server under test), following redirects
   * until one leaves the IdP, and returns that redirect's query: code, state, iss (or error,
   * error_description). `login` = account sub (the dev login accepts any password); it
   * must be in `accounts` (throws otherwise: oidc-provider would answer server_error). An
   * authorization request the IdP rejects without redirecting (bad client_id/redirect_uri)
   * resolves with `error`/`error_description` from its error page and `redirectUri: ''`.
   * `consent: false` aborts at the consent page (→ error=access_denied). `cookies`: reuse a
   * jar from an earlier authorize() (existing IdP session: no login form — SSO; and no consent
   * form when everything was already granted). The returned jar keeps the IdP session for a
   * later endSession().
   */
  authorize(
    authorizationUrl: string | URL,
    opts: { login: string; consent?: boolean; cookies?: CookieJar },
  ): Promise<AuthorizeResult>;
  /**
   * Replace the signing key (provider key rotation): a fresh RS256 key with a new kid becomes
   * the signing key for id_tokens and JWT access tokens, and /jwks serves the new set. With
   * `keepOld`, the previous keys stay in the set (after the new one: still published, no
   * longer used to sign). Implemented by building a new Provider with the same configuration
   * and the same in-memory storage and swapping it in behind the same listening socket, so
   * sessions, grants and refresh tokens survive.
   */
  rotateKeys(opts?: { keepOld?: boolean }): Promise<{ kid: string }>;
  /** Stop listening and drop open connections (provider down mid-run: connection refused). */
  stop(): Promise<void>;
  /** Listen again on the same port (state kept). */
  start(): Promise<void>;
  /**
   * HTTP requests received per path (pathname without query, e.g. '/jwks', '/token', '/me',
   * '/token/introspection', '/.well-known/openid-configuration'), including those made by
   * authorize()/endSession() (they play the browser), excluding issueAccessToken()'s own
   * client_credentials request.
   */
  counts(): Record<string, number>;
  resetCounts(): void;
  /**
   * Back-channel logout: RP-initiated logout through /session/end with the browser jar (no
   * id_token_hint), confirming the logout form with `logout=yes`, so the provider ends the
   * whole IdP session and POSTs a logout_token to the backchannel_logout_uri of every client
   * that has an authorization in that session. oidc-provider awaits those POSTs before it
   * answers the confirm request, so they have completed when this resolves. A failing
   * receiver does not throw: see the result.
   */
  endSession(cookies: CookieJar): Promise<EndSessionResult>;
  /**
   * Mint an access token for resource-server tests.
   * - without `sub`, and the client allows the `client_credentials` grant: a real
   *   client_credentials request to /token (client_secret_basic; `resource` sent when given;
   *   not counted in counts()). `sub` of a JWT is then the client_id.
   * - with `sub` (or a client without client_credentials): through the provider's models — a
   *   Grant (scope granted as OIDC scope, and as resource scope when `resource` is given) plus
   *   `new provider.AccessToken({ accountId: sub, client, grantId, scope, resourceServer })`
   *   `.save()`; the opaque form is introspectable and usable at /me (if scope has openid).
   * `format: 'jwt'` needs `resource` (JWT access tokens always have an audience):
   * aud = resource, signed RS256 with the current key (typ at+jwt). `format: 'opaque'` with a
   * resource gives an opaque token whose introspection shows aud = resource.
   */
  issueAccessToken(opts: {
    sub?: string;
    clientId: string;
    scope: string;
    resource?: string;
    format: 'jwt' | 'opaque';
  }): Promise<string>;
  /** Stop listening for good. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Cookie jar (enough of RFC 6265 for one host: name + path, expiry deletion)
// ---------------------------------------------------------------------------------------------

interface StoredCookie {
  name: string;
  value: string;
  path: string;
}

/** A minimal browser cookie jar for a single host (the IdP). */
export class CookieJar {
  readonly #cookies = new Map<string, StoredCookie>();

  /** Store the Set-Cookie headers of `response`, received for `url`. */
  store(response: Response, url: URL): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = defaultCookiePath(url.pathname);
      let expired = false;
      for (const attr of attrs) {
        const i = attr.indexOf('=');
        const key = (i < 0 ? attr : attr.slice(0, i)).trim().toLowerCase();
        const val = i < 0 ? '' : attr.slice(i + 1).trim();
        if (key === 'path' && val.startsWith('/')) path = val;
        else if (key === 'max-age' && Number(val) <= 0) expired = true;
        else if (key === 'expires' && Date.parse(val) <= Date.now()) expired = true;
      }
      const id = `${name}\n${path}`;
      if (expired || value === '') this.#cookies.delete(id);
      else this.#cookies.set(id, { name, value, path });
    }
  }

  /** The Cookie header value for a request to `url` ('' when none). */
  header(url: URL): string {
    return [...this.#cookies.values()]
      .filter((c) => pathMatches(c.path, url.pathname))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  /** Value of the cookie `name` (the one with the longest path when several). */
  get(name: string): string | undefined {
    return [...this.#cookies.values()]
      .filter((c) => c.name === name)
      .sort((a, b) => b.path.length - a.path.length)[0]?.value;
  }

  /** All cookies (copies). */
  all(): StoredCookie[] {
    return [...this.#cookies.values()].map((c) => ({ ...c }));
  }

  clone(): CookieJar {
    const copy = new CookieJar();
    for (const [k, v] of this.#cookies) copy.#cookies.set(k, { ...v });
    return copy;
  }
}

function defaultCookiePath(requestPath: string): string {
  const i = requestPath.lastIndexOf('/');
  return i <= 0 ? '/' : requestPath.slice(0, i);
}

function pathMatches(cookiePath: string, requestPath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

// ---------------------------------------------------------------------------------------------
// HTML form scraping (the dev interaction, logout and form_post pages)
// ---------------------------------------------------------------------------------------------

interface HtmlForm {
  action: string;
  method: string;
  fields: Record<string, string>;
}

function decodeHtml(s: string): string {
  return s
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag);
  if (!m) return undefined;
  return decodeHtml(m[1] ?? m[2] ?? m[3] ?? '');
}

function parseForms(html: string, base: URL): HtmlForm[] {
  const forms: HtmlForm[] = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const open = m[1] ?? '';
    const inner = m[2] ?? '';
    const fields: Record<string, string> = {};
    for (const input of inner.matchAll(/<input\b[^>]*>/gi)) {
      const name = attr(input[0], 'name');
      if (name) fields[name] = attr(input[0], 'value') ?? '';
    }
    forms.push({
      action: new URL(attr(` ${open}`, 'action') ?? base.href, base).href,
      method: (attr(` ${open}`, 'method') ?? 'get').toLowerCase(),
      fields,
    });
  }
  return forms;
}

/** error / error_description from oidc-provider's default error page (renderError). */
function parseErrorPage(html: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of html.matchAll(/<pre><strong>([^<]+)<\/strong>:\s*([\s\S]*?)<\/pre>/g)) {
    out[decodeHtml(m[1] ?? '')] = decodeHtml(m[2] ?? '');
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// In-memory adapter owned by one TestIdp
// ---------------------------------------------------------------------------------------------

type Payload = Record<string, any>;
interface Entry {
  value: unknown;
  expiresAt: number; // epoch ms; Infinity = never
}

const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

class Store {
  readonly #map = new Map<string, Entry>();
  get<T = unknown>(key: string): T | undefined {
    const e = this.#map.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) {
      this.#map.delete(key);
      return undefined;
    }
    return e.value as T;
  }
  set(key: string, value: unknown, expiresInSeconds?: number): void {
    const expiresAt = typeof expiresInSeconds === 'number' ? Date.now() + expiresInSeconds * 1000 : Infinity;
    this.#map.set(key, { value, expiresAt });
  }
  delete(key: string): void {
    this.#map.delete(key);
  }
}

/** Lets startIdp adjust a payload before the adapter stores it (per-account scopes). */
type BeforeSave = (model: string, payload: Payload) => void;

function adapterFactory(store: Store, beforeSave?: BeforeSave) {
  return class TestAdapter {
    readonly model: string;
    constructor(model: string) {
      this.model = model;
    }
    key(id: string): string {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      const key = this.key(id);
      beforeSave?.(this.model, payload);
      store.set(key, payload, expiresIn);
      if (this.model === 'Session' && payload['uid']) store.set(`sessionUid:${payload['uid']}`, id, expiresIn);
      if (payload['userCode']) store.set(`userCode:${payload['userCode']}`, id, expiresIn);
      const grantId = payload['grantId'];
      if (GRANTABLE.has(this.model) && typeof grantId === 'string') {
        const members = store.get<Set<string>>(`grant:${grantId}`) ?? new Set<string>();
        members.add(key);
        store.set(`grant:${grantId}`, members);
      }
    }
    async find(id: string): Promise<Payload | undefined> {
      return store.get<Payload>(this.key(id));
    }
    async findByUid(uid: string): Promise<Payload | undefined> {
      const id = store.get<string>(`sessionUid:${uid}`);
      return id === undefined ? undefined : this.find(id);
    }
    async findByUserCode(userCode: string): Promise<Payload | undefined> {
      const id = store.get<string>(`userCode:${userCode}`);
      return id === undefined ? undefined : this.find(id);
    }
    async consume(id: string): Promise<void> {
      const payload = store.get<Payload>(this.key(id));
      if (payload) payload['consumed'] = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string): Promise<void> {
      store.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      const members = store.get<Set<string>>(`grant:${grantId}`);
      for (const key of members ?? []) store.delete(key);
      store.delete(`grant:${grantId}`);
    }
  };
}

// ---------------------------------------------------------------------------------------------
// startIdp
// ---------------------------------------------------------------------------------------------

/** Header set by the harness on its own requests: not counted, and selects the token format. */
const INTERNAL_HEADER = 'x-test-idp-internal';
const FORMAT_HEADER = 'x-test-idp-access-token-format';
const COOKIE_KEYS = ['test-idp-cookie-key-0123456789abcdef', 'test-idp-cookie-key-fedcba9876543210'];

interface PolicyClient {
  clientId: string;
  clientAuthMethod: string;
}

async function newSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

function clientMetadata(c: TestClient): Record<string, unknown> {
  const isPublic = c.token_endpoint_auth_method === 'none';
  const meta: Record<string, unknown> = {
    client_id: c.client_id,
    redirect_uris: c.redirect_uris,
    response_types: c.response_types ?? ['code'],
    grant_types:
      c.grant_types ?? (isPublic ? ['authorization_code', 'refresh_token'] : ['authorization_code', 'refresh_token', 'client_credentials']),
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
  };
  if (!isPublic) meta['client_secret'] = c.client_secret;
  if (c.post_logout_redirect_uris) meta['post_logout_redirect_uris'] = c.post_logout_redirect_uris;
  if (c.backchannel_logout_uri) meta['backchannel_logout_uri'] = c.backchannel_logout_uri;
  if (c.backchannel_logout_session_required !== undefined)
    meta['backchannel_logout_session_required'] = c.backchannel_logout_session_required;
  if (c.id_token_signed_response_alg) meta['id_token_signed_response_alg'] = c.id_token_signed_response_alg;
  if (c.jwks_uri) meta['jwks_uri'] = c.jwks_uri;
  if (c.jwks) meta['jwks'] = c.jwks;
  if (c.token_endpoint_auth_signing_alg) meta['token_endpoint_auth_signing_alg'] = c.token_endpoint_auth_signing_alg;
  return meta;
}

export async function startIdp(options: StartIdpOptions): Promise<TestIdp> {
  const accounts = new Map<string, TestAccount>(options.accounts.map((a) => [a.sub, { ...a }]));
  const clients = new Map(options.clients.map((c) => [c.client_id, c]));
  const store = new Store();
  const extraScopes = options.extraScopes ?? [];
  const Adapter = adapterFactory(store, (model, payload) => restrictScopes(model, payload));
  const resourceScopes = [...new Set([...SALEOR_SCOPES, ...extraScopes])].join(' ');
  const defaultFormat = options.accessTokenFormat ?? 'jwt';
  const refreshTtl = options.refreshTokenTtlSeconds ?? 86_400;
  const serverErrors: Error[] = [];
  let keys: JWK[] = options.keys?.length ? options.keys.map((k) => ({ ...k })) : [await newSigningKey()];
  const requestCounts: Record<string, number> = {};

  // TestAccount.scopes: which governed scopes (saleor:* and extraScopes) an account gets.
  const governedScopes = new Set<string>([...SALEOR_SCOPES, ...extraScopes]);
  const saleorScopes = new Set<string>(SALEOR_SCOPES);
  const splitScope = (value: unknown) => (typeof value === 'string' ? value.split(' ').filter(Boolean) : []);
  function restrictScopes(model: string, payload: Payload): void {
    if (model !== 'Grant' && model !== 'AuthorizationCode') return;
    const accountId = payload['accountId'];
    const listed = typeof accountId === 'string' ? accounts.get(accountId)?.scopes : undefined;
    if (!listed) return;
    const allowed = new Set(listed);
    // Granted unasked: listed extra scopes that are not Saleor's own.
    const unasked = listed.filter((scope) => governedScopes.has(scope) && !saleorScopes.has(scope));
    const restrict = (scopes: string[]) => {
      const kept = scopes.filter((scope) => !governedScopes.has(scope) || allowed.has(scope));
      for (const scope of unasked) if (!kept.includes(scope)) kept.push(scope);
      return kept;
    };
    if (model === 'AuthorizationCode') {
      payload['scope'] = restrict(splitScope(payload['scope'])).join(' ');
      return;
    }
    const openid = (payload['openid'] ?? {}) as { scope?: string; claims?: string[] };
    const granted = splitScope(openid.scope);
    const refused = granted.filter((scope) => governedScopes.has(scope) && !allowed.has(scope));
    payload['openid'] = { ...openid, scope: restrict(granted).join(' ') };
    if (refused.length) {
      const rejected = (payload['rejected'] ?? {}) as { openid?: { scope?: string; claims?: string[] } };
      const already = splitScope(rejected.openid?.scope);
      payload['rejected'] = {
        ...rejected,
        openid: { ...rejected.openid, scope: [...new Set([...already, ...refused])].join(' ') },
      };
    }
  }

  const resourceServerInfo = (resource: string, format: 'jwt' | 'opaque') => ({
    scope: resourceScopes,
    audience: resource,
    accessTokenFormat: format,
    ...(format === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
  });

  // The HTTP server is created first (port 0 → random) so the issuer is known to the provider.
  let handler: ((req: http.IncomingMessage, res: http.ServerResponse) => void) | undefined;
  const server = http.createServer((req, res) => {
    if (!req.headers[INTERNAL_HEADER]) {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      requestCounts[path] = (requestCounts[path] ?? 0) + 1;
    }
    if (!handler) {
      res.statusCode = 503;
      res.end();
      return;
    }
    handler(req, res);
  });
  server.keepAliveTimeout = 1000;
  let port = options.port ?? 0;
  let listening = false;

  async function listen(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error) => reject(err);
          server.once('error', onError);
          server.listen(port, '127.0.0.1', () => {
            server.off('error', onError);
            resolve();
          });
        });
        break;
      } catch (err) {
        // The same port right after stop(): retry briefly (TIME_WAIT does not block listen on
        // Linux, but another test's socket might hold it for a moment).
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    port = (server.address() as AddressInfo).port;
    listening = true;
  }

  await listen();
  const issuer = `http://127.0.0.1:${port}`;

  function buildProvider(jwks: JWK[]): Provider {
    const configuration = {
      adapter: Adapter,
      clients: options.clients.map(clientMetadata),
      jwks: { keys: jwks },
      cookies: { keys: COOKIE_KEYS },
      findAccount: async (_ctx: unknown, sub: string) => {
        if (!accounts.has(sub)) return undefined;
        return {
          accountId: sub,
          // Read at call time: tests may mutate `accounts` between logins.
          async claims() {
            const a = accounts.get(sub);
            if (!a) return { sub };
            const name = [a.given_name, a.family_name].filter(Boolean).join(' ');
            return {
              sub,
              email: a.email,
              email_verified: a.email_verified,
              given_name: a.given_name,
              family_name: a.family_name,
              name: name || undefined,
              permissions: a.permissions,
              groups: a.groups,
            };
          },
        };
      },
      claims: {
        openid: ['sub'],
        email: ['email', 'email_verified'],
        profile: ['given_name', 'family_name', 'name', 'permissions', 'groups'],
      },
      scopes: ['openid', 'offline_access', 'email', 'profile', ...SALEOR_SCOPES, ...extraScopes],
      conformIdTokenClaims: false,
      pkce: { required: () => true },
      features: {
        devInteractions: { enabled: true },
        // allowedPolicy: oidc-provider's default rules, minus its "you SHOULD change" notices.
        revocation: {
          enabled: true,
          allowedPolicy: async (_ctx: unknown, client: PolicyClient, token: { clientId: string }) => {
            if (token.clientId === client.clientId) return true;
            if (client.clientAuthMethod === 'none') return false;
            throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
          },
        },
        introspection: {
          enabled: true,
          // Any confidential client may introspect any token (resource-server use).
          allowedPolicy: async (_ctx: unknown, client: PolicyClient, token: { clientId: string }) =>
            client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
        },
        clientCredentials: { enabled: true },
        backchannelLogout: { enabled: true },
        rpInitiatedLogout: {
          enabled: true,
          // Same page as the default (the form id="op.logoutForm" with the xsrf field, and the
          // "logout=yes" button outside it), without the default's notice.
          logoutSource: async (ctx: { body: unknown }, form: string) => {
            ctx.body = `<!DOCTYPE html><html><head><title>Logout Request</title></head><body>${form}<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button><button type="submit" form="op.logoutForm">No, stay signed in</button></body></html>`;
          },
        },
        resourceIndicators: {
          enabled: true,
          defaultResource: async (_ctx: unknown, _client: unknown, oneOf?: string[]) => oneOf,
          useGrantedResource: async () => false,
          getResourceServerInfo: async (ctx: { get(h: string): string }, resource: string) => {
            const override = ctx.get(FORMAT_HEADER);
            const format = override === 'jwt' || override === 'opaque' ? override : defaultFormat;
            return resourceServerInfo(resource, format);
          },
        },
      },
      issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }, code: { scopes: Set<string> }) =>
        client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
      rotateRefreshToken: true,
      ttl: {
        AccessToken: 600,
        ClientCredentials: 600,
        IdToken: 600,
        AuthorizationCode: 60,
        RefreshToken: refreshTtl,
        Grant: Math.max(refreshTtl, 86_400) * 2,
        Interaction: 3600,
        Session: Math.max(refreshTtl, 86_400) * 2,
      },
      // oidc-provider puts an SSRF-guarding undici dispatcher on outgoing requests that
      // destroys sockets to special-use addresses (127.0.0.1 included): drop it for tests.
      fetch: (url: string | URL, init: RequestInit & { dispatcher?: unknown }) => {
        const { dispatcher: _ssrfGuard, ...rest } = init;
        return globalThis.fetch(url, rest);
      },
    };
    const provider = new Provider(issuer, configuration);
    provider.on('server_error', (_ctx: unknown, err: Error) => {
      serverErrors.push(err);
    });
    return provider;
  }

  let provider = buildProvider(keys);
  handler = provider.callback();

  async function stop(): Promise<void> {
    if (!listening) return;
    listening = false;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async function send(
    url: URL,
    jar: CookieJar,
    init: { method?: 'GET' | 'POST'; form?: Record<string, string> } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    const cookie = jar.header(url);
    if (cookie) headers['cookie'] = cookie;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const res = await fetch(url, { method: init.method ?? 'GET', headers, body, redirect: 'manual' });
    jar.store(res, url);
    return res;
  }

  const issuerOrigin = new URL(issuer).origin;

  const idp: TestIdp = {
    issuer,
    get port() {
      return port;
    },
    get provider() {
      return provider;
    },
    accounts,
    serverErrors,

    async authorize(authorizationUrl, opts) {
      if (!accounts.has(opts.login)) {
        // oidc-provider would accept the dev login and then fail with a server_error.
        throw new Error(`authorize(): unknown account "${opts.login}" (accounts: ${[...accounts.keys()].join(', ')})`);
      }
      const jar = opts.cookies ?? new CookieJar();
      const consent = opts.consent ?? true;
      let url = new URL(authorizationUrl);
      let method: 'GET' | 'POST' = 'GET';
      let form: Record<string, string> | undefined;
      let loginSubmitted = false;

      const finish = (target: URL, params: Record<string, string>, redirectUri: string): AuthorizeResult => {
        void target;
        const result: AuthorizeResult = { redirectUri, params, cookies: jar };
        for (const k of ['code', 'state', 'iss', 'error', 'error_description'] as const) {
          if (params[k] !== undefined) result[k] = params[k];
        }
        return result;
      };

      for (let step = 0; step < 30; step++) {
        const res = await send(url, jar, form ? { method, form } : { method });
        if (res.status >= 300 && res.status < 400) {
          await res.body?.cancel();
          const location = res.headers.get('location');
          if (!location) throw new Error(`IdP answered ${res.status} without Location at ${url.href}`);
          const next = new URL(location, url);
          if (next.origin !== issuerOrigin) {
            const params: Record<string, string> = Object.fromEntries(next.searchParams);
            // response_mode=fragment: parameters are in the hash.
            if (next.hash.length > 1) Object.assign(params, Object.fromEntries(new URLSearchParams(next.hash.slice(1))));
            return finish(next, params, next.href);
          }
          url = next;
          method = 'GET';
          form = undefined;
          continue;
        }
        const html = await res.text();
        const forms = parseForms(html, url);
        // response_mode=form_post: an auto-submitting form aimed at the client.
        const external = forms.find((f) => new URL(f.action).origin !== issuerOrigin);
        if (external) return finish(new URL(external.action), external.fields, external.action);
        const page = forms.find((f) => f.fields['prompt'] === 'login' || f.fields['prompt'] === 'consent');
        if (!page) {
          const err = parseErrorPage(html);
          if (err['error']) {
            const params: Record<string, string> = { error: err['error'] };
            if (err['error_description']) params['error_description'] = err['error_description'];
            return finish(url, params, '');
          }
          throw new Error(`unexpected IdP page (HTTP ${res.status}) at ${url.href}: ${html.slice(0, 500)}`);
        }
        if (page.fields['prompt'] === 'login') {
          if (loginSubmitted) {
            throw new Error(`IdP asked for the login again after "${opts.login}" (unknown account? accounts: ${[...accounts.keys()].join(', ')})`);
          }
          loginSubmitted = true;
          url = new URL(page.action);
          method = 'POST';
          form = { ...page.fields, login: opts.login, password: 'any-password' };
        } else if (consent) {
          url = new URL(page.action);
          method = 'POST';
          form = { ...page.fields };
        } else {
          // The dev consent page's "Cancel" link: /interaction/:uid/abort → access_denied.
          url = new URL(`${page.action.replace(/\/$/, '')}/abort`);
          method = 'GET';
          form = undefined;
        }
      }
      throw new Error('authorize(): too many steps (redirect loop?)');
    },

    async rotateKeys(opts = {}) {
      const key = await newSigningKey();
      keys = opts.keepOld ? [key, ...keys] : [key];
      provider = buildProvider(keys);
      handler = provider.callback();
      return { kid: key.kid as string };
    },

    stop,

    async start() {
      if (listening) return;
      await listen();
    },

    counts() {
      return { ...requestCounts };
    },

    resetCounts() {
      for (const k of Object.keys(requestCounts)) delete requestCounts[k];
    },

    async endSession(cookies) {
      const delivered: string[] = [];
      const failed: EndSessionResult['failed'] = [];
      const current = provider;
      const onSuccess = (_ctx: unknown, client: { clientId: string }) => {
        delivered.push(client.clientId);
      };
      const onError = (_ctx: unknown, err: Error, client: { clientId: string }) => {
        failed.push({ clientId: client.clientId, error: err.message });
      };
      current.on('backchannel.success', onSuccess);
      current.on('backchannel.error', onError);
      try {
        const endUrl = new URL('/session/end', issuer);
        const res = await send(endUrl, cookies);
        const html = await res.text();
        if (res.status !== 200) throw new Error(`end_session answered ${res.status}: ${html.slice(0, 300)}`);
        const page = parseForms(html, endUrl)[0];
        if (!page?.fields['xsrf']) throw new Error(`end_session page has no logout form: ${html.slice(0, 300)}`);
        const confirmUrl = new URL(page.action);
        const confirm = await send(confirmUrl, cookies, { method: 'POST', form: { ...page.fields, logout: 'yes' } });
        await confirm.body?.cancel();
        if (confirm.status !== 303 && confirm.status !== 302) {
          throw new Error(`end_session confirm answered ${confirm.status}`);
        }
      } finally {
        current.off('backchannel.success', onSuccess);
        current.off('backchannel.error', onError);
      }
      return { delivered, failed };
    },

    async issueAccessToken(opts) {
      const client = clients.get(opts.clientId);
      if (!client) throw new Error(`issueAccessToken: unknown client ${opts.clientId}`);
      if (opts.format === 'jwt' && !opts.resource) {
        throw new Error('issueAccessToken: format "jwt" needs a resource (JWT access tokens carry aud = resource)');
      }
      const grantTypes = clientMetadata(client)['grant_types'] as string[];

      if (opts.sub === undefined && grantTypes.includes('client_credentials')) {
        const body = new URLSearchParams({ grant_type: 'client_credentials', scope: opts.scope });
        if (opts.resource) body.set('resource', opts.resource);
        const basic = Buffer.from(
          `${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`,
        ).toString('base64');
        const res = await fetch(new URL('/token', issuer), {
          method: 'POST',
          headers: {
            authorization: `Basic ${basic}`,
            'content-type': 'application/x-www-form-urlencoded',
            [INTERNAL_HEADER]: '1',
            [FORMAT_HEADER]: opts.format,
          },
          body,
        });
        const json = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
        if (!res.ok || !json.access_token) {
          throw new Error(`client_credentials failed: ${res.status} ${json.error ?? ''} ${json.error_description ?? ''}`);
        }
        return json.access_token;
      }

      // Through the provider's models.
      const p = provider;
      const clientModel = await p.Client.find(opts.clientId);
      const grant = new p.Grant({ accountId: opts.sub, clientId: opts.clientId });
      grant.addOIDCScope(opts.scope);
      if (opts.resource) grant.addResourceScope(opts.resource, opts.scope);
      const grantId: string = await grant.save();
      const token = new p.AccessToken({
        accountId: opts.sub,
        client: clientModel,
        grantId,
        gty: 'authorization_code',
        scope: opts.scope,
      });
      if (opts.resource) {
        const info = resourceServerInfo(opts.resource, opts.format);
        token.resourceServer = new p.ResourceServer(opts.resource, info);
        // Like oidc-provider's grants: only the scopes the resource server knows.
        const allowed = new Set(info.scope.split(' '));
        token.scope = opts.scope.split(' ').filter((s) => allowed.has(s)).join(' ') || undefined;
      }
      return (await token.save()) as string;
    },

    async close() {
      await stop();
      handler = undefined;
    },
  };
  return idp;
}
