import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import * as jose from 'jose';
import * as oidc from 'openid-client';
import { createGuardedFetch, isNonPublicAddress, OutboundError } from '../../src/net/guarded-fetch.ts';

// ---------------------------------------------------------------------------------------------
// Local servers on 127.0.0.1 (real sockets; nothing is mocked)
// ---------------------------------------------------------------------------------------------

interface TestServer {
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  readonly port: number;
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Requests received so far. */
  readonly requests: number;
}

const servers: http.Server[] = [];
const timers = new Set<NodeJS.Timeout>();

async function startServer(handler: http.RequestListener): Promise<TestServer> {
  let connections = 0;
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    handler(req, res);
  });
  server.on('connection', () => {
    connections++;
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    get connections() {
      return connections;
    },
    get requests() {
      return requests;
    },
  };
}

function later(ms: number, f: () => void): void {
  const t = setTimeout(() => {
    timers.delete(t);
    f();
  }, ms);
  timers.add(t);
}

/** A port on 127.0.0.1 where nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

afterAll(async () => {
  for (const t of timers) clearTimeout(t);
  await Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((resolve) => {
          s.closeAllConnections();
          s.close(() => resolve());
        }),
    ),
  );
});

/** Awaits a rejection and returns it as an OutboundError (fails the test otherwise). */
async function outboundError(p: Promise<unknown>): Promise<OutboundError> {
  const err = await p.then(
    () => {
      throw new Error('expected the request to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OutboundError);
  return err as OutboundError;
}

const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------

describe('isNonPublicAddress', () => {
  it.each([
    // IPv4
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', '"this network" 0/8'],
    ['10.0.0.1', 'private 10/8'],
    ['10.255.255.255', 'private 10/8'],
    ['100.64.0.1', 'CGNAT 100.64/10'],
    ['100.127.255.255', 'CGNAT 100.64/10'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['169.254.169.254', 'link-local (cloud metadata)'],
    ['172.16.0.1', 'private 172.16/12'],
    ['172.31.255.255', 'private 172.16/12'],
    ['192.0.0.8', 'IETF protocol assignments'],
    ['192.0.2.1', 'documentation TEST-NET-1'],
    ['192.88.99.1', '6to4 relay anycast'],
    ['192.168.1.1', 'private 192.168/16'],
    ['198.18.0.1', 'benchmarking 198.18/15'],
    ['198.19.255.255', 'benchmarking 198.18/15'],
    ['198.51.100.7', 'documentation TEST-NET-2'],
    ['203.0.113.9', 'documentation TEST-NET-3'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    // IPv6
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback in URL brackets'],
    ['0:0:0:0:0:0:0:1', 'loopback, long form'],
    ['::127.0.0.1', 'IPv4-compatible (deprecated)'],
    ['fc00::1', 'unique local fc00::/7'],
    ['fd12:3456:789a::1', 'unique local fc00::/7'],
    ['fe80::1', 'link-local fe80::/10'],
    ['febf:ffff::1', 'link-local fe80::/10'],
    ['fe80::1%eth0', 'zoned link-local'],
    ['fec0::1', 'site-local (deprecated)'],
    ['ff02::1', 'multicast'],
    ['100::1', 'discard-only'],
    ['2001:db8::1', 'documentation'],
    ['3fff::1', 'documentation 3fff::/20'],
    ['2001::1', 'Teredo'],
    ['2001:2::1', 'benchmarking'],
    // IPv4 inside IPv6
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback, dotted'],
    ['::ffff:7f00:1', 'IPv4-mapped loopback, hex (as the URL parser writes it)'],
    ['::ffff:10.0.0.1', 'IPv4-mapped private'],
    ['::ffff:169.254.169.254', 'IPv4-mapped link-local'],
    ['64:ff9b::7f00:1', 'NAT64 of loopback'],
    ['64:ff9b::192.168.0.1', 'NAT64 of private'],
    ['2002:7f00:1::1', '6to4 of loopback'],
    ['2002:c0a8:101::1', '6to4 of private'],
    // not an address at all: fail closed
    ['', 'empty'],
    ['localhost', 'a hostname'],
    ['127.1', 'short IPv4 form'],
    ['1.2.3.4.5', 'five octets'],
    ['256.0.0.1', 'octet out of range'],
    ['::ffff:999.0.0.1', 'bad embedded IPv4'],
    ['1:2:3:4:5:6:7:8:9', 'nine groups'],
  ])('%s is non-public (%s)', (ip) => {
    expect(isNonPublicAddress(ip)).toBe(true);
  });

  it.each([
    ['8.8.8.8'],
    ['1.1.1.1'],
    ['93.184.216.34'],
    ['9.255.255.255'],
    ['11.0.0.1'],
    ['100.63.255.255'],
    ['100.128.0.1'],
    ['126.255.255.255'],
    ['128.0.0.1'],
    ['169.253.255.255'],
    ['172.15.255.255'],
    ['172.32.0.1'],
    ['192.0.1.1'],
    ['192.167.255.255'],
    ['198.17.255.255'],
    ['198.20.0.1'],
    ['223.255.255.255'],
    ['2606:4700::1111'],
    ['2001:4860:4860::8888'],
    ['2a00:1450:4001::1'],
    ['[2606:4700::1111]'],
    ['::ffff:8.8.8.8'],
    ['::ffff:808:808'],
    ['64:ff9b::808:808'],
    ['2002:808:808::1'],
  ])('%s is public', (ip) => {
    expect(isNonPublicAddress(ip)).toBe(false);
  });
});

describe('createGuardedFetch: refused before any connection', () => {
  const strict = createGuardedFetch({ allowPrivateAddresses: false });

  it('refuses plain http when private addresses are not allowed', async () => {
    const server = await startServer((_req, res) => res.end('no'));
    const err = await outboundError(strict(`${server.origin}/x`));
    expect(err.kind).toBe('insecure-scheme');
    expect(server.connections).toBe(0);
  });

  it.each(['ftp://127.0.0.1/x', 'file:///etc/passwd', 'data:text/plain,hi'])(
    'refuses %s even when private addresses are allowed',
    async (url) => {
      const loose = createGuardedFetch({ allowPrivateAddresses: true });
      expect((await outboundError(loose(url))).kind).toBe('insecure-scheme');
    },
  );

  it.each([
    ['https://127.0.0.1:PORT/x'],
    ['https://[::1]:PORT/x'],
    ['https://[::ffff:127.0.0.1]:PORT/x'],
    ['https://0.0.0.0:PORT/x'],
  ])('refuses the literal address in %s without connecting', async (template) => {
    const server = await startServer((_req, res) => res.end('no'));
    const err = await outboundError(strict(template.replace('PORT', String(server.port))));
    expect(err.kind).toBe('blocked-address');
    expect(server.connections).toBe(0);
  });

  it('refuses a hostname that resolves to loopback (checked at lookup, before connecting)', async () => {
    const server = await startServer((_req, res) => res.end('no'));
    const err = await outboundError(strict(`https://localhost:${server.port}/jwks`));
    expect(err.kind).toBe('blocked-address');
    expect(err.message).toMatch(/localhost resolves to (127\.0\.0\.1|::1)/);
    expect(err.url).toBe(`https://localhost:${server.port}/jwks`);
    expect(server.connections).toBe(0);
  });

  it('refuses credentials in the URL', async () => {
    await expect(strict('https://user:pw@example.com/')).rejects.toThrow(TypeError);
  });

  it('reports a DNS failure as a network error', async () => {
    const err = await outboundError(strict('https://no-such-host.invalid/.well-known/openid-configuration'));
    expect(err.kind).toBe('network');
    expect(err.message).toContain('https://no-such-host.invalid');
    expect(err.message).toMatch(/ENOTFOUND|EAI_AGAIN|EAI_FAIL/);
  });
});

describe('createGuardedFetch: allowed mode against a local server', () => {
  const loose = createGuardedFetch({ allowPrivateAddresses: true });

  it('fetches JSON: status, statusText, headers and body, as a standard Response', async () => {
    const server = await startServer((_req, res) => {
      res.statusMessage = 'Fine';
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-test', 'one');
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.end(JSON.stringify({ issuer: 'https://idp.example', n: 1 }));
    });
    const res = await loose(`${server.origin}/.well-known/openid-configuration`);
    expect(res).toBeInstanceOf(globalThis.Response);
    expect(res.status).toBe(200);
    expect(res.ok).toBe(true);
    expect(res.statusText).toBe('Fine');
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('x-test')).toBe('one');
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(res.url).toBe(`${server.origin}/.well-known/openid-configuration`);
    expect(await res.json()).toEqual({ issuer: 'https://idp.example', n: 1 });
  });

  it('passes error statuses through (the caller decides what a 4xx means)', async () => {
    const server = await startServer((_req, res) => {
      res.statusCode = 400;
      res.setHeader('content-type', 'application/json');
      res.end('{"error":"invalid_grant"}');
    });
    const res = await loose(`${server.origin}/token`);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_grant' });
  });

  it('returns an empty body for 204', async () => {
    const server = await startServer((_req, res) => {
      res.statusCode = 204;
      res.end();
    });
    const res = await loose(`${server.origin}/revoke`);
    expect(res.status).toBe(204);
    expect(res.body).toBeNull();
  });

  it('passes a POST with a URLSearchParams body and headers through', async () => {
    const server = await startServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            method: req.method,
            contentType: req.headers['content-type'],
            authorization: req.headers.authorization,
            accept: req.headers.accept,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      });
    });
    const res = await loose(`${server.origin}/token`, {
      method: 'POST',
      headers: { authorization: 'Basic Y2xpZW50OnNlY3JldA==', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: 'xyz' }),
    });
    expect(await res.json()).toEqual({
      method: 'POST',
      contentType: 'application/x-www-form-urlencoded;charset=UTF-8',
      authorization: 'Basic Y2xpZW50OnNlY3JldA==',
      accept: 'application/json',
      body: 'grant_type=authorization_code&code=xyz',
    });
  });

  it('accepts a Request object as input', async () => {
    const server = await startServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(`${req.method} ${req.headers['x-a']} ${Buffer.concat(chunks).toString()}`));
    });
    const request = new Request(`${server.origin}/r`, { method: 'PUT', headers: { 'x-a': 'b' }, body: 'payload' });
    const res = await loose(request);
    expect(await res.text()).toBe('PUT b payload');
  });

  it('refuses a redirect and does not follow its Location', async () => {
    const target = await startServer((_req, res) => res.end('followed'));
    const server = await startServer((_req, res) => {
      res.statusCode = 302;
      res.setHeader('location', `${target.origin}/elsewhere?code=leaked`);
      res.end();
    });
    const err = await outboundError(loose(`${server.origin}/authorize`));
    expect(err.kind).toBe('redirect');
    expect(err.message).not.toContain('leaked');
    expect(target.connections).toBe(0);
    expect(server.requests).toBe(1);
  });

  it.each([301, 303, 307, 308, 304])('refuses status %i as a redirect', async (status) => {
    const server = await startServer((_req, res) => {
      res.statusCode = status;
      if (status !== 304) res.setHeader('location', '/other');
      res.end();
    });
    expect((await outboundError(loose(`${server.origin}/x`))).kind).toBe('redirect');
  });

  it('times out a slow server within the limit', async () => {
    const server = await startServer((_req, res) => later(2000, () => res.end('late')));
    const quick = createGuardedFetch({ allowPrivateAddresses: true, timeoutMs: 300 });
    const started = Date.now();
    const err = await outboundError(quick(`${server.origin}/slow`));
    const elapsed = Date.now() - started;
    expect(err.kind).toBe('timeout');
    expect(err.message).toContain('300 ms');
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(1000);
  });

  it('counts reading the body against the time limit', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"partial":');
      later(2000, () => res.end('true}'));
    });
    const quick = createGuardedFetch({ allowPrivateAddresses: true, timeoutMs: 300 });
    const started = Date.now();
    const err = await outboundError(quick(`${server.origin}/stall`));
    expect(err.kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("keeps the caller's own abort reason", async () => {
    const server = await startServer((_req, res) => later(2000, () => res.end('late')));
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    later(100, () => controller.abort(reason));
    await expect(loose(`${server.origin}/slow`, { signal: controller.signal })).rejects.toBe(reason);
  });

  it('refuses a body over the limit announced by Content-Length', async () => {
    const big = Buffer.alloc(2 * MiB, 'a');
    const server = await startServer((_req, res) => {
      res.setHeader('content-length', String(big.length));
      res.end(big);
    });
    const err = await outboundError(createGuardedFetch({ allowPrivateAddresses: true, maxResponseBytes: MiB })(`${server.origin}/big`));
    expect(err.kind).toBe('too-large');
  });

  it('refuses a chunked body (no Content-Length) once it passes the limit', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 'b');
      for (let i = 0; i < 32; i++) res.write(chunk); // 2 MiB in total
      res.end();
    });
    const err = await outboundError(createGuardedFetch({ allowPrivateAddresses: true, maxResponseBytes: MiB })(`${server.origin}/big`));
    expect(err.kind).toBe('too-large');
  });

  it('accepts a body of exactly the limit', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200);
      res.write(Buffer.alloc(600, 'c'));
      res.end(Buffer.alloc(424, 'c'));
    });
    const res = await createGuardedFetch({ allowPrivateAddresses: true, maxResponseBytes: 1024 })(`${server.origin}/exact`);
    expect((await res.arrayBuffer()).byteLength).toBe(1024);
  });

  it('reports a port that fetch forbids as a network error', async () => {
    const err = await outboundError(loose('http://127.0.0.1:1/x'));
    expect(err.kind).toBe('network');
    expect(err.message).toBe('Request to http://127.0.0.1:1 failed: bad port');
  });

  it('reports a refused connection as a network error naming the origin and code', async () => {
    const port = await closedPort();
    const err = await outboundError(loose(`http://127.0.0.1:${port}/token`));
    expect(err.kind).toBe('network');
    expect(err.message).toContain(`http://127.0.0.1:${port}`);
    expect(err.message).toContain('ECONNREFUSED');
  });
});

describe('error messages never carry the query string', () => {
  const QUERY = '?client_secret=abc&code=abc';

  it.each([
    ['insecure-scheme', async () => ({ url: `http://127.0.0.1:${await closedPort()}/cb`, fetch: createGuardedFetch({ allowPrivateAddresses: false }) })],
    ['blocked-address', async () => ({ url: `https://127.0.0.1:${await closedPort()}/cb`, fetch: createGuardedFetch({ allowPrivateAddresses: false }) })],
    [
      'blocked-address',
      async () => {
        const s = await startServer((_req, res) => res.end());
        return { url: `https://localhost:${s.port}/cb`, fetch: createGuardedFetch({ allowPrivateAddresses: false }) };
      },
    ],
    ['network', async () => ({ url: `http://127.0.0.1:${await closedPort()}/cb`, fetch: createGuardedFetch({ allowPrivateAddresses: true }) })],
    ['network', async () => ({ url: 'http://127.0.0.1:1/cb', fetch: createGuardedFetch({ allowPrivateAddresses: true }) })],
    [
      'redirect',
      async () => {
        const s = await startServer((_req, res) => {
          res.writeHead(302, { location: '/next?abc' });
          res.end();
        });
        return { url: `${s.origin}/cb`, fetch: createGuardedFetch({ allowPrivateAddresses: true }) };
      },
    ],
    [
      'timeout',
      async () => {
        const s = await startServer((_req, res) => later(1000, () => res.end()));
        return { url: `${s.origin}/cb`, fetch: createGuardedFetch({ allowPrivateAddresses: true, timeoutMs: 100 }) };
      },
    ],
    [
      'too-large',
      async () => {
        const s = await startServer((_req, res) => res.end('x'.repeat(100)));
        return { url: `${s.origin}/cb`, fetch: createGuardedFetch({ allowPrivateAddresses: true, maxResponseBytes: 10 }) };
      },
    ],
  ] as const)('%s', async (kind, setup) => {
    const { url, fetch: guarded } = await setup();
    const err = await outboundError(guarded(`${url}${QUERY}`));
    expect(err.kind).toBe(kind);
    expect(err.url).toBe(url);
    expect(err.message).not.toContain('abc');
    expect(err.message).not.toContain('?');
    expect(String(err.stack)).not.toContain('abc');
  });
});

describe('as customFetch for openid-client and jose', () => {
  const loose = createGuardedFetch({ allowPrivateAddresses: true });

  it('works for openid-client discovery', async () => {
    let issuer = '';
    const server = await startServer((req, res) => {
      if (req.url !== '/.well-known/openid-configuration') {
        res.statusCode = 404;
        res.end();
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          issuer,
          authorization_endpoint: `${issuer}/auth`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
        }),
      );
    });
    issuer = server.origin;
    const config = await oidc.discovery(new URL(issuer), 'client-id', 'secret', undefined, {
      [oidc.customFetch]: loose,
      execute: [oidc.allowInsecureRequests],
    });
    expect(config.serverMetadata().token_endpoint).toBe(`${issuer}/token`);
  });

  it('works for jose createRemoteJWKSet', async () => {
    const { publicKey, privateKey } = await jose.generateKeyPair('ES256');
    const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const server = await startServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    const token = await new jose.SignJWT({ sub: 'user-1' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuedAt()
      .setExpirationTime('1m')
      .sign(privateKey);
    const jwks = jose.createRemoteJWKSet(new URL(`${server.origin}/jwks`), { [jose.customFetch]: loose });
    const { payload } = await jose.jwtVerify(token, jwks);
    expect(payload.sub).toBe('user-1');
  });
});
