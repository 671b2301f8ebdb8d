/**
 * Property-based fuzzing of the real server (its own OS process, default HTTP limits) over raw
 * sockets (issue 8): arbitrary request targets, GraphQL documents (random strings, and random
 * documents with aliases, fragments, inline fragments, variables, directives and deep
 * nesting), JSON bodies and header values. Every reply is well-formed HTTP/1.1, never a 5xx;
 * the process stays alive and /healthz answers after every run.
 *
 * fast-check prints the seed and path of a failure; replay it with FC_SEED=<seed> (and
 * FC_PATH=<path>). FC_RUNS scales the number of runs (default below).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { exchange, header, healthz, request, type Exchange } from '../helpers/raw-http.ts';

const RUNS = Number(process.env['FC_RUNS'] ?? 300);
const replay = {
  ...(process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {}),
  ...(process.env['FC_PATH'] ? { path: process.env['FC_PATH'] } : {}),
};

let server: ServerProcess;

beforeAll(async () => {
  // Default HTTP and GraphQL limits; rate limiting off, so that a run's status does not depend
  // on how many runs came before it.
  server = await startServerProcess({ env: { RATE_LIMIT_PER_IP_PER_MINUTE: '0' } });
});
afterAll(async () => {
  await server?.close();
});

const TARGET_STATUSES = ['200', '204', '400', '404', '405', '413', '414', '431'];
const GRAPHQL_STATUSES = ['200', '400'];

function show(x: Exchange): string {
  return JSON.stringify(x.bytes.subarray(0, 800).toString('latin1'));
}

function expectWellFormed(x: Exchange): void {
  expect(x.parsed.error, `malformed reply: ${show(x)}`).toBeUndefined();
  for (const r of x.finals) {
    const json = /^application\/(graphql-response\+)?json\b/i.test(header(r, 'content-type') ?? '');
    expect(() => (json ? JSON.parse(r.body.toString('utf8')) : null), `body of a JSON response: ${show(x)}`).not.toThrow();
  }
}

async function expectHealthy(): Promise<void> {
  expect(server.alive(), `server exited: ${JSON.stringify(server.exit())}\n${server.stderr().slice(-2000)}`).toBe(true);
  const h = await healthz(server.port);
  expect(h.outcome, show(h)).toBe('200');
}

/** Whatever `query` (and the rest) is, the answer is a GraphQL response with 200 or 400. */
async function expectGraphQLAnswer(body: Buffer): Promise<void> {
  const x = await exchange(server.port, request('POST', '/graphql/', { 'Content-Type': 'application/json' }, body), { timeoutMs: 10_000, untilClose: true });
  expectWellFormed(x);
  expect(x.timedOut, `connection not closed: ${show(x)}`).toBe(false);
  expect(GRAPHQL_STATUSES, `outcome ${x.outcome} for ${JSON.stringify(body.subarray(0, 400).toString('utf8'))}: ${show(x)}`).toContain(x.outcome);
  const text = x.finals[0]!.body.toString('utf8');
  const parsed = JSON.parse(text);
  expect(parsed !== null && typeof parsed === 'object' && ('data' in parsed || 'errors' in parsed), text.slice(0, 400)).toBe(true);
  expect(text).not.toContain('Internal Server Error');
  expect(text).not.toContain('INTERNAL_SERVER_ERROR');
  await expectHealthy();
}

// --- request targets ------------------------------------------------------------------------

const TARGET_PIECES = [
  '%', '%%', '%zz', '%0', '%00', '%2f', '%2F', '%E0%A4%A', '%ff', '%C0%AF', '//', '/', ':', '::', '[', ']', '[::1]', '@', '..', '.', '?', '#', '&', '=', '\\',
  '*', ' ', '\t', '\r', '\n', '\r\n', '\x00', '\x7f', '\xff', 'http://', 'https://', 'http://[', ':99999', ':-1', ':0x10', 'a', 'x', '~', '+', ';', ',', '"', "'",
  '<', '>', '{', '}', '|', '^', '`', '\r\n\r\n', ' HTTP/1.1\r\n', ' HTTP/1.0\r\n\r\n', '/graphql', '/graphql/', '/healthz', '/readyz', '/.well-known/jwks.json', '/oidc/backchannel-logout/', '?query=', '\u00e9', '\u{1f600}', '\ud800',
];

const target = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.array(fc.oneof(fc.constantFrom(...TARGET_PIECES), fc.string({ unit: 'binary-ascii', maxLength: 3 })), { maxLength: 16 }).map((p) => p.join('')),
  fc.array(fc.constantFrom(...TARGET_PIECES), { minLength: 1, maxLength: 16 }).map((p) => '/' + p.join('')),
  fc.tuple(fc.constantFrom('/graphql/', '/healthz', '/oidc/backchannel-logout/', '//', 'http://'), fc.string({ unit: 'binary-ascii', maxLength: 30 })).map(([a, b]) => a + b),
);

// --- GraphQL documents ----------------------------------------------------------------------

const FIELD_NAMES = [
  'me', 'user', 'staffUsers', 'permissionGroups', 'shop', 'plugins', 'plugin', '__typename', '__schema', '__type', 'types', 'fields', 'name', 'type', 'ofType', 'kind',
  'id', 'email', 'isStaff', 'edges', 'node', 'totalCount', 'pageInfo', 'hasNextPage', 'availableExternalAuthentications', 'userPermissions', 'code', 'errors', 'field',
  'message', 'token', 'isValid', 'payload', 'tokenVerify', 'tokenRefresh', 'tokensDeactivateAll', 'externalAuthenticationUrl', 'externalObtainAccessTokens',
  'externalRefresh', 'externalLogout', 'externalVerify', 'authenticationData', 'globalConfiguration', 'configuration', 'value', 'active',
];
const TYPE_NAMES = ['Query', 'Mutation', 'User', 'Shop', 'Plugin', 'Node', 'Group', 'Nope', 'String', '__Schema'];

const name = fc.oneof(fc.constantFrom(...FIELD_NAMES), fc.stringMatching(/^[_A-Za-z][_0-9A-Za-z]{0,6}$/));
const variableName = fc.constantFrom('a', 'b', 'token', 'input', 'first');
const graphqlString = fc.string({ unit: 'binary', maxLength: 12 }).map((s) => JSON.stringify(s));
const scalarValue = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => String(d)),
  graphqlString,
  fc.constantFrom('true', 'false', 'null', 'ENUM_VALUE', '"""block"""', '1e400', '-0', '0x10'),
  variableName.map((v) => `$${v}`),
);
const value: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalarValue,
    fc.array(tie('value'), { maxLength: 3 }).map((vs) => `[${vs.join(', ')}]`),
    fc.array(fc.tuple(name, tie('value')), { maxLength: 3 }).map((kvs) => `{${kvs.map(([k, v]) => `${k}: ${v}`).join(', ')}}`),
  ),
})).value;
const args = fc.array(fc.tuple(name, value), { maxLength: 3 }).map((as) => (as.length ? `(${as.map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''));
const directive = fc.oneof(
  fc.constantFrom('@include(if: true)', '@include(if: false)', '@skip(if: true)', '@skip(if: $a)', '@deprecated', '@specifiedBy(url: "x")', '@include', '@skip(if: 1)'),
  fc.tuple(name, args).map(([n, a]) => `@${n}${a}`),
);
const directives = fc.array(directive, { maxLength: 2 }).map((ds) => ds.join(' '));
const fragmentName = fc.constantFrom('F0', 'F1', 'F2', 'F3');

const selectionSet: fc.Arbitrary<string> = fc.letrec<{ set: string; selection: string }>((tie) => ({
  selection: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    // field, with an optional alias, arguments, directives and sub-selection
    fc
      .tuple(fc.option(name, { nil: undefined }), name, args, directives, fc.option(tie('set'), { nil: undefined, freq: 2 }))
      .map(([alias, n, a, d, sub]) => `${alias ? `${alias}: ` : ''}${n}${a} ${d} ${sub ?? ''}`),
    // inline fragment, with or without a type condition
    fc.tuple(fc.option(fc.constantFrom(...TYPE_NAMES), { nil: undefined }), directives, tie('set')).map(([t, d, s]) => `... ${t ? `on ${t} ` : ''}${d} ${s}`),
    // fragment spread
    fc.tuple(fragmentName, directives).map(([f, d]) => `...${f} ${d}`),
  ),
  set: fc.array(tie('selection'), { minLength: 1, maxLength: 4 }).map((ss) => `{ ${ss.join(' ')} }`),
})).set;

const variableType = fc.constantFrom('Int', 'Int!', 'String', 'String!', '[String!]!', 'ID', 'Boolean', 'JSONString!', 'Nope', '[[Int]]', 'Float = 1.5');
const variableDefinitions = fc
  .array(fc.tuple(variableName, variableType), { maxLength: 3 })
  .map((vs) => (vs.length ? `(${vs.map(([n, t]) => `$${n}: ${t}`).join(', ')})` : ''));
const operation = fc.oneof(
  selectionSet,
  fc
    .tuple(fc.constantFrom('query', 'mutation', 'subscription'), fc.option(fc.stringMatching(/^[A-Za-z]{1,6}$/), { nil: '' }), variableDefinitions, directives, selectionSet)
    .map(([kind, n, v, d, s]) => `${kind} ${n}${v} ${d} ${s}`),
);
const fragment = fc.tuple(fragmentName, fc.constantFrom(...TYPE_NAMES), directives, selectionSet).map(([f, t, d, s]) => `fragment ${f} on ${t} ${d} ${s}`);
/** n levels of `{ a: __typename ... }`-like nesting through `shop` / random names. */
const deepDocument = fc.tuple(fc.integer({ min: 1, max: 3000 }), name).map(([depth, n]) => `{${` ${n} {`.repeat(depth)} __typename${' }'.repeat(depth)} }`);
const generatedDocument = fc.tuple(fc.array(operation, { minLength: 1, maxLength: 2 }), fc.array(fragment, { maxLength: 3 })).map(([ops, frags]) => [...ops, ...frags].join('\n'));
/** A generated document, cut short or with a random character inserted somewhere. */
const damagedDocument = fc
  .tuple(generatedDocument, fc.nat(), fc.oneof(fc.constant(''), fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 2 })))
  .map(([doc, at, insert]) => (insert === '' ? doc.slice(0, at % (doc.length + 1)) : doc.slice(0, at % (doc.length + 1)) + insert + doc.slice(at % (doc.length + 1))));

const document = fc.oneof(
  { arbitrary: generatedDocument, weight: 4 },
  { arbitrary: damagedDocument, weight: 2 },
  { arbitrary: deepDocument, weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 60 }), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 60 }), weight: 1 },
);
const jsonVariables = fc.option(fc.dictionary(fc.constantFrom('a', 'b', 'token', 'input', 'first', '__proto__', 'constructor'), fc.jsonValue({ maxDepth: 3 })), { nil: undefined });
const operationName = fc.option(fc.oneof(fc.stringMatching(/^[A-Za-z]{1,6}$/), fc.jsonValue({ maxDepth: 1 })), { nil: undefined, freq: 4 });

describe('fuzz (fast-check, raw sockets)', () => {
  it('arbitrary request targets: a well-formed reply in the allowed statuses, and the process lives', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(target, async (t) => {
        const bytes = Buffer.concat([Buffer.from('GET ', 'latin1'), Buffer.from(t, 'utf8'), Buffer.from(' HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 'latin1')]);
        // Read until the server closes: whatever it sends after the first response must be well-formed too.
        const x = await exchange(server.port, bytes, { timeoutMs: 10_000, untilClose: true });
        expectWellFormed(x);
        expect(x.timedOut, `connection not closed: ${show(x)}`).toBe(false);
        expect(TARGET_STATUSES, `outcome ${x.outcome} for target ${JSON.stringify(t)}: ${show(x)}`).toContain(x.outcome);
        await expectHealthy();
      }),
      { numRuns: RUNS, ...replay },
    );
  });

  it('arbitrary GraphQL documents: 200 or 400 with data or errors, never an internal error', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(document, jsonVariables, operationName, async (query, variables, opName) => {
        await expectGraphQLAnswer(Buffer.from(JSON.stringify({ query, variables, operationName: opName }), 'utf8'));
      }),
      { numRuns: RUNS, ...replay },
    );
  });

  it('arbitrary JSON bodies: 200 or 400 with data or errors, never an internal error', { timeout: 120_000 }, async () => {
    const bodyValue = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }),
      fc.record({ query: fc.jsonValue({ maxDepth: 2 }), variables: fc.jsonValue({ maxDepth: 2 }), operationName: fc.jsonValue({ maxDepth: 1 }), extensions: fc.jsonValue({ maxDepth: 3 }) }, { requiredKeys: [] }),
    );
    await fc.assert(
      fc.asyncProperty(bodyValue, async (v) => {
        await expectGraphQLAnswer(Buffer.from(JSON.stringify(v) ?? 'null', 'utf8'));
      }),
      { numRuns: Math.ceil(RUNS * 0.7), ...replay },
    );
  });

  it('arbitrary header values (Cookie, Authorization, Authorization-Bearer, Origin, X-Request-Id, X-Forwarded-For, Content-Type)', { timeout: 120_000 }, async () => {
    const headerName = fc.constantFrom('Cookie', 'Authorization', 'Authorization-Bearer', 'Origin', 'X-Request-Id', 'X-Forwarded-For', 'Content-Type', 'Accept', 'Apollo-Require-Preflight');
    const headerValue = fc.oneof(
      fc.string({ unit: 'binary-ascii', maxLength: 60 }),
      fc.tuple(fc.constantFrom('Bearer ', 'JWT ', 'refreshToken=', 'http://localhost:', 'application/json;'), fc.string({ unit: 'binary-ascii', maxLength: 60 })).map(([a, b]) => a + b),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(headerName, headerValue), { minLength: 1, maxLength: 4 }), async (headers) => {
        const body = '{"query":"{ me { id } }"}';
        // Header values are bytes: latin1 keeps each char < 256 one byte.
        const bytes = Buffer.from(
          ['POST /graphql/ HTTP/1.1', 'Host: 127.0.0.1', 'Content-Type: application/json', ...headers.map(([k, v]) => `${k}: ${v}`), `Content-Length: ${body.length}`, 'Connection: close', '', body].join('\r\n'),
          'latin1',
        );
        const x = await exchange(server.port, bytes, { timeoutMs: 10_000, untilClose: true });
        expectWellFormed(x);
        expect(x.timedOut, `connection not closed: ${show(x)}`).toBe(false);
        expect(['200', '400', '406', '415', '431'], `outcome ${x.outcome} for ${JSON.stringify(headers)}: ${show(x)}`).toContain(x.outcome);
        expect(x.bytes.toString('latin1')).not.toContain('Internal Server Error');
        await expectHealthy();
      }),
      { numRuns: Math.ceil(RUNS * 0.7), ...replay },
    );
  });

  it('nothing escaped an error boundary (no error-level log line)', async () => {
    await expectHealthy();
    const errors = server.logRecords().filter((r) => r['level'] === 'error');
    expect(errors.map((r) => ({ message: r['message'], errorName: r['errorName'], errorMessage: r['errorMessage'], path: r['path'] }))).toEqual([]);
  });
});
