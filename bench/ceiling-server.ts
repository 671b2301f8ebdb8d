/**
 * The framework ceiling of `npm run bench`: Apollo Server 5 on plain node:http through
 * `executeHTTPGraphQLRequest` (the fastest Node integration available here), answering the
 * benchmark's document with a null resolver and nothing else: no log line, no metrics, no CORS,
 * no request id, no authentication. What our server does around Apollo is measured against it.
 *
 * Apollo's defaults, except the cache-control plugin (disabled: it runs a hook per resolved
 * field, and the fastest ceiling is the honest one). NODE_ENV=production, as the server.
 *
 *   PORT=4100 node --import tsx bench/ceiling-server.ts
 * Prints `listening <port>` on stdout once it accepts requests.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';

const typeDefs = /* GraphQL */ `
  type User {
    email: String!
  }
  type Query {
    me: User
  }
`;

const apollo = new ApolloServer({
  typeDefs,
  resolvers: { Query: { me: () => null } },
  plugins: [ApolloServerPluginLandingPageDisabled(), ApolloServerPluginCacheControlDisabled()],
});
await apollo.start();

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const server = http.createServer(async (req, res) => {
  try {
    const raw = req.method === 'POST' ? await readBody(req) : '';
    const headers = new HeaderMap();
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    const body = raw && (req.headers['content-type'] ?? '').includes('application/json') ? JSON.parse(raw) : raw;
    const url = new URL(req.url ?? '/', 'http://localhost');
    const result = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: req.method ?? 'GET', headers, search: url.search, body },
      context: async () => ({}),
    });
    for (const [k, v] of result.headers) res.setHeader(k, v);
    res.statusCode = result.status ?? 200;
    if (result.body.kind === 'complete') res.end(result.body.string);
    else {
      for await (const chunk of result.body.asyncIterator) res.write(chunk);
      res.end();
    }
  } catch {
    res.statusCode = 500;
    res.end();
  }
});
server.keepAliveTimeout = 5000;
server.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
// Started by the benchmark (BENCH_PARENT_PID) and orphaned (it died without stopping us): exit.
const parent = Number(process.env['BENCH_PARENT_PID']);
if (parent) {
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 1000).unref();
}
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void apollo.stop().then(() => process.exit(0));
});
