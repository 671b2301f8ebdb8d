/**
 * `startDemo`: everything `npm run demo` runs, in this process, on loopback:
 * 1. the storefront's web server (its URL is needed by the provider and the API);
 * 2. the demo OpenID provider (./provider), with the storefront and service clients;
 * 3. the API server (src/app.ts) on a fresh embedded database, its default OpenID Connect
 *    connection configured against the provider and active;
 * 4. the storefront script, bundled with esbuild, served by (1).
 * The browser test (test/e2e/browser-demo.test.ts) starts it with random ports.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LogLevel } from '../src/config.ts';
import type { RunningServer } from '../src/app.ts';
import { apiPublicUrl, configureConnection, startDemoApi } from './api.ts';
import { freePort } from './net.ts';
import { DEMO_ACCOUNTS, DEMO_PASSWORD } from './provider/accounts.ts';
import { startDemoProvider, type DemoProvider } from './provider/provider.ts';
import { bundleStorefront } from './storefront/bundle.ts';
import { createServiceCaller, SERVICE_SCOPE } from './storefront/service-call.ts';
import { startStorefrontServer, type StorefrontServer } from './storefront/server.ts';

export const DEFAULT_PORTS = { api: 8000, provider: 8001, storefront: 3000 } as const;

export interface DemoOptions {
  /** 0: any free port. Defaults: {@link DEFAULT_PORTS}. */
  apiPort?: number;
  providerPort?: number;
  storefrontPort?: number;
  /** The embedded database's directory. Default: a fresh temporary one, deleted by stop(). */
  dataDir?: string;
  /** The API server's log level. Default 'warn'. */
  logLevel?: LogLevel;
  /** Where the API server's JSON log lines go. Default: stdout. */
  log?: (line: string) => void;
  /** Errors of the demo provider (oidc-provider's server_error). Default: stderr. */
  onProviderError?: (error: Error) => void;
}

export interface RunningDemo {
  /** The page to open, e.g. http://localhost:3000/ */
  storefrontUrl: string;
  /** The API's GraphQL URL (our token issuer), e.g. http://localhost:8000/graphql/ */
  apiUrl: string;
  /** The demo provider's issuer, e.g. http://localhost:8001 */
  providerUrl: string;
  accounts: ReadonlyArray<{ email: string; description: string }>;
  password: string;
  /** Stops the servers (the API gracefully) and deletes a temporary data directory. */
  stop(): Promise<void>;
}

export async function startDemo(options: DemoOptions = {}): Promise<RunningDemo> {
  const ownDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'saleor-auth-demo-'));
  const cleanups: Array<() => Promise<void>> = [];
  const stop = async () => {
    // Reverse order: the storefront first, the API (and its database) last but one.
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
    if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const storefront: StorefrontServer = await startStorefrontServer(options.storefrontPort ?? DEFAULT_PORTS.storefront);
    cleanups.push(() => storefront.close());
    const storefrontUrl = `${storefront.origin}/`;
    const callbackUrl = `${storefront.origin}/callback`;

    const apiPort = options.apiPort ?? DEFAULT_PORTS.api;
    const resolvedApiPort = apiPort === 0 ? await freePort() : apiPort;
    const apiUrl = `${apiPublicUrl(resolvedApiPort)}/graphql/`;
    // The API's audience: provider tokens meant for the API carry it as `aud`.
    const audience = apiUrl;

    const provider: DemoProvider = await startDemoProvider({
      port: options.providerPort ?? DEFAULT_PORTS.provider,
      redirectUri: callbackUrl,
      postLogoutRedirectUri: storefrontUrl,
      audience,
      serviceScope: SERVICE_SCOPE,
      onError: options.onProviderError ?? ((e) => console.error(`demo provider error: ${e.message}`)),
    });
    cleanups.push(() => provider.close());

    const api: RunningServer = await startDemoApi({
      port: resolvedApiPort,
      dataDir,
      logLevel: options.logLevel ?? 'warn',
      // A temporary database lives as long as this process: so may its secret. A directory of
      // the user's keeps the secret the server generates in it, across restarts.
      ...(ownDataDir ? { secretKey: randomBytes(32).toString('hex') } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
    cleanups.push(async () => {
      await api.shutdown(2000);
    });
    await configureConnection(api, {
      issuer: provider.issuer,
      clientId: provider.storefrontClient.clientId,
      clientSecret: provider.storefrontClient.clientSecret,
      redirectUri: callbackUrl,
      postLogoutRedirectUri: storefrontUrl,
      audience,
    });

    const script = await bundleStorefront({ apiUrl, callbackUrl, homeUrl: storefrontUrl });
    storefront.serve({
      apiUrl,
      script,
      serviceCall: createServiceCaller({
        issuer: provider.issuer,
        clientId: provider.serviceClient.clientId,
        clientSecret: provider.serviceClient.clientSecret,
        audience,
        apiUrl,
      }),
    });

    return {
      storefrontUrl,
      apiUrl,
      providerUrl: provider.issuer,
      accounts: DEMO_ACCOUNTS.map(({ email, description }) => ({ email, description })),
      password: DEMO_PASSWORD,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
