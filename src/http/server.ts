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
import { HeaderMap } from '@apollo/server';
import type { Logger } from '../log.ts';
import { JWKS_MAX_AGE_SECONDS } from '../config.ts';
import { describeError } from '../log.ts';
import type { AppServices, GraphQLContext } from '../graphql/context.ts';
import type { GraphQLEngine } from '../graphql/server.ts';
import type { Principal } from '../accounts/principal.ts';
import type { HttpLimits } from '../config.ts';
import { createContext } from '../graphql/context.ts';
import type { RequestInfo } from '../plugins/contract.ts';
import { bearerOf } from './bearer.ts';
import { parseCookies } from '../auth/cookies.ts';
import type { RequestRateLimiter } from '../core/rate-limit.ts';
import { corsHeaders, exactOriginMatcher, originMatcher } from './cors.ts';
import { clientAddress } from './client-address.ts';
import { METRICS_PATH, answerMetrics, routeLabel } from '../metrics/http.ts';
import type { Drain } from './drain.ts';
import type { Duplex } from 'node:stream';
import { BodyTooLarge, answerClientError, parseTarget, readBody, type PendingExchange, type RequestTarget } from './request-input.ts';
import { OIDC_PLUGIN_KIND } from '../plugins/openid-connect/settings.ts';
import { UnknownConnectionError } from '../plugins/openid-connect/client-keys.ts';

const REQUEST_ID_SHAPE = /^[\w.:-]{1,128}$/;

/**
 * The request headers Apollo Server reads (body parsing, response negotiation, CSRF prevention
 * with its default header list); nothing of ours reads headers through Apollo (resolvers get
 * them from the context). Copying only these spares every request a copy of all its headers.
 */
const APOLLO_REQUEST_HEADERS = ['content-type', 'accept', 'x-apollo-operation-name', 'apollo-require-preflight'] as const;

/**
 * writeHead() fixes the headers before the body is known: without a Content-Length, Node would
 * send the body chunked (more bytes, more work for both ends). Every complete body states its
 * length.
 */
function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers, 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/**
 * Writes a complete GraphQL answer: `headers` (request id, CORS, content type) plus the cookies
 * the request set and the body's length, in one writeHead.
 */
function sendGraphQL(res: ServerResponse, status: number, headers: Record<string, string | string[]>, setCookies: string[], text: string): void {
  if (setCookies.length) headers['set-cookie'] = setCookies;
  headers['content-length'] = String(Buffer.byteLength(text));
  res.writeHead(status, headers);
  res.end(text);
}

export interface ServingOptions {
  app: AppServices;
  graphql: GraphQLEngine;
  rateLimiter: RequestRateLimiter;
}

/** `id`: the request id (X-Request-Id), echoed on every response. */
type Handler = (req: IncomingMessage, res: ServerResponse, id: string) => Promise<void>;

/**
 * What services get to know of a request (RequestInfo). A class: its methods and the lazy
 * logger are on the prototype, so a request makes no closures for them.
 */
class HttpRequestInfo implements RequestInfo {
  private requestLog: Logger | undefined;

  constructor(
    readonly requestId: string,
    readonly ip: string | undefined,
    readonly userAgent: string | undefined,
    readonly cookies: Readonly<Record<string, string>>,
    readonly trustedOrigin: boolean,
    /** Set-Cookie headers for the response. */
    readonly setCookies: string[],
    private readonly rootLog: Logger,
  ) {}

  setCookie(header: string): void {
    this.setCookies.push(header);
  }

  /** The request's logger (its lines carry the request id), made when something logs. */
  get log(): Logger {
    return (this.requestLog ??= this.rootLog.child({ requestId: this.requestId }));
  }
}

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
function startingHandler(log: Logger): Handler {
  return async (req, res, id) => {
    res.setHeader('x-request-id', id);
    const path = parseTarget(req.url)?.pathname;
    const status = 503;
    // /healthz too: deployment scripts take its 200 to mean "serving" (it is, once started).
    if (path === '/readyz' || path === '/healthz') send(res, 503, '{"status":"starting"}', { 'cache-control': 'no-store' });
    else send(res, 503, JSON.stringify({ errors: [{ message: 'The server is starting; try again shortly.' }] }), { 'cache-control': 'no-store', 'retry-after': '1' });
    log.info('request', { requestId: id, method: req.method, path, status, outcome: 'server_starting' });
  };
}

const PENDING = Symbol('pendingResponse');
type PendingSlot = Duplex & { [PENDING]?: ServerResponse | undefined };

export interface HttpServer {
  server: http.Server;
  /** From now on requests are served with these services. */
  serve(options: ServingOptions): void;
}

export function createHttpServer(limits: HttpLimits, log: Logger, drain: Drain): HttpServer {
  let handler: Handler = startingHandler(log);
  // The request each socket is being answered for, so that bad bytes after it (a pipelined
  // request the parser refuses) are answered after it, not in the middle of it.
  // Kept on the socket itself (a WeakMap would cost a hash-table update per request).
  const pendingOf = (socket: Duplex) => (socket as PendingSlot)[PENDING];
  const settled = (res: ServerResponse) => {
    const socket = res.req.socket as PendingSlot;
    if (socket[PENDING] === res) socket[PENDING] = undefined;
  };
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
      (req.socket as PendingSlot)[PENDING] = res;
      drain.track(res, req, settled);
      const id = requestId(req);
      handler(req, res, id).catch((e: unknown) => {
        // The handler answers its own errors; this is the last line of defence.
        log.error('request handler escaped its error boundary', describeError(e));
        if (!res.headersSent) send(res, 500, JSON.stringify({ errors: [{ message: 'Internal Server Error' }] }), { connection: 'close', 'x-request-id': id });
        else res.destroy();
      });
    },
  );
  server.maxHeadersCount = limits.maxHeadersCount;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const res = pendingOf(socket);
    const exchange: PendingExchange | undefined = res && { req: res.req, res };
    answerClientError(err, socket, log, exchange);
  });
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
    url: RequestTarget,
    info: HttpRequestInfo,
    cors: Readonly<Record<string, string>>,
    ctxOut: { ctx?: GraphQLContext },
    id: string,
  ): Promise<number> {
    let body: unknown = undefined;
    if (req.method === 'POST') {
      let raw: string;
      try {
        raw = await readBody(req, app.config.maxRequestBodyBytes);
      } catch (e) {
        if (e instanceof BodyTooLarge) {
          send(res, 413, JSON.stringify({ errors: [{ message: 'Request body too large.' }] }), { 'x-request-id': id, ...cors, ...(e.closeConnection ? { connection: 'close' } : {}) });
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
          send(res, 400, JSON.stringify({ errors: [{ message: 'Request body is not valid JSON.' }] }), { 'x-request-id': id, ...cors });
          return 400;
        }
      } else {
        body = raw;
      }
    }
    const bearer = bearerOf(req);
    const ctx = createContext(app, info, bearer.token, bearer.key);
    ctxOut.ctx = ctx;
    // A query Apollo resolved before, asked for as Apollo would answer it byte for byte, is
    // answered without Apollo's pipeline (graphql/known-operations.ts).
    const known = graphql.known.match(req.method, body, req.headers['content-type'], req.headers.accept);
    if (known) {
      ctx.meta.operationName = known.operation.logName;
      const text = await graphql.known.execute(known, ctx);
      if (text !== undefined) {
        sendGraphQL(res, 200, { 'x-request-id': id, ...cors, 'content-type': known.contentType }, info.setCookies, text);
        known.operation.answered(200, text);
        return 200;
      }
      // Errors: Apollo answers (and formats) them.
    }
    const headers = new HeaderMap();
    for (const name of APOLLO_REQUEST_HEADERS) {
      const v = req.headers[name];
      if (v !== undefined) headers.set(name, Array.isArray(v) ? v.join(', ') : v);
    }
    const result = await graphql.apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: req.method ?? 'GET', headers, search: url.search, body },
      context: async () => ctx,
    });
    // The request id goes with the other headers in writeHead (no setHeader before it: Node
    // then takes the object as it is instead of checking and copying each header again).
    const outHeaders: Record<string, string | string[]> = { 'x-request-id': id, ...cors };
    for (const [k, v] of result.headers) outHeaders[k] = v;
    const status = result.status ?? 200;
    if (result.body.kind === 'complete') {
      graphql.known.learn(headers.get('accept'), status, result.headers);
      const text = result.body.string;
      sendGraphQL(res, status, outHeaders, info.setCookies, text);
      ctx.meta.answered?.answered(status, text);
    } else {
      ctx.meta.answered?.answered(status, undefined);
      if (info.setCookies.length) outHeaders['set-cookie'] = info.setCookies;
      res.writeHead(status, outHeaders);
      for await (const chunk of result.body.asyncIterator) res.write(chunk);
      res.end();
    }
    return status;
  }

  async function handle(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const started = performance.now();
    let info: HttpRequestInfo | undefined;
    const requestLog = () => info?.log ?? log.child({ requestId: id });
    const ctxOut: { ctx?: GraphQLContext } = {};
    let status = 500;
    let path: string | undefined;
    let ip: string | undefined;
    try {
      const url = parseTarget(req.url);
      if (!url) {
        status = 400;
        send(res, 400, JSON.stringify({ errors: [{ message: 'Malformed request target.' }] }), { connection: 'close', 'x-request-id': id });
        return;
      }
      path = url.pathname;
      ip = clientAddress(req, app.config.trustProxy);
      info = new HttpRequestInfo(id, ip, req.headers['user-agent'], parseCookies(req.headers.cookie), trustedOrigin(req.headers.origin), [], log);
      if (path === '/graphql/' || path === '/graphql') {
        // The GraphQL answers carry the request id in their writeHead (see handleGraphQL).
        const cors = corsHeaders(req.headers.origin, allowedOrigin, req.method === 'OPTIONS');
        if (req.method === 'OPTIONS') {
          status = 204;
          res.writeHead(204, { 'x-request-id': id, ...cors });
          res.end();
        } else if (req.method === 'POST' || req.method === 'GET') {
          status = await handleGraphQL(req, res, url, info, cors, ctxOut, id);
        } else {
          status = 405;
          send(res, 405, JSON.stringify({ errors: [{ message: 'Method not allowed.' }] }), { 'x-request-id': id, ...cors, allow: 'POST, GET, OPTIONS' });
        }
        return;
      }
      res.setHeader('x-request-id', id);
      if (path === METRICS_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
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
          requestLog().warn('readiness check failed', describeError(e));
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
      requestLog().error('request failed', describeError(e));
      if (!res.headersSent) {
        status = 500;
        send(res, 500, JSON.stringify({ errors: [{ message: 'Internal Server Error' }] }), { 'x-request-id': id });
      } else {
        res.destroy();
      }
    } finally {
      const ms = performance.now() - started;
      app.metrics.httpRequest(routeLabel(path), req.method, status, ms / 1000);
      // The root logger with the id as the first field: the same line as the request's logger
      // would write, without making one.
      log.info('request', {
        requestId: id,
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
