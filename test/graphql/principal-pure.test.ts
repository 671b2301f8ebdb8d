/**
 * Principal-pure documents (src/graphql/principal-pure.ts) and their remembered answers
 * (src/graphql/answer-memo.ts), against the real schema and resolvers:
 * - every listed field exists, and runs without touching any service (a context whose services
 *   throw), with the same answer every time, for several principals;
 * - documents are classified as pure only when every field is listed and no variable is declared
 *   (table, and a property: one unlisted field anywhere makes a document impure);
 * - a remembered answer is given only for the principal object it was computed for, never for an
 *   impure document, an unknown verdict or an expired token; bounds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HeaderMap } from '@apollo/server';
import { TypeInfo, execute, isObjectType, parse, visit, visitWithTypeInfo, type GraphQLSchema } from 'graphql';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { RequestRateLimiter } from '../../src/core/rate-limit.ts';
import { createGraphQLServer, type GraphQLEngine } from '../../src/graphql/server.ts';
import { ALWAYS_EMPTY_FIELDS, PRINCIPAL_PURE_FIELDS, dependsOnlyOnPrincipal } from '../../src/graphql/principal-pure.ts';
import { execFileSync } from 'node:child_process';
import { AnswerMemo, MAX_ANSWER_LENGTH, SLOTS_PER_PRINCIPAL } from '../../src/graphql/answer-memo.ts';
import { expiredSignature, type GraphQLContext } from '../../src/graphql/context.ts';
import type { Principal } from '../../src/accounts/principal.ts';

function userPrincipal(id: number, email: string, extra: { permissions?: string[]; isStaff?: boolean; metadata?: Record<string, string> } = {}): Principal {
  const user = {
    id,
    email,
    firstName: 'First',
    lastName: 'Last',
    isStaff: extra.isStaff ?? false,
    isActive: true,
    isConfirmed: true,
    lastLogin: new Date('2026-11-30T10:00:00Z'),
    dateJoined: new Date('2026-01-02T03:04:05Z'),
    updatedAt: new Date('2026-11-30T10:00:00Z'),
    externalReference: null,
    metadata: extra.metadata ?? {},
    privateMetadata: { secret: 'never shown' },
    tokenKey: 'k',
  };
  return { kind: 'user', owner: 'core', user, permissions: extra.permissions ?? [], isStaff: extra.isStaff ?? false } as unknown as Principal;
}

const CUSTOMER = userPrincipal(7, 'alice@example.com', { metadata: { color: 'green', size: 'M' } });
const STAFF = userPrincipal(8, 'staff@example.com', { isStaff: true, permissions: ['MANAGE_STAFF', 'MANAGE_ORDERS'] });
const APP = { kind: 'app', owner: 'oidc', clientId: 'svc', permissions: ['MANAGE_USERS'] } as unknown as Principal;

/** Throws on any property read: a listed field must never reach the services, the request or the token. */
const untouchable = (what: string) =>
  new Proxy(
    {},
    {
      get: (_, key) => {
        throw new Error(`a principal-pure field read ${what}.${String(key)}`);
      },
    },
  );

/**
 * A context that knows only its principal. `settled` is what the memo is keyed by, `now` what
 * resolvers see: tests make them differ to tell a remembered answer from a computed one.
 */
function pureContext(now: Principal | null, settled: Principal | null | undefined = now): GraphQLContext {
  const ctx = {
    meta: {},
    principalNow: () => now,
    principalSeen: () => now,
    principalSettled: () => settled,
    principal: () => Promise.resolve(now),
  };
  for (const key of ['app', 'req', 'token']) Object.defineProperty(ctx, key, { get: () => (untouchable(key) as { x: unknown }).x });
  return ctx as unknown as GraphQLContext;
}

/** Runs an ES module `script` in a node process of its own with the collector at hand (globalThis.gc); its stdout. */
const withCollector = (script: string): string =>
  execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });

let engine: GraphQLEngine;
let schema: GraphQLSchema;
const limiter = RequestRateLimiter.create({ perMinute: 1000, redisUrl: undefined }, createLogger('error'));

/** Apollo answers `query` (so that it is known), with a context of its own. */
async function throughApollo(query: string, principal: Principal | null = null) {
  const result = await engine.apollo.executeHTTPGraphQLRequest({
    httpGraphQLRequest: { method: 'POST', headers: new HeaderMap([['content-type', 'application/json']]), search: '', body: { query } },
    context: async () => pureContext(principal),
  });
  if (result.body.kind !== 'complete') throw new Error('not a complete body');
  engine.known.learn(undefined, result.status ?? 200, result.headers);
  return result.body.string;
}

/** The answer the known-operation path gives `query` for a context (undefined: left to Apollo). */
async function viaKnown(query: string, ctx: GraphQLContext) {
  const request = engine.known.match('POST', { query }, 'application/json', undefined);
  if (!request) throw new Error(`not a known operation: ${query}`);
  return engine.known.execute(request, ctx);
}

beforeAll(async () => {
  engine = createGraphQLServer(createLogger('error', {}, () => {}), loadConfig({}), limiter);
  await engine.apollo.start();
  await throughApollo('{ __typename }');
  schema = engine.known.find('{ __typename }', undefined)!.schema;
});
afterAll(async () => {
  await engine.apollo.stop();
  await limiter.close();
});

/** A selection for every listed field reachable from `me`, with literal arguments where they are required. */
const EVERY_PURE_FIELD = `{ me {
  __typename id email firstName lastName isStaff isActive isConfirmed lastLogin dateJoined updatedAt externalReference
  metadata { key value __typename } metafield(key: "color") metafields(keys: ["color", "none"]) all: metafields
  userPermissions { code name }
  avatar(size: 64) { url } accessibleChannels { id } restrictedAccessToChannels addresses { id } defaultShippingAddress { id } defaultBillingAddress { id }
} }`;

describe('the listed fields', () => {
  it('exist, on object types, in the schema', () => {
    for (const coordinate of [...PRINCIPAL_PURE_FIELDS, ...ALWAYS_EMPTY_FIELDS]) {
      const [typeName, field] = coordinate.split('.');
      const type = schema.getType(typeName!);
      expect(isObjectType(type), coordinate).toBe(true);
      expect(isObjectType(type) && type.getFields()[field!], coordinate).toBeTruthy();
    }
  });

  it('are all selected by the document below, which is pure', () => {
    const selected = new Set<string>();
    const typeInfo = new TypeInfo(schema);
    visit(parse(EVERY_PURE_FIELD), visitWithTypeInfo(typeInfo, { Field: (node) => void selected.add(`${typeInfo.getParentType()!.name}.${node.name.value}`) }));
    for (const coordinate of [...PRINCIPAL_PURE_FIELDS, ...ALWAYS_EMPTY_FIELDS]) expect(selected.has(coordinate), coordinate).toBe(true);
    expect(dependsOnlyOnPrincipal(schema, parse(EVERY_PURE_FIELD))).toBe(true);
  });

  it.each([
    ['anonymous', null],
    ['a customer with metadata', CUSTOMER],
    ['a staff user with permissions', STAFF],
    ['an app', APP],
  ])('run without touching any service, the same answer every time (%s)', async (_, principal) => {
    const run = async () => execute({ schema, document: parse(EVERY_PURE_FIELD), contextValue: pureContext(principal) });
    const first = await run();
    expect(first.errors).toBeUndefined();
    expect(await run()).toEqual(first);
    if (principal?.kind === 'user') {
      const me = first.data!['me'] as Record<string, unknown>;
      expect(me).toMatchObject({ email: principal.user.email, userPermissions: principal.permissions.map((code) => ({ code, name: expect.any(String) })) });
      for (const coordinate of ALWAYS_EMPTY_FIELDS) expect([null, []], coordinate).toContainEqual(me[coordinate.split('.')[1]!]);
    } else {
      expect(first.data).toEqual({ me: null });
    }
  });

  it('the context would have thrown had they touched a service (the check itself works)', async () => {
    const result = await execute({ schema, document: parse('{ me { permissionGroups { id } } }'), contextValue: pureContext(CUSTOMER) });
    expect(result.errors?.[0]?.message).toContain('a principal-pure field read app.');
  });
});

describe('which documents are pure', () => {
  it.each([
    ['{ me { email } }', true],
    ['query Me { me { id email firstName userPermissions { code name } } }', true],
    ['{ me { ...U } } fragment U on User { email metadata { key value } }', true],
    ['{ me { ... on User { email } } }', true],
    ['{ me { email @include(if: true) id @skip(if: false) } }', true],
    ['{ __typename me { __typename } }', true],
    // What is selected under a field that is always empty never runs.
    ['{ me { email avatar { url } accessibleChannels { ...C } addresses { id } } } fragment C on Channel { id name slug }', true],
    ['{ me { ...U } } fragment U on User { ...V } fragment V on User { email }', true],
    ['query A { me { email } } query B { me { id } }', true],
    // A field read from the database, the configuration, or an unlisted field anywhere.
    ['{ me { email permissionGroups { name } } }', false],
    ['{ me { editableGroups { id } } }', false],
    ['{ me { privateMetadata { key } } }', false],
    ['{ me { userPermissions { code sourcePermissionGroups(userId: "x") { id } } } }', false],
    ['{ me { orders(first: 1) { totalCount } } }', false],
    ['{ me { email } shop { name } }', false],
    ['{ me { ... on ObjectWithMetadata { metadata { key } } } }', false],
    ['{ me { ... on Node { id } } }', false],
    ['{ me { ...U } } fragment U on User { accessibleChannels { id } permissionGroups { id } }', false],
    ['{ me { ...U } } fragment U on User { ...V } fragment V on User { email editableGroups { id } }', false],
    ['query A { me { email } } query B { shop { name } }', false],
    // Variables can change the answer: never pure.
    ['query ($x: Boolean!) { me @include(if: $x) { email } }', false],
    ['query ($k: String!) { me { metafield(key: $k) } }', false],
    ['query ($unused: Int) { me { email } }', false],
  ])('%s: %s', (query, pure) => {
    expect(dependsOnlyOnPrincipal(schema, parse(query))).toBe(pure);
  });

  it('property: one unlisted field anywhere in a pure selection makes the document impure', () => {
    const pureLeaves = ['id', 'email', 'firstName', 'isStaff', 'dateJoined', 'metadata { key }', 'userPermissions { code }', '__typename'];
    const impure = ['permissionGroups { id }', 'editableGroups { name }', 'privateMetadata { value }', 'orders(first: 2) { totalCount }', 'privateMetafield(key: "a")'];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pureLeaves), { minLength: 1, maxLength: 6 }), fc.option(fc.constantFrom(...impure), { nil: undefined }), fc.nat(), fc.boolean(), (leaves, bad, at, inFragment) => {
        const fields = [...leaves];
        if (bad) fields.splice(at % (fields.length + 1), 0, bad);
        const query = inFragment ? `{ me { ...F } } fragment F on User { ${fields.join(' ')} }` : `{ me { ${fields.join(' ')} } }`;
        expect(dependsOnlyOnPrincipal(schema, parse(query))).toBe(bad === undefined);
      }),
      { numRuns: 500 },
    );
  });
});

describe('remembered answers', () => {
  it('are given for the principal object they were computed for, and only for it', async () => {
    const query = '{ me { email firstName } }';
    await throughApollo(query, CUSTOMER);
    expect(engine.known.find(query, undefined)?.principalPure).toBe(true);
    const alice = await viaKnown(query, pureContext(CUSTOMER));
    expect(JSON.parse(alice!)).toEqual({ data: { me: { email: 'alice@example.com', firstName: 'First' } } });
    // Keyed by CUSTOMER, the resolvers seeing STAFF: the remembered answer (nothing ran).
    expect(await viaKnown(query, pureContext(STAFF, CUSTOMER))).toBe(alice);
    // Another object for the same user (the authenticator replaced it: something changed): computed again.
    const changed = userPrincipal(7, 'alice.new@example.com');
    expect(JSON.parse((await viaKnown(query, pureContext(changed)))!).data.me.email).toBe('alice.new@example.com');
    expect(await viaKnown(query, pureContext(STAFF, CUSTOMER))).toBe(alice);
    // Anonymous answers are remembered apart from every principal's.
    expect(await viaKnown(query, pureContext(null))).toBe('{"data":{"me":null}}\n');
    expect(await viaKnown(query, pureContext(CUSTOMER, null))).toBe('{"data":{"me":null}}\n');
  });

  it('are never given for an impure document, a verdict not known yet, or an expired token', async () => {
    const impure = '{ me { email } shop { name } }';
    await throughApollo(impure, CUSTOMER);
    expect(engine.known.find(impure, undefined)?.principalPure).toBe(false);
    // An impure document runs every time (and reaches the services, which throw here): left to Apollo.
    expect(await viaKnown(impure, pureContext(CUSTOMER))).toBeUndefined();

    const query = '{ me { lastName email } }';
    await throughApollo(query, CUSTOMER);
    const first = await viaKnown(query, pureContext(CUSTOMER));
    expect(JSON.parse(first!).data.me.email).toBe('alice@example.com');
    // Verdict not known without waiting (undefined): computed from what the resolvers see.
    expect(JSON.parse((await viaKnown(query, pureContext(STAFF, undefined)))!).data.me.email).toBe('staff@example.com');
    // An expired token of ours: principalSettled is undefined, the resolver throws, Apollo answers.
    const expired = {
      ...pureContext(null, undefined),
      principalNow: () => {
        throw expiredSignature();
      },
    } as unknown as GraphQLContext;
    expect(await viaKnown(query, expired)).toBeUndefined();
  });
});

describe('AnswerMemo', () => {
  const a = {};
  const b = {};
  const c = {};

  it(`keeps ${SLOTS_PER_PRINCIPAL} answers per principal, the oldest replaced first, and one anonymous answer per key`, () => {
    const memo = new AnswerMemo();
    memo.set(a, CUSTOMER, 'A');
    memo.set(b, CUSTOMER, 'B');
    memo.set(a, CUSTOMER, 'A2');
    expect([memo.get(a, CUSTOMER), memo.get(b, CUSTOMER)]).toEqual(['A2', 'B']);
    memo.set(c, CUSTOMER, 'C');
    expect([memo.get(a, CUSTOMER), memo.get(b, CUSTOMER), memo.get(c, CUSTOMER)]).toEqual([undefined, 'B', 'C']);
    expect(memo.get(b, STAFF)).toBeUndefined();
    memo.set(a, null, 'anon');
    expect([memo.get(a, null), memo.get(b, null), memo.get(a, STAFF)]).toEqual(['anon', undefined, undefined]);
  });

  it('keeps at most its budget of characters over all principals, counting what a replaced answer gives back', () => {
    const memo = new AnswerMemo(10);
    memo.set(a, CUSTOMER, '12345');
    memo.set(b, CUSTOMER, '123456');
    expect([memo.get(a, CUSTOMER), memo.get(b, CUSTOMER), memo.principalChars]).toEqual(['12345', undefined, 5]);
    memo.set(a, CUSTOMER, '1234567890');
    expect([memo.get(a, CUSTOMER), memo.principalChars]).toEqual(['1234567890', 10]);
    memo.set(a, STAFF, 'x');
    expect(memo.get(a, STAFF)).toBeUndefined();
    memo.set(a, CUSTOMER, 'abc');
    memo.set(a, STAFF, 'x');
    expect([memo.get(a, CUSTOMER), memo.get(a, STAFF), memo.principalChars]).toEqual(['abc', 'x', 4]);
    // Anonymous answers are bounded by the operations, not by the budget.
    memo.set(a, null, 'y'.repeat(100));
    expect(memo.get(a, null)).toHaveLength(100);
  });

  it('gives the characters of a collected principal back to the budget', () => {
    // A process of its own, with the collector at hand.
    const script = `
      const { AnswerMemo } = await import(${JSON.stringify(new URL('../../src/graphql/answer-memo.ts', import.meta.url).href)});
      const memo = new AnswerMemo(100);
      const key = {};
      let principal = { kind: 'user' };
      memo.set(key, principal, 'x'.repeat(60));
      const full = memo.principalChars;
      memo.set(key, { kind: 'user' }, 'y'.repeat(60));
      principal = null;
      for (let i = 0; i < 20 && memo.principalChars > 0; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
      const after = memo.principalChars;
      const other = { kind: 'user' };
      memo.set(key, other, 'z'.repeat(90));
      console.log(JSON.stringify({ full, after, stored: memo.get(key, other)?.length ?? 0 }));
    `;
    const out = withCollector(script);
    expect(JSON.parse(out)).toEqual({ full: 60, after: 0, stored: 90 });
  });

  it('an evicted operation is not kept alive by the answers a principal still holds', () => {
    const script = `
      const { buildSchema, parse } = await import('graphql');
      const { KnownOperations, MAX_KNOWN_OPERATIONS } = await import(${JSON.stringify(new URL('../../src/graphql/known-operations.ts', import.meta.url).href)});
      const schema = buildSchema('type Query { me: User } type User { email: String }');
      const known = new KnownOperations(undefined);
      const remember = (query) => known.remember(query, undefined, { name: null, logName: 'query', document: parse(query), schema });
      const principal = { kind: 'user', user: { email: 'a@example.com' } };
      const ctx = { principalSettled: () => principal, principalNow: () => principal };
      schema.getQueryType().getFields().me.resolve = (_, __, c) => c.principalNow().user;
      known.learn(undefined, 200, new Map([['content-type', 'application/json']]));
      remember('{ me { email } }');
      let request = known.match('POST', { query: '{ me { email } }' }, 'application/json', undefined);
      const answer = await known.execute(request, ctx);
      const remembered = await known.execute(request, { principalSettled: () => principal, principalNow: () => { throw new Error('ran'); } });
      const ref = new WeakRef(request.operation);
      request = undefined;
      for (let i = 0; i < 2 * MAX_KNOWN_OPERATIONS; i++) remember('{ me { email } } #' + i);
      const evicted = known.find('{ me { email } }', undefined) === undefined;
      // (deref() keeps its target alive until the end of the current job: only after the collections.)
      for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 10)); }
      console.log(JSON.stringify({ answer, same: remembered === answer, evicted, collected: ref.deref() === undefined, principalAlive: principal.kind }));
    `;
    const out = withCollector(script);
    expect(JSON.parse(out)).toEqual({ answer: '{"data":{"me":{"email":"a@example.com"}}}\n', same: true, evicted: true, collected: true, principalAlive: 'user' });
  });

  it(`does not keep an answer over ${MAX_ANSWER_LENGTH} characters`, () => {
    const memo = new AnswerMemo();
    memo.set(a, CUSTOMER, 'x'.repeat(MAX_ANSWER_LENGTH));
    memo.set(b, CUSTOMER, 'x'.repeat(MAX_ANSWER_LENGTH + 1));
    memo.set(a, null, 'y'.repeat(MAX_ANSWER_LENGTH + 1));
    expect(memo.get(a, CUSTOMER)?.length).toBe(MAX_ANSWER_LENGTH);
    expect(memo.get(b, CUSTOMER)).toBeUndefined();
    expect(memo.get(a, null)).toBeUndefined();
  });
});
