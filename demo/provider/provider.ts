/**
 * The demo OpenID provider: oidc-provider 9.x on its own port, development only (the demo
 * starts it; `npm start` never does). What it offers:
 * - two accounts (./accounts.ts), a login form of its own and no consent screen
 *   (./interactions.ts);
 * - the storefront's client (authorization code + PKCE, refresh tokens through
 *   `offline_access`, RP-initiated logout back to the storefront);
 * - a service client (client credentials, RFC 6749 §4.4) whose tokens, requested with an RFC
 *   8707 `resource` equal to the API audience, are JWTs (RFC 9068) with that `aud`: the API
 *   accepts them as bearer tokens (README, "resource server").
 * Keys, cookie keys and storage are made fresh at every start and kept in memory.
 */
import http from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import { SALEOR_SCOPES, findAccountBySub } from './accounts.ts';
import { handleInteraction, interactionUrl } from './interactions.ts';
import type { OidcProvider, OidcProviderConstructor } from './oidc-types.ts';
import { errorPage, loggedOutPage, logoutPage } from './pages.ts';
import { adapterFor, DemoStore } from './store.ts';
import { close, listen } from '../net.ts';

export interface DemoClient {
  clientId: string;
  clientSecret: string;
}

export interface DemoProviderOptions {
  /** 0: any free port. */
  port: number;
  /** Where the provider sends the browser back with the code (the storefront's callback). */
  redirectUri: string;
  /** Where the provider sends the browser after logout (the storefront). */
  postLogoutRedirectUri: string;
  /** The API audience: the only accepted `resource`, and the `aud` of service tokens. */
  audience: string;
  /** Scope the service client may ask for. */
  serviceScope: string;
  /** Called with errors oidc-provider reports as server_error. */
  onError?: (error: Error) => void;
}

export interface DemoProvider {
  /** `http://localhost:<port>`, no trailing slash. */
  issuer: string;
  port: number;
  storefrontClient: DemoClient;
  serviceClient: DemoClient;
  close(): Promise<void>;
}

/**
 * oidc-provider prints "Unsupported runtime" on Node 20 when it is loaded, although it works
 * there (toolchain.md). The demo hides that one line so a new user is not alarmed.
 */
async function loadOidcProvider(): Promise<{ Provider: OidcProviderConstructor; InvalidTarget: new () => Error }> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!String(args[0]).includes('Unsupported runtime')) warn(...args);
  };
  try {
    // @ts-ignore -- the package has no types; ./oidc-types.ts types what the demo uses.
    const mod = await import('oidc-provider');
    return { Provider: mod.default as unknown as OidcProviderConstructor, InvalidTarget: mod.errors.InvalidTarget };
  } finally {
    console.warn = warn;
  }
}

function secret(): string {
  return randomBytes(24).toString('base64url');
}

export async function startDemoProvider(options: DemoProviderOptions): Promise<DemoProvider> {
  const { Provider, InvalidTarget } = await loadOidcProvider();
  let handler: ((req: http.IncomingMessage, res: http.ServerResponse) => void) | undefined;
  let provider: OidcProvider | undefined;
  const server = http.createServer((req, res) => {
    if (!provider || !handler) {
      res.writeHead(503).end();
      return;
    }
    if (req.url === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const current = provider;
    const callback = handler;
    handleInteraction(current, req, res).then(
      (handled) => {
        if (!handled) callback(req, res);
      },
      (e: unknown) => {
        options.onError?.(e as Error);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      },
    );
  });
  server.keepAliveTimeout = 5000;
  // The port first: the issuer names it.
  const port = await listen(server, options.port, 'demo OpenID provider');
  const issuer = `http://localhost:${port}`;

  const storefrontClient: DemoClient = { clientId: 'demo-storefront', clientSecret: secret() };
  const serviceClient: DemoClient = { clientId: 'demo-service', clientSecret: secret() };
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };

  const configuration: Record<string, unknown> = {
    adapter: adapterFor(new DemoStore()),
    clients: [
      {
        client_id: storefrontClient.clientId,
        client_secret: storefrontClient.clientSecret,
        client_name: 'Demo storefront',
        redirect_uris: [options.redirectUri],
        post_logout_redirect_uris: [options.postLogoutRedirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: serviceClient.clientId,
        client_secret: serviceClient.clientSecret,
        client_name: 'Demo service',
        redirect_uris: [],
        response_types: [],
        grant_types: ['client_credentials'],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: options.serviceScope,
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [secret()] },
    findAccount: async (_ctx: unknown, sub: string) => {
      const account = findAccountBySub(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        claims: async () => ({
          sub,
          email: account.email,
          email_verified: true,
          given_name: account.givenName,
          family_name: account.familyName,
          name: `${account.givenName} ${account.familyName}`,
        }),
      };
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'given_name', 'family_name'] },
    scopes: ['openid', 'offline_access', 'email', 'profile', ...SALEOR_SCOPES],
    // The email in the id_token too (the API also reads userinfo).
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    interactions: { url: async (_ctx: unknown, interaction: { uid: string }) => interactionUrl(interaction.uid) },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: { body: unknown }, form: string) => {
          ctx.body = logoutPage(form);
        },
        postLogoutSuccessSource: async (ctx: { body: unknown }) => {
          ctx.body = loggedOutPage();
        },
      },
      resourceIndicators: {
        enabled: true,
        // Logins name no resource: their access tokens stay opaque, for userinfo.
        defaultResource: async () => undefined,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx: unknown, resource: string) => {
          if (resource !== options.audience) throw new InvalidTarget();
          return {
            scope: SALEOR_SCOPES.join(' '),
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 300,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // No browser calls the provider's endpoints with fetch; nothing needs CORS.
    clientBasedCORS: () => false,
    renderError: async (ctx: { type: string; body: unknown }, out: Record<string, unknown>) => {
      ctx.type = 'html';
      ctx.body = errorPage(out);
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      ClientCredentials: 300,
      IdToken: 600,
      RefreshToken: 86_400,
      Interaction: 600,
      Session: 86_400,
      Grant: 86_400,
    },
  };

  try {
    provider = new Provider(issuer, configuration);
  } catch (e) {
    await close(server);
    throw e;
  }
  provider.on('server_error', (_ctx: unknown, error: Error) => options.onError?.(error));
  handler = provider.callback();

  return {
    issuer,
    port,
    storefrontClient,
    serviceClient,
    close: () => close(server),
  };
}
