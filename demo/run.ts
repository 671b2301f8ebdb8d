/**
 * `npm run demo`: starts the demo (./demo.ts), prints where to go and what to click, and stops
 * everything on Ctrl-C (SIGINT) or SIGTERM, exiting 0.
 *
 * Environment (all optional):
 *   DEMO_API_PORT         API port, default 8000 (PUBLIC_URL http://localhost:<port>)
 *   DEMO_PROVIDER_PORT    demo OpenID provider port, default 8001
 *   DEMO_STOREFRONT_PORT  storefront port, default 3000
 *   DEMO_DATA_DIR         embedded database directory; default: a fresh temporary one,
 *                         deleted when the demo stops
 *   DEMO_LOG_LEVEL        API log level (debug, info, warn, error), default warn
 * The demo never reads DATABASE_URL: it always runs on the embedded database.
 */
import { DEFAULT_PORTS, startDemo, type RunningDemo } from './demo.ts';
import { PortInUseError } from './net.ts';
import type { LogLevel } from '../src/config.ts';

const PORT_VARIABLES = { api: 'DEMO_API_PORT', provider: 'DEMO_PROVIDER_PORT', storefront: 'DEMO_STOREFRONT_PORT' } as const;

function port(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new Error(`${name} must be a port number (1-65535), got "${raw}"`);
  }
  return value;
}

function logLevel(): LogLevel {
  const raw = process.env['DEMO_LOG_LEVEL'] ?? 'warn';
  if (raw === 'debug' || raw === 'info' || raw === 'warn' || raw === 'error') return raw;
  throw new Error(`DEMO_LOG_LEVEL must be debug, info, warn or error, got "${raw}"`);
}

function banner(demo: RunningDemo): string {
  const [customer, staff] = demo.accounts;
  return [
    '',
    'Saleor external-authentication demo is running.',
    '',
    `  Storefront       ${demo.storefrontUrl}   <- open this in a browser`,
    `  API (GraphQL)    ${demo.apiUrl}`,
    `  OpenID provider  ${demo.providerUrl}   (demo provider, development only)`,
    '',
    `  1. Open ${demo.storefrontUrl} and click "Log in".`,
    `  2. Sign in at the demo provider with password "${demo.password}" as`,
    `       ${customer?.email}  (${customer?.description}), or`,
    `       ${staff?.email}  (${staff?.description}).`,
    '     The storefront shows your email, staff flag and permissions from the API.',
    '  3. "Refresh" renews the access token with the refresh token; "Log out" ends the session',
    '     at the API and at the provider.',
    '  4. "Call the API as a service": a client-credentials token from the provider, used as a',
    '     bearer token at the API.',
    '',
    `  Other ports: ${Object.values(PORT_VARIABLES).join(', ')}. Press Ctrl-C to stop.`,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  let demo: RunningDemo | undefined;
  let stopping = false;
  const shutdown = (running: RunningDemo) =>
    running.stop().then(
      () => {
        process.stdout.write('Demo stopped.\n');
        process.exit(0);
      },
      (e: unknown) => {
        process.stderr.write(`Stopping the demo failed: ${(e as Error).message}\n`);
        process.exit(1);
      },
    );
  // Installed first: Ctrl-C while the demo starts stops it once started (a second one exits at once).
  const onSignal = (signal: string) => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting without waiting.\n`);
      process.exit(1);
    }
    stopping = true;
    process.stdout.write(`\n${signal}: stopping the demo…\n`);
    if (demo) void shutdown(demo);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  try {
    demo = await startDemo({
      apiPort: port(PORT_VARIABLES.api, DEFAULT_PORTS.api),
      providerPort: port(PORT_VARIABLES.provider, DEFAULT_PORTS.provider),
      storefrontPort: port(PORT_VARIABLES.storefront, DEFAULT_PORTS.storefront),
      ...(process.env['DEMO_DATA_DIR'] ? { dataDir: process.env['DEMO_DATA_DIR'] } : {}),
      logLevel: logLevel(),
    });
  } catch (e) {
    if (e instanceof PortInUseError) {
      const variable = Object.entries(PORT_VARIABLES).find(([key]) => e.what.toLowerCase().includes(key))?.[1];
      process.stderr.write(`Cannot start the demo: ${e.message}.${variable ? ` Choose another with ${variable}=<port>.` : ''}\n`);
    } else {
      process.stderr.write(`Cannot start the demo: ${(e as Error).message}\n`);
    }
    process.exit(1);
  }
  if (stopping) {
    void shutdown(demo);
    return;
  }
  process.stdout.write(banner(demo));
}

void main();
