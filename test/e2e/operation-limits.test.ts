/**
 * Operation limits (issue 8): checked before execution on the document with fragments and
 * inline fragments expanded. A mutation fanning out through an inline fragment or a fragment
 * spread is refused with nothing written (rows counted); alias, depth, field and token limits
 * answer 400 naming the limit; introspection is off in production unless turned on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startIdp, type TestIdp } from '../helpers/idp.ts';
import { DEFAULT_PLUGIN, REDIRECT_URI, adminToken, configure, connectionValues } from '../helpers/oidc-flow.ts';

let idp: TestIdp;
let s: TestServer;
let admin: string;

const START = `externalAuthenticationUrl(pluginId: "${DEFAULT_PLUGIN}", input: ${JSON.stringify(JSON.stringify({ redirectUri: REDIRECT_URI }))}) { authenticationData }`;
const fields = (n: number, offset = 0) => Array.from({ length: n }, (_, i) => `f${i + offset}: ${START}`).join(' ');
const nested = (levels: number) => {
  let q = 'email';
  for (let i = 0; i < levels; i++) q = `permissionGroups { users { ${q} } }`;
  return `{ me { ${q} } }`;
};
const rows = () => s.running.app.db.prisma.authorizationRequest.count();

beforeAll(async () => {
  idp = await startIdp({
    clients: [{ client_id: 'storefront', client_secret: 'storefront-secret', redirect_uris: [REDIRECT_URI] }],
    accounts: [{ sub: 'u1', email: 'u1@example.com', email_verified: true }],
  });
  // Rate limits off here: this file is about operation limits.
  s = await startTestServer({
    OUTBOUND_ALLOW_PRIVATE_ADDRESSES: 'true',
    RATE_LIMIT_PER_IP_PER_MINUTE: '0',
    GRAPHQL_MAX_TOKENS: '3000',
    GRAPHQL_MAX_DEPTH: '15',
    GRAPHQL_MAX_FIELDS: '5000',
  });
  admin = await adminToken(s);
  await configure(s, admin, DEFAULT_PLUGIN, connectionValues(idp, 'storefront', 'storefront-secret'));
});
afterAll(async () => {
  await s?.close();
  await idp?.stop();
});

describe('root fields of a mutation, fragments expanded', () => {
  it.each([
    ['an inline fragment', `mutation { ... on Mutation { ${fields(200)} } }`],
    ['a fragment spread', `mutation { ...F } fragment F on Mutation { ${fields(11)} }`],
    ['two spreads of one fragment', `mutation { ...F ...F } fragment F on Mutation { ${fields(6)} }`],
    ['nested fragments', `mutation { ...A } fragment A on Mutation { ...B ... on Mutation { ${fields(5)} } } fragment B on Mutation { ${fields(6, 5)} }`],
  ])('refuses a fan-out through %s with 400, and writes nothing', async (_name, query) => {
    const before = await rows();
    const r = await s.gql(query);
    expect(r.status).toBe(400);
    expect(r.body.data).toBeUndefined();
    expect(r.body.errors?.[0]?.message).toBe('A mutation may select at most 10 root fields, fragments included.');
    expect(r.body.errors?.[0]?.extensions?.['limit']).toBe('maxMutationFields');
    expect(await rows()).toBe(before);
  });

  it('refuses 1,000 root fields in an inline fragment (over the token limit too), and writes nothing', async () => {
    const before = await rows();
    const r = await s.gql(`mutation { ... on Mutation { ${fields(1000)} } }`);
    expect(r.status).toBe(400);
    expect(r.body.data).toBeUndefined();
    expect(await rows()).toBe(before);
  });

  it('runs 10 root fields through a fragment (the limit, not a ban)', async () => {
    const before = await rows();
    const r = await s.gql(`mutation { ...F } fragment F on Mutation { ${fields(10)} }`);
    expect(r.status).toBe(200);
    expect(r.body.errors).toBeUndefined();
    expect(JSON.parse(r.body.data.f9.authenticationData).authorizationUrl).toContain(idp.issuer);
    expect(await rows()).toBe(before + 10);
  });
});

describe('aliases, depth, fields and tokens', () => {
  const aliases = (n: number) => Array.from({ length: n }, (_, i) => `a${i}: shop { availableExternalAuthentications { id } }`).join(' ');

  it('refuses more than 30 aliases, also inside fragments; allows 30', async () => {
    const over = await s.gql(`{ ...Q } fragment Q on Query { ${aliases(31)} }`);
    expect(over.status).toBe(400);
    expect(over.body.errors?.[0]?.extensions?.['limit']).toBe('maxAliases');
    expect(over.body.errors?.[0]?.message).toContain('Aliases limit of 30');
    const ok = await s.gql(`{ ${aliases(30)} }`);
    expect(ok.status).toBe(200);
    expect(ok.body.data.a29.availableExternalAuthentications).toEqual([{ id: DEFAULT_PLUGIN }]);
  });

  it('refuses 10,000 aliases without building the answer', async () => {
    const r = await s.gql(`{ ${Array.from({ length: 10_000 }, (_, i) => `a${i}: __typename`).join(' ')} }`);
    expect(r.status).toBe(400);
    expect(r.body.data).toBeUndefined();
  });


  it('refuses a query deeper than 15 levels, also through fragments; allows 15', async () => {
    const deep = await s.gql(nested(8), undefined, { token: admin }); // 1 + 8*2 + 1 = 18 levels
    expect(deep.status).toBe(400);
    expect(deep.body.errors?.[0]?.extensions?.['limit']).toBe('maxDepth');
    const viaFragment = await s.gql(
      `{ me { ...G } } fragment G on User { permissionGroups { users { ...H } } } fragment H on User { permissionGroups { users { permissionGroups { users { permissionGroups { users { permissionGroups { users { permissionGroups { users { permissionGroups { users { email } } } } } } } } } } } } }`,
      undefined,
      { token: admin },
    );
    expect(viaFragment.status).toBe(400);
    expect(viaFragment.body.errors?.[0]?.extensions?.['limit']).toBe('maxDepth');
    const ok = await s.gql(nested(6), undefined, { token: admin }); // 14 levels
    expect(ok.status).toBe(200);
    expect(ok.body.data.me).not.toBeNull();
  });

  it('refuses more fields than the limit once list sizes multiply them', async () => {
    const node = 'email '.repeat(50);
    const r = await s.gql(`{ staffUsers(first: 100) { edges { node { ${node} id } } } }`, undefined, { token: admin });
    expect(r.status).toBe(400);
    expect(r.body.errors?.map((e) => e.extensions?.['limit'])).toContain('maxFields');
    const ok = await s.gql(`{ staffUsers(first: 100) { edges { node { id email } } } }`, undefined, { token: admin });
    expect(ok.status).toBe(200);
    expect(ok.body.data.staffUsers.edges.length).toBeGreaterThan(0);
  });

  it('refuses a document over GRAPHQL_MAX_TOKENS before validating it', async () => {
    const r = await s.gql(`{ me { ${'email '.repeat(3000)} } }`);
    expect(r.status).toBe(400);
    expect(r.body.errors?.[0]?.message).toMatch(/more tha.? 3000 tokens/);
  });
});

describe('introspection', () => {
  const INTROSPECT = '{ __schema { queryType { name } } }';

  it('is on in development', async () => {
    const r = await s.gql(INTROSPECT);
    expect(r.status).toBe(200);
    expect(r.body.data.__schema.queryType.name).toBe('Query');
  });

  it('is off in production, unless GRAPHQL_INTROSPECTION=true', async () => {
    const prod = await startTestServer({ NODE_ENV: 'production', PUBLIC_URL: 'https://auth.example.com' });
    try {
      const r = await prod.gql(INTROSPECT);
      expect(r.status).toBe(400);
      expect(r.body.data).toBeUndefined();
      expect(r.body.errors?.[0]?.message).toMatch(/introspection is not allowed/i);
      expect((await prod.gql('{ __type(name: "User") { name } }')).status).toBe(400);
      // The default limits refuse the shapes of the reported attacks: depth 28, 10,000 aliases.
      const deep = await prod.gql(nested(14));
      expect(deep.status).toBe(400);
      expect(deep.body.errors?.[0]?.extensions?.['limit']).toBe('maxDepth');
      const aliased = await prod.gql(`{ ${Array.from({ length: 10_000 }, (_, i) => `a${i}: __typename`).join(' ')} }`);
      expect(aliased.status).toBe(400);
    } finally {
      await prod.close();
    }
    const allowed = await startTestServer({ NODE_ENV: 'production', PUBLIC_URL: 'https://auth.example.com', GRAPHQL_INTROSPECTION: 'true' });
    try {
      const r = await allowed.gql(INTROSPECT);
      expect(r.status).toBe(200);
      expect(r.body.data.__schema.queryType.name).toBe('Query');
    } finally {
      await allowed.close();
    }
    // Two servers start here, each on a fresh database: allow for a loaded machine.
  }, 120_000);
});
