/**
 * The HTTP surface (names fixed for operators, see saleor-contract.md section 7):
 *   POST|GET /graphql/ and /graphql    GraphQL (413 over the body limit)
 *   OPTIONS  /graphql/                 CORS preflight
 *   GET      /.well-known/jwks.json    our public signing keys
 *   GET      /healthz                  process up and serving (no I/O); 503 while starting
 *   GET      /readyz                   ready: started (migrations, keys, plugins) and database
 *                                      reachable; 503 while starting and while shutting down
 *   POST     /oidc/backchannel-logout/<pluginId>
 *   GET      /oidc/jwks/<pluginId>     a connection's public keys for private_key_jwt (404: unknown
 *                                      connection, or one without keys)
 * The socket listens from the first moment of startup (createHttpServer); until `serve` hands it
 * the services, every request gets a 503 saying the server is starting (/healthz and /readyz
 * `{"status":"starting"}`).
 * Every request gets one JSON log line with its request id (X-Request-Id, echoed back) and the
 * principal it was authenticated as (user or app id, never the token).
 *
 * One error boundary: everything parsed from a request (target, headers, cookies, body, JSON,
 * GraphQL) is parsed inside `handle`, which answers 400/413/500 itself; what Node's parser
 * refuses (bad request line, header overflow, timeouts) is answered by `answerClientError`
 * (400/431/408). Node's limits are set explicitly from config (HttpLimits).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { HeaderMap, type ApolloServer } from '@apollo/server';
import type { Logger } from '../log.ts';
import { JWKS_MAX_AGE_SECONDS } from '../config.ts';
import { describeError } from '../log.ts';
import type { AppServices, GraphQLContext } from '../graphql/context.ts';
import type { Principal } from '../accounts/principal.ts';
import type { HttpLimits } from '../config.ts';
import { createContext } from '../graphql/context.ts';
import type { RequestInfo } from '../plugins/contract.ts';
import { tokenFromHeaders } from '../auth/authenticate.ts';
import { parseCookies } from '../auth/cookies.ts';
import type { RequestRateLimiter } from '../core/rate-limit.ts';
import { corsHeaders, exactOriginMatcher, originMatcher } from './cors.ts';
import { clientAddress } from './client-address.ts';
import { METRICS_PATH, answerMetrics, routeLabel } from '../metrics/http.ts';
import type { Drain } from './drain.ts';
import type { Duplex } from 'node:stream';
import { BodyTooLarge, answerClientError, parseTarget, readBody, type PendingExchange } from './request-input.ts';
import { OIDC_PLUGIN_KIND } from '../plugins/openid-connect/settings.ts';
import { UnknownConnectionError } from '../plugins/openid-connect/client-keys.ts';

const REQUEST_ID_SHAPE = /^[\w.:-]{1,128}$/;

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(body);
}

export interface ServingOptions {
  app: AppServices;
  graphql: ApolloServer<GraphQLContext>;
  rateLimiter: RequestRateLimiter;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** The request log's name for who a request was authenticated as. */
function principalLabel(principal: Principal | null | undefined): string | undefined {
  if (!principal) return undefined;
  return principal.kind === 'user' ? `user:${principal.user.id}` : `app:${principal.owner}:${principal.clientId}`;
}

function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID_SHAPE.test(given) ? given : randomUUID();
}

/** Answers while the services are not there yet. */
function startingHandler(log: Logger, drain: Drain): Handler {
  return async (req, res) => {
    const id = requestId(req);
    res.setHeader('x-request-id', id);
    drain.track(res, req);
    const path = parseTarget(req.url)?.pathname;
    const status = 503;
    // /healthz too: deployment scripts take its 200 to mean "serving" (it is, once started).
    if (path === '/readyz' || path === '/healthz') send(res, 503, '{"status":"starting"}', { 'cache-control': 'no-store' });
    else send(res, 503, JSON.stringify({ errors: [{ message: 'The server is starting; try again shortly.' }] }), { 'cache-control': 'no-store', 'retry-after': '1' });
    log.info('request', { requestId: id, method: req.method, path, status, outcome: 'server_starting' });
  };
}

export interface HttpServer {
  server: http.Server;
  /** From now on requests are served with these services. */
  serve(options: ServingOptions): void;
}

export function createHttpServer(limits: HttpLimits, log: Logger, drain: Drain): HttpServer {
  let handler: Handler = startingHandler(log, drain);
  // The request each socket is being answered for, so that bad bytes after it (a pipelined
  // request the parser refuses) are answered after it, not in the middle of it.
  const pending = new WeakMap<Duplex, PendingExchange>();
  const server = http.createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks the two timeouts above only this often (default 30 s): check often enough
      // that a slow client is cut off close to its deadline.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    (req, res) => {
      pending.set(req.socket, { req, res });
      res.once('close', () => {
        if (pending.get(req.socket)?.res === res) pending.delete(req.socket);
      });
      handler(req, res).catch((e: unknown) => {
        // The handler answers its own errors; this is the last line of defence.
        log.error('request handler escaped its error boundary', describeError(e));
        if (!res.headersSent) send(res, 500, JSON.stringify({ errors: [{ message: 'Internal Server Error' }] }), { connection: 'close' });
        else res.destroy();
      });
    },
  );
  server.maxHeadersCount = limits.maxHeadersCount;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => answerClientError(err, socket, log, pending.get(socket)));
  return {
    server,
    serve(options) {
      handler = requestHandler({ ...options, log, drain });
    },
  };
}

function requestHandler({ app, graphql, log, rateLimiter, drain }: ServingOptions & { log: Logger; drain: Drain }): Handler {
  const allowedOrigin = originMatcher(app.config.allowedGraphqlOrigins);
  const trustedOrigin = exactOriginMatcher(app.config.allowedGraphqlOrigins);

  async function handleGraphQL(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    info: RequestInfo,
    setCookies: string[],
    cors: Record<string, string>,
    ctxOut: { ctx?: GraphQLContext },
  ): Promise<number> {
    let body: unknown = undefined;
    if (req.method === 'POST') {
      let raw: string;
      try {
        raw = await readBody(req, app.config.maxRequestBodyBytes);
      } catch (e) {
        if (e instanceof BodyTooLarge) {
          send(res, 413, JSON.stringify({ errors: [{ message: 'Request body too large.' }] }), { ...cors, ...(e.closeConnection ? { connection: 'close' } : {}) });
          return 413;
        }
        // The client went away (or was cut off by the request timeout): nobody to answer.
        res.destroy();
        return 400;
      }
      const type = (req.headers['content-type'] ?? '').toLowerCase();
      if (type.includes('application/json')) {
        try {
          body = raw === '' ? undefined : JSON.parse(raw);
        } catch {
          send(res, 400, JSON.stringify({ errors: [{ message: 'Request body is not valid JSON.' }] }), cors);
          return 400;
        }
      } else {
        body = raw;
      }
    }
    const headers = new HeaderMap();
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    }
    const ctx = createContext(app, info, tokenFromHeaders(req.headers));
    ctxOut.ctx = ctx;
    const result = await graphql.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: req.method ?? 'GET', headers, search: url.search, body },
      context: async () => ctx,
    });
    const outHeaders: Record<string, string | string[]> = { ...cors };
    for (const [k, v] of result.headers) outHeaders[k] = v;
    if (setCookies.length) outHeaders['set-cookie'] = setCookies;
    const status = result.status ?? 200;
    res.writeHead(status, outHeaders);
    if (result.body.kind === 'complete') {
      res.end(result.body.string);
    } else {
      for await (const chunk of result.body.asyncIterator) res.write(chunk);
      res.end();
    }
    return status;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const id = requestId(req);
    res.setHeader('x-request-id', id);
    drain.track(res, req);
    const reqLog = log.child({ requestId: id });
    const ctxOut: { ctx?: GraphQLContext } = {};
    let status = 500;
    let path: string | undefined;
    let ip: string | undefined;
    try {
      const url = parseTarget(req.url);
      if (!url) {
        status = 400;
        send(res, 400, JSON.stringify({ errors: [{ message: 'Malformed request target.' }] }), { connection: 'close' });
        return;
      }
      path = url.pathname;
      const setCookies: string[] = [];
      ip = clientAddress(req, app.config.trustProxy);
      const info: RequestInfo = {
        requestId: id,
        ip,
        userAgent: req.headers['user-agent'],
        cookies: parseCookies(req.headers.cookie),
        trustedOrigin: trustedOrigin(req.headers.origin),
        setCookie: (c) => setCookies.push(c),
        log: reqLog,
      };
      if (path === '/graphql/' || path === '/graphql') {
        const cors = corsHeaders(req.headers.origin, allowedOrigin, req.method === 'OPTIONS');
        if (req.method === 'OPTIONS') {
          status = 204;
          res.writeHead(204, cors);
          res.end();
        } else if (req.method === 'POST' || req.method === 'GET') {
          status = await handleGraphQL(req, res, url, info, setCookies, cors, ctxOut);
        } else {
          status = 405;
          send(res, 405, JSON.stringify({ errors: [{ message: 'Method not allowed.' }] }), { ...cors, allow: 'POST, GET, OPTIONS' });
        }
      } else if (path === METRICS_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
        status = await answerMetrics(req, res, app.metrics, app.config, false);
      } else if (path === '/healthz' && req.method === 'GET') {
        status = 200;
        send(res, 200, '{"status":"ok"}', { 'cache-control': 'no-store' });
      } else if (path === '/readyz' && req.method === 'GET' && drain.draining) {
        status = 503;
        send(res, 503, '{"status":"shutting down"}', { 'cache-control': 'no-store' });
      } else if (path === '/readyz' && req.method === 'GET') {
        try {
          await app.db.ping();
          status = 200;
          send(res, 200, '{"status":"ready"}', { 'cache-control': 'no-store' });
        } catch (e) {
          status = 503;
          reqLog.warn('readiness check failed', describeError(e));
          send(res, 503, '{"status":"database unreachable"}', { 'cache-control': 'no-store' });
        }
      } else if (path === '/.well-known/jwks.json' && req.method === 'GET') {
        status = 200;
        send(res, 200, JSON.stringify(app.keyring.jwks()), {
          'content-type': 'application/jwk-set+json',
          'cache-control': `public, max-age=${JWKS_MAX_AGE_SECONDS}`,
          'access-control-allow-origin': '*',
        });
      } else if (path.startsWith('/oidc/jwks/') && req.method === 'GET') {
        status = await handleConnectionJwks(res, path.slice('/oidc/jwks/'.length));
      } else if (path.startsWith('/oidc/backchannel-logout/') && req.method === 'POST') {
        const decision = await rateLimiter.consume(info.ip ?? 'unknown');
        if (!decision.allowed) {
          app.metrics.rateLimitRejected('backchannel_logout');
          status = 429;
          send(res, 429, '{"error":"too_many_requests"}', { 'cache-control': 'no-store', 'retry-after': String(decision.retryAfterSeconds) });
          return;
        }
        let pluginId: string | undefined;
        try {
          pluginId = decodeURIComponent(path.slice('/oidc/backchannel-logout/'.length));
        } catch {
          pluginId = undefined;
        }
        if (pluginId === undefined) {
          status = 400;
          send(res, 400, '{"error":"invalid_request"}', { 'cache-control': 'no-store' });
        } else {
          status = await handleBackchannelLogout(req, res, pluginId, info);
        }
      } else {
        status = 404;
        send(res, 404, '{"error":"not found"}');
      }
    } catch (e) {
      reqLog.error('request failed', describeError(e));
      if (!res.headersSent) {
        status = 500;
        send(res, 500, JSON.stringify({ errors: [{ message: 'Internal Server Error' }] }));
      } else {
        res.destroy();
      }
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      app.metrics.httpRequest(routeLabel(path), req.method, status, ms / 1000);
      reqLog.info('request', {
        method: req.method,
        path,
        status,
        operationName: ctxOut.ctx?.meta.operationName,
        clientAddress: ip,
        principal: principalLabel(ctxOut.ctx?.principalSeen()),
        durationMs: Math.round(ms * 100) / 100,
        outcome: status < 400 ? 'ok' : status < 500 ? 'client_error' : 'server_error',
      });
    }
  }

  /**
   * A connection's public keys (private_key_jwt, RFC 7523): what its operator registers at the
   * provider as `jwks_uri`. A private_key_jwt connection without a key gets its first one here
   * (the URL is registered before the first login). Public members only (client-keys.ts).
   */
  async function handleConnectionJwks(res: ServerResponse, encodedId: string): Promise<number> {
    const notFound = () => {
      send(res, 404, '{"error":"not found"}', { 'cache-control': 'no-store' });
      return 404;
    };
    let pluginId: string;
    try {
      pluginId = decodeURIComponent(encodedId);
    } catch {
      return notFound();
    }
    const plugin = pluginId ? await app.plugins.get(pluginId) : undefined;
    if (!plugin || plugin.kind !== OIDC_PLUGIN_KIND) return notFound();
    const method = (await app.plugins.values(pluginId))?.['token_endpoint_auth_method'];
    let jwks;
    try {
      jwks = await app.connectionKeys.jwks(pluginId, { create: typeof method === 'string' && method.trim() === 'private_key_jwt' });
    } catch (e) {
      if (e instanceof UnknownConnectionError) return notFound();
      throw e;
    }
    if (jwks.keys.length === 0) return notFound();
    send(res, 200, JSON.stringify(jwks), {
      'content-type': 'application/jwk-set+json',
      'cache-control': `public, max-age=${JWKS_MAX_AGE_SECONDS}`,
      'access-control-allow-origin': '*',
    });
    return 200;
  }

  async function handleBackchannelLogout(req: IncomingMessage, res: ServerResponse, pluginId: string, info: RequestInfo) {
    const headers = { 'cache-control': 'no-store' };
    let form: URLSearchParams;
    try {
      form = new URLSearchParams(await readBody(req, 64 * 1024));
    } catch {
      send(res, 400, '{"error":"invalid_request"}', headers);
      return 400;
    }
    const plugin = await app.plugins.active(pluginId);
    const ok = plugin?.backchannelLogout ? await plugin.backchannelLogout(form, info) : false;
    send(res, ok ? 200 : 400, ok ? '{}' : '{"error":"invalid_request"}', headers);
    return ok ? 200 : 400;
  }

  return handle;
}
