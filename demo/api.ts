/**
 * The API server of the demo: the same `startServer` as `npm start`, in this process, always on
 * the embedded database (never DATABASE_URL), with the default OpenID Connect connection
 * configured against the demo provider and active.
 */
import { loadConfig, type LogLevel } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { startServer, type RunningServer } from '../src/app.ts';
import { DEFAULT_OIDC_PLUGIN_ID } from '../src/plugins/openid-connect/settings.ts';
import { DEMO_HOST, PortInUseError } from './net.ts';

export interface DemoApiOptions {
  port: number;
  dataDir: string;
  logLevel: LogLevel;
  /** Server secret; absent: the server generates one and keeps it in dataDir. */
  secretKey?: string;
  /** Where the server's JSON log lines go (default: stdout). */
  log?: (line: string) => void;
}

/** `http://localhost:<port>`: the browser, the SDK and the token issuer all use this name. */
export function apiPublicUrl(port: number): string {
  return `http://localhost:${port}`;
}

export async function startDemoApi(options: DemoApiOptions): Promise<RunningServer> {
  const config = loadConfig({
    PORT: String(options.port),
    HOST: DEMO_HOST,
    DATA_DIR: options.dataDir,
    PUBLIC_URL: apiPublicUrl(options.port),
    // The demo provider is on localhost over plain http.
    OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true',
    LOG_LEVEL: options.logLevel,
    SHUTDOWN_GRACE_SECONDS: '2',
    ...(options.secretKey ? { SECRET_KEY: options.secretKey } : {}),
  });
  const log = createLogger(config.logLevel, { component: 'api' }, options.log);
  try {
    return await startServer(config, log);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new PortInUseError(options.port, 'API');
    throw e;
  }
}

export interface ConnectionSettings {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  postLogoutRedirectUri: string;
  audience: string;
}

/**
 * Configures and activates the default connection through the plugin manager, the service
 * behind GraphQL `pluginUpdate` (same validation; activation fetches the provider's discovery
 * document first).
 */
export async function configureConnection(server: RunningServer, settings: ConnectionSettings): Promise<void> {
  const values: Record<string, string> = {
    issuer_url: settings.issuer,
    client_id: settings.clientId,
    client_secret: settings.clientSecret,
    allowed_redirect_uris: settings.redirectUri,
    allowed_post_logout_redirect_uris: settings.postLogoutRedirectUri,
    use_oauth_scope_permissions: 'true',
    audience: settings.audience,
  };
  try {
    await server.app.plugins.update(DEFAULT_OIDC_PLUGIN_ID, {
      active: true,
      configuration: Object.entries(values).map(([name, value]) => ({ name, value })),
    });
  } catch (e) {
    throw new Error(`configuring the OpenID Connect plugin failed: ${(e as Error).message}`);
  }
}
