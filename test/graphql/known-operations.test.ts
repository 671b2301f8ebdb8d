/**
 * Answering a known query without Apollo (src/graphql/known-operations.ts), against the real
 * schema, resolvers and Apollo Server in this process: whatever `match` accepts, `execute`
 * answers byte for byte as Apollo did (body and content type); everything else is left to
 * Apollo, and so are results with errors.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HeaderMap } from '@apollo/server';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { RequestRateLimiter } from '../../src/core/rate-limit.ts';
import { createGraphQLServer, type GraphQLEngine } from '../../src/graphql/server.ts';
import { MAX_ACCEPT_VALUES, MAX_KNOWN_DOCUMENT_CHARS, MAX_KNOWN_OPERATIONS, MAX_KNOWN_QUERY_LENGTH } from '../../src/graphql/known-operations.ts';
import type { GraphQLContext } from '../../src/graphql/context.ts';
import type { Principal } from '../../src/accounts/principal.ts';

const ALICE = {
  kind: 'user',
  owner: 'core',
  user: { id: 7, email: 'alice@example.com', isStaff: false, isActive: true, firstName: 'Alice', lastName: '', metadata: {}, privateMetadata: {} },
  permissions: [],
  isStaff: false,
} as unknown as Principal;

/** The parts of a context the queries below use: who is asking, known at once. */
function context(principal: Principal | null): GraphQLContext {
  return {
    token: principal ? 'a-token' : undefined,
    meta: {},
    principalNow: () => principal,
    principalSeen: () => principal,
    principalSettled: () => principal,
    principal: () => Promise.resolve(principal),
    req: { ip: '127.0.0.1', requestId: 'test', cookies: {}, setCookies: [], trustedOrigin: false },
  } as unknown as GraphQLContext;
}

let engine: GraphQLEngine;
const limiter = RequestRateLimiter.create({ perMinute: 1000, redisUrl: undefined }, createLogger('error'));

// A fresh engine per test: what one test teaches it (documents, Accept values) is not the next one's.
beforeEach(async () => {
  engine = createGraphQLServer(createLogger('error', {}, () => {}), loadConfig({}), limiter);
  await engine.apollo.start();
});
afterEach(async () => {
  await engine.apollo.stop();
});
afterAll(async () => {
  await limiter.close();
});

interface Answer {
  status: number;
  contentType: string | undefined;
  body: string;
}

/** Apollo's answer, as the HTTP layer asks for it (and learns from it). */
async function viaApollo(body: unknown, accept: string | undefined, principal: Principal | null = null, contentType = 'application/json'): Promise<Answer> {
  const headers = new HeaderMap([['content-type', contentType]]);
  if (accept !== undefined) headers.set('accept', accept);
  const ctx = context(principal);
  const result = await engine.apollo.executeHTTPGraphQLRequest({ httpGraphQLRequest: { method: 'POST', headers, search: '', body }, context: async () => ctx });
  if (result.body.kind !== 'complete') throw new Error('not a complete body');
  engine.known.learn(accept, result.status ?? 200, result.headers);
  return { status: result.status ?? 200, contentType: result.headers.get('content-type'), body: result.body.string };
}

/** The answer without Apollo, or undefined when the request is left to Apollo. */
async function viaKnown(body: unknown, accept: string | undefined, principal: Principal | null = null, contentType = 'application/json'): Promise<Answer | undefined> {
  const request = engine.known.match('POST', body, contentType, accept);
  if (!request) return undefined;
  const text = await engine.known.execute(request, context(principal));
  return text === undefined ? undefined : { status: 200, contentType: request.contentType, body: text };
}

/** Apollo answers twice (the second time as a known operation, which teaches the content type), then the request must be answered without it, identically. */
async function expectSameAnswer(body: unknown, accept: string | undefined, principal: Principal | null = null): Promise<Answer> {
  await viaApollo(body, accept, principal);
  const apollo = await viaApollo(body, accept, principal);
  const known = await viaKnown(body, accept, principal);
  expect(known).toEqual(apollo);
  return apollo;
}

describe('answering a known query without Apollo', () => {
  it.each([
    ['no Accept header', undefined],
    ['*/*', '*/*'],
    ['application/json', 'application/json'],
    ['graphql-response+json first', 'application/graphql-response+json, application/json;q=0.9'],
    ['application/json with a quality', 'text/html;q=0.1, application/json;q=0.5'],
  ])('gives Apollo’s body and content type (%s)', async (_, accept) => {
    const anonymous = await expectSameAnswer({ query: '{ me { email } }' }, accept);
    expect(anonymous.body).toBe('{"data":{"me":null}}\n');
    const alice = await expectSameAnswer({ query: '{ me { email firstName } }' }, accept, ALICE);
    expect(JSON.parse(alice.body)).toEqual({ data: { me: { email: 'alice@example.com', firstName: 'Alice' } } });
  });

  it('picks the operation its operationName names, with its variables', async () => {
    const query = 'query A($x: Boolean!) { me @include(if: $x) { email } } query B { me { id } }';
    expect(JSON.parse((await expectSameAnswer({ query, operationName: 'A', variables: { x: true } }, undefined, ALICE)).body)).toEqual({ data: { me: { email: 'alice@example.com' } } });
    expect(JSON.parse((await expectSameAnswer({ query, operationName: 'A', variables: { x: false } }, undefined, ALICE)).body)).toEqual({ data: {} });
    expect(JSON.parse((await expectSameAnswer({ query, operationName: 'B', variables: null }, undefined, ALICE)).body).data.me.id).toEqual(expect.any(String));
  });

  it('leaves results with errors to Apollo: a refused field, a variable of the wrong type', async () => {
    const denied = { query: '{ staffUsers(first: 1) { edges { node { id } } } }' };
    await viaApollo(denied, undefined);
    expect(engine.known.match('POST', denied, 'application/json', undefined)).toBeDefined();
    expect(await viaKnown(denied, undefined)).toBeUndefined();
    const apollo = await viaApollo(denied, undefined);
    expect(apollo.status).toBe(200);
    expect(JSON.parse(apollo.body).errors[0].extensions.exception.code).toBe('PermissionDenied');

    const typed = { query: 'query T($x: Boolean!) { me @include(if: $x) { email } }', variables: { x: 'yes' } };
    await viaApollo(typed, undefined);
    expect(await viaKnown(typed, undefined)).toBeUndefined();
    expect((await viaApollo(typed, undefined)).status).toBe(400);
  });

  it('never answers what Apollo did not accept: syntax and validation errors, mutations, other operation names', async () => {
    const cases: Array<{ body: Record<string, unknown>; status: number }> = [
      { body: { query: '{ me { email ' }, status: 400 },
      { body: { query: '{ me { noSuchField } }' }, status: 400 },
      { body: { query: '{ me { email } }', operationName: 'Missing' }, status: 400 },
      { body: { query: 'mutation { tokenVerify(token: "x") { isValid } }' }, status: 200 },
      { body: { query: `{ ${Array.from({ length: 30 }, () => 'me {').join(' ')} email ${'}'.repeat(31)}` }, status: 400 },
    ];
    for (const { body, status } of cases) {
      for (let i = 0; i < 3; i++) expect((await viaApollo(body, undefined)).status).toBe(status);
      expect(engine.known.match('POST', body, 'application/json', undefined)).toBeUndefined();
    }
  });

  it('leaves to Apollo every request it would answer differently', async () => {
    const query = '{ me { id email } }';
    await viaApollo({ query }, undefined);
    const match = (method: string, body: unknown, contentType: string | undefined, accept: string | undefined) => engine.known.match(method, body, contentType, accept);
    expect(match('POST', { query }, 'application/json', undefined)).toBeDefined();
    expect(match('POST', { query }, 'Application/JSON; charset=UTF-8', undefined)).toBeDefined();
    expect(match('GET', { query }, 'application/json', undefined)).toBeUndefined();
    for (const contentType of [undefined, 'text/plain', 'application/json; charset=latin1', 'application/jsonp', 'text/plain; a=application/json']) {
      expect(match('POST', { query }, contentType, undefined)).toBeUndefined();
    }
    for (const body of [
      [{ query }],
      { query, extensions: { persistedQuery: { version: 1, sha256Hash: 'x' } } },
      { query, extensions: 'x' },
      { query, variables: '{}' },
      { query, variables: [1] },
      { query, operationName: 5 },
      { query: `${query} ` },
      { query: query.replace('id email', 'email id') },
      null,
      'text',
    ]) {
      expect(match('POST', body, 'application/json', undefined)).toBeUndefined();
    }
    // An Accept header Apollo has not answered yet; and one it refuses (406) is never learnt.
    expect(match('POST', { query }, 'application/json', 'application/json; q=0.8')).toBeUndefined();
    expect((await viaApollo({ query }, 'text/html')).status).toBe(406);
    expect(match('POST', { query }, 'application/json', 'text/html')).toBeUndefined();
    expect((await viaApollo({ query }, 'text/html')).status).toBe(406);
  });

  it('does not remember a text over MAX_KNOWN_QUERY_LENGTH characters', async () => {
    const long = { query: `{ me { email } } ${'#'.repeat(MAX_KNOWN_QUERY_LENGTH)}` };
    await viaApollo(long, undefined);
    await viaApollo(long, undefined);
    expect(engine.known.match('POST', long, 'application/json', undefined)).toBeUndefined();
    expect(engine.known.find(long.query, undefined)).toBeUndefined();
  });

  it('keeps at most MAX_KNOWN_DOCUMENT_CHARS characters of documents: the oldest one-off documents make room, one in use stays', async () => {
    // Distinct documents of 4,000 characters (comments pad them).
    const padded = (i: number) => ({ query: `query P${i} { me { email } } #${'x'.repeat(4000)}` });
    const fit = Math.floor(MAX_KNOWN_DOCUMENT_CHARS / padded(0).query.length);
    const hot = { query: '{ me { email isStaff } }' };
    await viaApollo(hot, undefined);
    await viaApollo(hot, undefined);
    for (let i = 0; i < 2 * fit; i++) {
      await viaApollo(padded(i), undefined);
      // The hot document is asked for between the others; they are never asked for again.
      expect(await viaKnown(hot, undefined)).toBeDefined();
    }
    const kept = Array.from({ length: 2 * fit }, (_, i) => engine.known.find(padded(i).query, undefined) !== undefined);
    // The newest ones are kept (as many as fit beside the hot one), every older one is gone.
    const oldestKept = kept.indexOf(true);
    expect(kept.slice(oldestKept).every(Boolean)).toBe(true);
    expect(2 * fit - oldestKept).toBeGreaterThanOrEqual(fit - 1);
    expect(2 * fit - oldestKept).toBeLessThanOrEqual(fit);
    expect(engine.known.find(hot.query, undefined)).toBeDefined();
    expect(engine.known.size).toBe(2 * fit - oldestKept + 1);
  });

  it(`keeps at most ${MAX_KNOWN_OPERATIONS} operations, and answers the newest without Apollo`, async () => {
    const small = (i: number) => ({ query: `query S${i} { me { id } }`, operationName: `S${i}` });
    for (let i = 0; i < MAX_KNOWN_OPERATIONS + 50; i++) await viaApollo(small(i), undefined);
    expect(engine.known.size).toBe(MAX_KNOWN_OPERATIONS);
    expect(engine.known.find(small(0).query, 'S0')).toBeUndefined();
    expect(engine.known.find(small(49).query, 'S49')).toBeUndefined();
    expect(engine.known.find(small(50).query, 'S50')).toBeDefined();
    expect(await viaKnown(small(MAX_KNOWN_OPERATIONS + 49), undefined)).toEqual(await viaApollo(small(MAX_KNOWN_OPERATIONS + 49), undefined));
  });

  it(`remembers at most ${MAX_ACCEPT_VALUES} Accept values`, async () => {
    const query = '{ me { isActive } }';
    for (let i = 0; i < MAX_ACCEPT_VALUES + 10; i++) expect((await viaApollo({ query }, `application/json, text/x-${i}`)).status).toBe(200);
    let learnt = 0;
    for (let i = 0; i < MAX_ACCEPT_VALUES + 10; i++) if (engine.known.match('POST', { query }, 'application/json', `application/json, text/x-${i}`)) learnt++;
    expect(learnt).toBe(MAX_ACCEPT_VALUES);
  });

  it('property: whenever a request is answered without Apollo, the answer is Apollo’s', async () => {
    let withoutApollo = 0;
    const queries = ['{ me { email } }', 'query M($x: Boolean!) { me @include(if: $x) { email isActive } }', 'query N { me { firstName } } query O { me { lastName } }'];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...queries),
        fc.option(fc.constantFrom('M', 'N', 'O', 'Q'), { nil: undefined }),
        fc.option(fc.dictionary(fc.constantFrom('x', 'y'), fc.oneof(fc.boolean(), fc.string(), fc.constant(null))), { nil: undefined }),
        fc.constantFrom(undefined, '*/*', 'application/json', 'application/graphql-response+json'),
        fc.boolean(),
        async (query, operationName, variables, accept, signedIn) => {
          const body = { query, ...(operationName ? { operationName } : {}), ...(variables ? { variables } : {}) };
          const principal = signedIn ? ALICE : null;
          const apollo = await viaApollo(body, accept, principal);
          const known = await viaKnown(body, accept, principal);
          // Left to Apollo (undefined) is always right; an answer must be Apollo's.
          if (known !== undefined) withoutApollo++;
          expect(known ?? apollo).toEqual(apollo);
        },
      ),
      { numRuns: 200 },
    );
    // And it was exercised: runs without errors (about a quarter of them) went without Apollo.
    expect(withoutApollo).toBeGreaterThan(20);
  });

  it('property: any JSON body and any headers are matched without throwing, and only a remembered query text with a learnt Accept is ever matched', async () => {
    const query = '{ me { email } }';
    await viaApollo({ query }, undefined);
    await viaApollo({ query }, '*/*');
    const body = fc.oneof(
      fc.jsonValue(),
      fc.record({ query: fc.oneof(fc.constant(query), fc.jsonValue()), operationName: fc.jsonValue(), variables: fc.jsonValue(), extensions: fc.jsonValue() }, { requiredKeys: [] }),
    );
    const header = fc.option(fc.oneof(fc.constantFrom('application/json', '*/*', 'text/plain', 'APPLICATION/JSON'), fc.string()), { nil: undefined });
    fc.assert(
      fc.property(fc.constantFrom('POST', 'GET', 'PUT', undefined), body, header, header, (method, b, contentType, accept) => {
        const request = engine.known.match(method, b, contentType, accept);
        if (request === undefined) return;
        expect(method).toBe('POST');
        expect((b as { query: unknown }).query).toBe(query);
        expect(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']).toContain(contentType?.toLowerCase());
        expect([undefined, '*/*']).toContain(accept);
      }),
      { numRuns: 2000 },
    );
    expect(engine.known.match('POST', { query }, 'application/json', '*/*')).toBeDefined();
  });

  it('leaves an empty operationName to Apollo (it names no operation), even once the answer for the principal is remembered', async () => {
    const query = '{ me { email } }';
    for (let i = 0; i < 3; i++) await expectSameAnswer({ query }, undefined, ALICE);
    expect(engine.known.match('POST', { query, operationName: '' }, 'application/json', undefined)).toBeUndefined();
    const apollo = await viaApollo({ query, operationName: '' }, undefined, ALICE);
    expect(apollo.status).toBe(400);
    expect(JSON.parse(apollo.body).errors[0].message).toContain('Unknown operation named ""');
  });

  it('learns an empty Accept header apart from an absent one, from Apollo’s own answer to it', async () => {
    const query = '{ me { email } }';
    await viaApollo({ query }, undefined);
    await viaApollo({ query }, undefined);
    expect(engine.known.match('POST', { query }, 'application/json', undefined)).toBeDefined();
    expect(engine.known.match('POST', { query }, 'application/json', '')).toBeUndefined();
    await viaApollo({ query }, '');
    expect(await viaKnown({ query }, '')).toEqual(await viaApollo({ query }, ''));
  });

  it('after close() (shutdown) leaves everything to Apollo', async () => {
    const body = { query: '{ me { email } }' };
    await viaApollo(body, undefined);
    expect(engine.known.match('POST', body, 'application/json', undefined)).toBeDefined();
    engine.known.close();
    expect(engine.known.match('POST', body, 'application/json', undefined)).toBeUndefined();
  });
});
