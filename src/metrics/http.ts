/**
 * GET /metrics: who may read it, the answer, and the optional dedicated metrics port.
 *
 * Access (decided by `metricsAccess`, a pure function):
 * - on the dedicated port (METRICS_PORT): served without a token (keep that port private);
 * - on the main port with METRICS_TOKEN set: only with `Authorization: Bearer <METRICS_TOKEN>`
 *   (compared in constant time), else 401;
 * - on the main port without METRICS_TOKEN: not served (404) when METRICS_PORT is set (it is
 *   served there) or in production; served without a token in development (NODE_ENV not
 *   production, neither setting given), for convenience.
 * The token never appears in a log line or a label.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.ts';
import { describeError } from '../log.ts';
import type { HttpRoute, Metrics } from './metrics.ts';

export const METRICS_PATH = '/metrics';

/** The settings behind the access rule (a subset of Config). */
export interface MetricsAccessSettings {
  metricsToken: string | undefined;
  metricsPort: number | undefined;
  production: boolean;
}

export type MetricsAccess = { allowed: true } | { allowed: false; status: 401 | 404 };

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/** Constant-time equality of two strings (hashed first, so their lengths leak nothing either). */
export function tokensEqual(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

/** The bearer credential of an Authorization header, or undefined. */
function bearerOf(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers['authorization'];
  if (typeof auth !== 'string') return undefined;
  return /^\s*bearer\s+(\S+)\s*$/i.exec(auth)?.[1];
}

/** Whether GET /metrics is answered on the main port at all (with or without a token). */
export function servedOnMainPort(settings: MetricsAccessSettings): boolean {
  return settings.metricsToken !== undefined || (settings.metricsPort === undefined && !settings.production);
}

/** The access rule above, for one request. */
export function metricsAccess(headers: IncomingHttpHeaders, settings: MetricsAccessSettings, onDedicatedPort: boolean): MetricsAccess {
  if (onDedicatedPort) return { allowed: true };
  if (settings.metricsToken !== undefined) {
    const given = bearerOf(headers);
    return given !== undefined && tokensEqual(given, settings.metricsToken) ? { allowed: true } : { allowed: false, status: 401 };
  }
  return servedOnMainPort(settings) ? { allowed: true } : { allowed: false, status: 404 };
}

/** The route label of a request path (low cardinality: unknown paths are `other`). */
export function routeLabel(path: string | undefined): HttpRoute {
  switch (path) {
    case '/graphql':
    case '/graphql/':
      return '/graphql/';
    case '/healthz':
    case '/readyz':
    case '/.well-known/jwks.json':
    case METRICS_PATH:
      return path;
    default:
      if (path?.startsWith('/oidc/jwks/')) return '/oidc/jwks';
      return path?.startsWith('/oidc/backchannel-logout/') ? '/oidc/backchannel-logout' : 'other';
  }
}

function sendJson(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(body);
}

/**
 * Answers a GET (or HEAD) /metrics request under the access rule; returns the status sent.
 * A 404 looks like any unknown path.
 */
export async function answerMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  metrics: Metrics,
  settings: MetricsAccessSettings,
  onDedicatedPort: boolean,
): Promise<number> {
  const access = metricsAccess(req.headers, settings, onDedicatedPort);
  if (!access.allowed) {
    if (access.status === 401) sendJson(res, 401, '{"error":"unauthorized"}', { 'www-authenticate': 'Bearer realm="metrics"' });
    else sendJson(res, 404, '{"error":"not found"}');
    return access.status;
  }
  const { contentType, body } = await metrics.render();
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
  return 200;
}

export interface MetricsServer {
  server: http.Server;
  /** e.g. http://127.0.0.1:9464 */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * The dedicated metrics port: a small HTTP server answering only GET|HEAD /metrics (no token),
 * 404 to anything else. Port 0 picks a free port (tests).
 */
export async function startMetricsServer(port: number, host: string, metrics: Metrics, log: Logger): Promise<MetricsServer> {
  const settings: MetricsAccessSettings = { metricsToken: undefined, metricsPort: port, production: true };
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000, maxHeaderSize: 8 * 1024 }, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== METRICS_PATH || (req.method !== 'GET' && req.method !== 'HEAD')) {
      sendJson(res, 404, '{"error":"not found"}');
      return;
    }
    answerMetrics(req, res, metrics, settings, true).catch((e: unknown) => {
      log.error('metrics rendering failed', describeError(e));
      if (!res.headersSent) sendJson(res, 500, '{"error":"internal"}');
      else res.destroy();
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shown === '0.0.0.0' || shown === '[::]' ? '127.0.0.1' : shown}:${address.port}`;
  log.info('metrics listening', { url: `${url}${METRICS_PATH}` });
  let closing: Promise<void> | undefined;
  return {
    server,
    url,
    port: address.port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
