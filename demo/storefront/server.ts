/**
 * The storefront's own small web server (node:http, its own port; the API server never serves
 * it). Routes:
 * - GET / and /callback: the page (the provider returns to /callback with code and state);
 * - GET /app.js: the bundled script;
 * - POST /service-call: the service section (./service-call.ts), same-origin requests only.
 * It listens first (the provider and the API need its URL), and serves once `serve` is called.
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { escapeHtml } from '../provider/pages.ts';
import { DEMO_ACCOUNTS } from '../provider/accounts.ts';
import { close, listen } from '../net.ts';
import { SERVICE_SCOPE, type ServiceCallAnswer } from './service-call.ts';

export interface StorefrontContent {
  /** The API's GraphQL URL (shown on the page, and allowed by the page's CSP). */
  apiUrl: string;
  script: string;
  serviceCall: () => Promise<ServiceCallAnswer>;
}

export interface StorefrontServer {
  /** `http://localhost:<port>` */
  origin: string;
  port: number;
  serve(content: StorefrontContent): void;
  close(): Promise<void>;
}

const TEMPLATE = readFileSync(new URL('./index.html', import.meta.url), 'utf8');

function renderPage(apiUrl: string): string {
  const accounts = DEMO_ACCOUNTS.map((a) => `<code>${escapeHtml(a.email)}</code> (${escapeHtml(a.description)})`).join(' or ');
  return TEMPLATE.replaceAll('{{API_URL}}', escapeHtml(apiUrl))
    .replaceAll('{{ACCOUNTS}}', accounts)
    .replaceAll('{{SERVICE_SCOPE}}', escapeHtml(SERVICE_SCOPE));
}

function headers(contentType: string, apiOrigin: string): http.OutgoingHttpHeaders {
  return {
    'content-type': contentType,
    'cache-control': 'no-store',
    // The callback URL carries the authorization code: never send it on as a Referer.
    'referrer-policy': 'no-referrer',
    'x-content-type-options': 'nosniff',
    'content-security-policy': `default-src 'self'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self' ${apiOrigin}; base-uri 'none'; frame-ancestors 'none'`,
  };
}

export async function startStorefrontServer(port: number): Promise<StorefrontServer> {
  let content: StorefrontContent | undefined;
  let page = '';
  let apiOrigin = '';
  const server = http.createServer((req, res) => {
    if (!content) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('starting');
      return;
    }
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'GET' && (path === '/' || path === '/callback')) {
      res.writeHead(200, headers('text/html; charset=utf-8', apiOrigin)).end(page);
    } else if (req.method === 'GET' && path === '/app.js') {
      res.writeHead(200, headers('text/javascript; charset=utf-8', apiOrigin)).end(content.script);
    } else if (req.method === 'POST' && path === '/service-call') {
      // Only the page itself may trigger the call (browsers always send Origin on POST).
      if (req.headers.origin !== storefront.origin) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden');
        return;
      }
      req.resume();
      content.serviceCall().then(
        (answer) => res.writeHead(200, headers('application/json', apiOrigin)).end(JSON.stringify(answer)),
        (e: unknown) => res.writeHead(500, headers('application/json', apiOrigin)).end(JSON.stringify({ error: String(e) })),
      );
    } else if (path === '/favicon.ico') {
      res.writeHead(204).end();
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  server.keepAliveTimeout = 5000;
  const actualPort = await listen(server, port, 'demo storefront');
  const storefront: StorefrontServer = {
    origin: `http://localhost:${actualPort}`,
    port: actualPort,
    serve(next) {
      content = next;
      page = renderPage(next.apiUrl);
      apiOrigin = new URL(next.apiUrl).origin;
    },
    close: () => close(server),
  };
  return storefront;
}
