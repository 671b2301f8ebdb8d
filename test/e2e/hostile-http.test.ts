/**
 * Nothing an outsider sends ends or wedges the process (issue 8).
 *
 * The real server runs as its own OS process (a crash is that process exiting), and every case
 * is raw bytes over a bare socket: malformed request lines and targets, headers, bodies and
 * GraphQL documents, slow senders and idle connections. For each case: the reply is
 * well-formed HTTP/1.1 with the expected status (a connection closed without any reply is
 * accepted only where a case lists 'closed'), and afterwards the process is alive and
 * GET /healthz answers 200.
 *
 * Short HTTP timeouts (headers 1.5 s, whole request 2 s) so that the timeout cases run fast.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { exchange, header, headerValues, healthz, request, graphqlRequest, type Exchange } from '../helpers/raw-http.ts';

const HEADERS_TIMEOUT_MS = 1500;
const REQUEST_TIMEOUT_MS = 2000;
/** How late past a configured timeout a connection may still be cut off. */
const TIMEOUT_SLACK_MS = 2000;
const MAX_BODY = 1024 * 1024;

let server: ServerProcess;

beforeAll(async () => {
  server = await startServerProcess({
    env: {
      HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      HTTP_MAX_HEADER_BYTES: '16384',
      HTTP_MAX_HEADERS: '100',
      MAX_REQUEST_BODY_BYTES: String(MAX_BODY),
      GRAPHQL_MAX_TOKENS: '5000',
    },
  });
});
afterAll(async () => {
  await server?.close();
});

/** Lines joined with CRLF; pass '' twice at the end for the empty line after the headers. */
const raw = (...lines: string[]) => Buffer.from(lines.join('\r\n'), 'latin1');
/** A complete header section around `lines` (request line first), closing the connection. */
const head = (...lines: string[]) => raw(...lines, 'Connection: close', '', '');
const latin1 = (s: string) => Buffer.from(s, 'latin1');
const gql = (query: string, headers: Record<string, string> = {}) => graphqlRequest({ query }, headers);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const REQUEST_ID_SHAPE = /^[\w.:-]{1,128}$/;
const JWT_ALG_NONE = 'eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwiaXNzIjoiaHR0cDovL2xvY2FsaG9zdDowL2dyYXBocWwvIn0.';

function bodyJson(x: Exchange): any {
  return JSON.parse(x.finals[0]!.body.toString('utf8'));
}

/** The reply is a GraphQL response: JSON with `data` or `errors`, and no internal error. */
function graphqlShape(x: Exchange): any {
  const body = bodyJson(x);
  expect(body !== null && typeof body === 'object' && ('data' in body || 'errors' in body), JSON.stringify(body).slice(0, 300)).toBe(true);
  expect(JSON.stringify(body)).not.toContain('Internal Server Error');
  return body;
}

/** Anonymous GraphQL answer to `{ me { id } }`. */
function anonymousMe(x: Exchange): void {
  expect(graphqlShape(x)).toEqual({ data: { me: null } });
}

function refusedByTokenLimit(x: Exchange): void {
  const body = graphqlShape(x);
  expect(body.errors?.[0]?.message).toMatch(/token/i);
}

function noCorsFor(x: Exchange): void {
  expect(headerValues(x.finals[0]!, 'access-control-allow-origin')).toEqual([]);
  expect(headerValues(x.finals[0]!, 'access-control-allow-credentials')).toEqual([]);
}

function requestIdIsOurs(x: Exchange): void {
  expect(header(x.finals[0]!, 'x-request-id')).toMatch(UUID);
}

interface Case {
  name: string;
  send: Buffer | Buffer[];
  /** Acceptable outcomes: a status ('400'), or 'closed' (closed without any reply). */
  expect: string[];
  /** Final responses to wait for (pipelining). Default 1. */
  responses?: number;
  headRequest?: boolean;
  /** Half-close our side after sending. */
  end?: boolean;
  /**
   * The request does not ask to close the connection: stop reading after the expected
   * responses. Otherwise read until the server closes (so that anything it sends after the
   * response is seen too).
   */
  keepAlive?: boolean;
  timeoutMs?: number;
  check?: (x: Exchange) => void;
}

const noCheck = () => {};

const deep = (n: number) => '{a'.repeat(n) + '}'.repeat(n);
/** fragment F<i> spreads F<i-1> twice: F<n> expands to 2^n fields. */
const fragmentBomb = (n: number) =>
  `query { ...F${n} } fragment F0 on Query { __typename } ` +
  Array.from({ length: n }, (_, i) => `fragment F${i + 1} on Query { ...F${i} ...F${i} }`).join(' ');
const chunked = (...chunks: string[]) => chunks.map((c) => `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`).join('') + '0\r\n\r\n';

const GQL_HEADERS = ['Content-Type: application/json'];
const TYPENAME = '{"query":"{ __typename }"}';
const ME = '{"query":"{ me { id } }"}';
/** A request line, raw header lines, Content-Length of `body`, Connection: close, and `body`. */
const post = (requestLine: string, lines: string[], body: string) =>
  Buffer.concat([head(requestLine, 'Host: x', ...lines, `Content-Length: ${Buffer.byteLength(body)}`), Buffer.from(body, 'utf8')]);

const cases: Case[] = [
  // --- request line and target -------------------------------------------------------------
  { name: 'target //a:99999/ (host-like, invalid port)', send: head('GET //a:99999/ HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target //a:99999/graphql/ (POST)', send: post('POST //a:99999/graphql/ HTTP/1.1', [...GQL_HEADERS], TYPENAME), expect: ['400', '404'] },
  { name: 'target http://[::1 (broken IPv6 absolute-form)', send: head('GET http://[::1 HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target http://[::1]:99999/healthz', send: head('GET http://[::1]:99999/healthz HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'absolute-form target http://evil.example/healthz', send: head('GET http://evil.example/healthz HTTP/1.1', 'Host: x'), expect: ['200', '400'] },
  { name: 'absolute-form target with userinfo http://u:p@x/graphql/', send: head('GET http://u:p@x/graphql/ HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target %', send: head('GET % HTTP/1.1', 'Host: x'), expect: ['400'] },
  { name: 'target /%', send: head('GET /% HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target /graphql/%zz', send: head('GET /graphql/%zz HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target /graphql/%00', send: head('GET /graphql/%00 HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target /healthz?%zz=%&&==', send: head('GET /healthz?%zz=%&&== HTTP/1.1', 'Host: x'), expect: ['200'] },
  { name: 'target /..%2f..%2fetc/passwd', send: head('GET /..%2f..%2fetc/passwd HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target /../../etc/passwd', send: head('GET /../../etc/passwd HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target /healthz/../healthz', send: head('GET /healthz/../healthz HTTP/1.1', 'Host: x'), expect: ['200', '400', '404'] },
  { name: 'target /\\evil.example/healthz (backslash)', send: head('GET /\\evil.example/healthz HTTP/1.1', 'Host: x'), expect: ['200', '400', '404'] },
  { name: 'target @', send: head('GET @ HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target :', send: head('GET : HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target [', send: head('GET [ HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target ..', send: head('GET .. HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target of 20 KB', send: head(`GET /${'a'.repeat(20_000)} HTTP/1.1`, 'Host: x'), expect: ['400', '414', '431'] },
  { name: 'target * (GET)', send: head('GET * HTTP/1.1', 'Host: x'), expect: ['400', '404'] },
  { name: 'target * (OPTIONS)', send: head('OPTIONS * HTTP/1.1', 'Host: x'), expect: ['200', '204', '400', '404', '405'] },
  { name: 'target with a raw tab', send: head('GET /a\tb HTTP/1.1', 'Host: x'), expect: ['400'] },
  { name: 'target with a space', send: head('GET /a b HTTP/1.1', 'Host: x'), expect: ['400'] },
  { name: 'target with a NUL byte', send: head('GET /a\x00b HTTP/1.1', 'Host: x'), expect: ['400'] },
  { name: 'target with raw bytes >= 0x80', send: head('GET /\xff\xfe\xc3\x28 HTTP/1.1', 'Host: x'), expect: ['400'] },
  { name: 'empty target', send: head('GET  HTTP/1.1', 'Host: x'), expect: ['400'] },
  { name: 'CONNECT', send: raw('CONNECT example.com:443 HTTP/1.1', 'Host: example.com:443', '', ''), expect: ['closed', '400', '405', '501'] },
  {
    name: 'TRACE /graphql/ does not echo the request',
    send: head('TRACE /graphql/ HTTP/1.1', 'Host: x', 'Cookie: refreshToken=trace-secret-cookie'),
    expect: ['405'],
    check: (x) => expect(x.bytes.toString('latin1')).not.toContain('trace-secret-cookie'),
  },
  { name: 'TRACE /', send: head('TRACE / HTTP/1.1', 'Host: x'), expect: ['404', '405'] },
  { name: 'DELETE /graphql/', send: head('DELETE /graphql/ HTTP/1.1', 'Host: x'), expect: ['405'] },
  { name: 'PATCH /healthz', send: head('PATCH /healthz HTTP/1.1', 'Host: x'), expect: ['404', '405'] },
  { name: 'HEAD /graphql/', send: head('HEAD /graphql/ HTTP/1.1', 'Host: x'), headRequest: true, expect: ['200', '400', '404', '405'] },
  { name: 'HEAD /healthz', send: head('HEAD /healthz HTTP/1.1', 'Host: x'), headRequest: true, expect: ['200', '404', '405'] },
  { name: 'unknown method FOO', send: head('FOO /healthz HTTP/1.1', 'Host: x'), expect: ['400', '405', '501'] },
  { name: 'lower-case method', send: head('get /healthz HTTP/1.1', 'Host: x'), expect: ['400', '405', '501'] },
  { name: 'method of 10 KB', send: head(`${'G'.repeat(10_000)} /healthz HTTP/1.1`, 'Host: x'), expect: ['400', '405', '431', '501'] },
  { name: 'HTTP/2 connection preface', send: latin1('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), expect: ['closed', '400', '505'] },
  { name: 'TLS ClientHello on the plain port', send: latin1('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + '\x00'.repeat(64)), expect: ['closed', '400'] },
  { name: 'garbage line', send: latin1('hello\r\n\r\n'), expect: ['closed', '400'] },
  { name: 'empty lines before the request line', send: Buffer.concat([latin1('\r\n\r\n'), head('GET /healthz HTTP/1.1', 'Host: x')]), expect: ['200', '400'] },
  { name: 'HTTP/1.0 without Host', send: raw('GET /healthz HTTP/1.0', '', ''), expect: ['200'] },
  { name: 'HTTP/0.9-style request line', send: raw('GET /healthz', '', ''), expect: ['200', '400', '505'] },
  { name: 'HTTP/9.9', send: head('GET /healthz HTTP/9.9', 'Host: x'), expect: ['200', '400', '505'] },
  { name: 'HTTP/1.1 without Host', send: head('GET /healthz HTTP/1.1'), expect: ['400'] },
  { name: 'two Host headers', send: head('GET /healthz HTTP/1.1', 'Host: a', 'Host: b'), expect: ['200', '400'] },
  { name: 'request line only, then half-close', send: latin1('GET /healthz HTTP/1.1\r\nHo'), end: true, expect: ['closed', '400'] },
  { name: 'connect, send nothing, half-close', send: Buffer.alloc(0), end: true, expect: ['closed'] },

  // --- headers -------------------------------------------------------------------------------
  { name: 'header of 20 KB (over the 16 KB limit)', send: head('GET /healthz HTTP/1.1', 'Host: x', `X-A: ${'a'.repeat(20_000)}`), expect: ['431'] },
  { name: '1000 headers of 20 bytes (over the byte limit)', send: head('GET /healthz HTTP/1.1', 'Host: x', ...Array.from({ length: 1000 }, (_, i) => `X-H${String(i).padStart(4, '0')}: vvvvvvvvvv`)), expect: ['431'] },
  { name: '200 headers (over the count limit, under the byte limit)', send: head('GET /healthz HTTP/1.1', 'Host: x', ...Array.from({ length: 200 }, (_, i) => `X-H${i}: v`)), expect: ['200', '431'] },
  { name: 'NUL in a header value', send: head('GET /healthz HTTP/1.1', 'Host: x', 'X-A: a\x00b'), expect: ['400'] },
  { name: 'bare LF line ends', send: latin1('GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n'), expect: ['400'] },
  { name: 'bare CR in a header value', send: head('GET /healthz HTTP/1.1', 'Host: x', 'X-A: a\rb'), expect: ['400'] },
  { name: 'header line without a colon', send: head('GET /healthz HTTP/1.1', 'Host: x', 'just-a-name'), expect: ['400'] },
  { name: 'space before the colon', send: head('GET /healthz HTTP/1.1', 'Host: x', 'X-A : b'), expect: ['400'] },
  { name: 'obsolete line folding', send: head('GET /healthz HTTP/1.1', 'Host: x', 'X-A: b', ' c'), expect: ['400'] },
  { name: 'header name with a separator', send: head('GET /healthz HTTP/1.1', 'Host: x', 'X(A): b'), expect: ['400'] },
  { name: 'header name of bytes >= 0x80', send: head('GET /healthz HTTP/1.1', 'Host: x', '\xff\xfe: b'), expect: ['400'] },
  { name: 'header value of bytes >= 0x80', send: head('GET /healthz HTTP/1.1', 'Host: x', 'X-A: \xff\xfe\xc3\x28'), expect: ['200'] },
  { name: 'Cookie with %-junk and broken pairs', send: gql('{ me { id } }', { Cookie: 'refreshToken=%E0%A4%A; a=%zz; =; ;;; b; "=\\"; c="' }), expect: ['200'], check: anonymousMe },
  { name: 'Cookie with invalid UTF-8 bytes', send: gql('{ me { id } }', { Cookie: 'refreshToken=\xff\xfe\xc3\x28; x=\xc0\x80' }), expect: ['200'], check: anonymousMe },
  { name: 'Cookie of 15 KB', send: gql('{ me { id } }', { Cookie: 'a=b; '.repeat(3000) }), expect: ['200'], check: anonymousMe },
  {
    name: '90 Cookie headers',
    send: post('POST /graphql/ HTTP/1.1', [...GQL_HEADERS, ...Array.from({ length: 90 }, (_, i) => `Cookie: refreshToken=junk${i}`)], ME),
    expect: ['200'],
    check: anonymousMe,
  },
  { name: 'tokenRefresh with a junk refreshToken cookie', send: gql('mutation { tokenRefresh { token errors { code } } }', { Cookie: 'refreshToken=%E0%A4%A' }), expect: ['200', '400'], check: (x) => void graphqlShape(x) },
  { name: 'Authorization: Bearer junk', send: gql('{ me { id } }', { Authorization: 'Bearer not-a-token' }), expect: ['200'], check: anonymousMe },
  { name: 'Authorization: Bearer of 12 KB', send: gql('{ me { id } }', { Authorization: `Bearer ${'x'.repeat(12_000)}` }), expect: ['200', '431'], check: anonymousMe },
  { name: 'Authorization: Bearer without a token', send: gql('{ me { id } }', { Authorization: 'Bearer ' }), expect: ['200'], check: anonymousMe },
  { name: 'Authorization: Basic', send: gql('{ me { id } }', { Authorization: 'Basic YWxhZGRpbjpvcGVuc2VzYW1l' }), expect: ['200'], check: anonymousMe },
  { name: 'Authorization: JWT with alg none', send: gql('{ me { id } }', { Authorization: `JWT ${JWT_ALG_NONE}` }), expect: ['200'], check: anonymousMe },
  { name: 'Authorization: Bearer JWT-shaped junk (bad base64, bad JSON)', send: gql('{ me { id } }', { Authorization: 'Bearer eyJ.eyJ.%%%' }), expect: ['200'], check: anonymousMe },
  { name: 'Authorization: Bearer JWT with a junk header object', send: gql('{ me { id } }', { Authorization: `Bearer ${Buffer.from('{"alg":{"x":1},"kid":[1,2],"crit":7}').toString('base64url')}.${Buffer.from('{"iss":5,"exp":"x","aud":{}}').toString('base64url')}.sig` }), expect: ['200'], check: anonymousMe },
  { name: 'Authorization: Bearer with bytes >= 0x80', send: gql('{ me { id } }', { Authorization: 'Bearer \xff\xfe\xc3\x28' }), expect: ['200'], check: anonymousMe },
  {
    name: 'Authorization-Bearer twice (different values)',
    send: post('POST /graphql/ HTTP/1.1', [...GQL_HEADERS, 'Authorization-Bearer: junk-one', 'Authorization-Bearer: junk-two'], ME),
    expect: ['200', '400'],
    check: (x) => void graphqlShape(x),
  },
  {
    name: 'Authorization twice and Authorization-Bearer empty',
    send: post('POST /graphql/ HTTP/1.1', [...GQL_HEADERS, 'Authorization: Bearer a', 'Authorization: JWT b', 'Authorization-Bearer: '], ME),
    expect: ['200'],
    check: anonymousMe,
  },
  { name: 'X-Request-Id with markup is not echoed', send: head('GET /healthz HTTP/1.1', 'Host: x', 'X-Request-Id: <script>alert(1)</script>'), expect: ['200'], check: requestIdIsOurs },
  { name: 'X-Request-Id of 10 KB is not echoed', send: head('GET /healthz HTTP/1.1', 'Host: x', `X-Request-Id: ${'a'.repeat(10_000)}`), expect: ['200'], check: requestIdIsOurs },
  { name: 'X-Request-Id with bytes >= 0x80 is not echoed', send: head('GET /healthz HTTP/1.1', 'Host: x', 'X-Request-Id: abc\xff\xfe'), expect: ['200'], check: requestIdIsOurs },
  { name: 'X-Request-Id twice is not echoed', send: head('GET /healthz HTTP/1.1', 'Host: x', 'X-Request-Id: a', 'X-Request-Id: b'), expect: ['200'], check: requestIdIsOurs },
  { name: 'X-Request-Id that looks like a log field', send: head('GET /healthz HTTP/1.1', 'Host: x', 'X-Request-Id: "},"level":"error'), expect: ['200'], check: requestIdIsOurs },
  { name: 'X-Forwarded-For junk', send: gql('{ me { id } }', { 'X-Forwarded-For': '999.999.1.1, ::ffff:zz, <script>, , ,' }), expect: ['200'], check: anonymousMe },
  { name: 'Content-Type with a junk charset', send: request('POST', '/graphql/', { 'Content-Type': 'application/json; charset=ebcdic-xx' }, TYPENAME), expect: ['200', '400', '415'] },
  { name: 'Content-Type multipart with an empty boundary', send: request('POST', '/graphql/', { 'Content-Type': 'multipart/form-data; boundary=' }, TYPENAME), expect: ['400', '415'] },
  { name: 'Content-Type of 10 KB', send: request('POST', '/graphql/', { 'Content-Type': `application/json; ${'x=y; '.repeat(2000)}` }, TYPENAME), expect: ['200', '400', '415'] },
  { name: 'Accept: text/html only', send: gql('{ __typename }', { Accept: 'text/html' }), expect: ['200', '400', '406'] },
  { name: 'Accept: graphql-response+json', send: gql('{ __typename }', { Accept: 'application/graphql-response+json' }), expect: ['200'] },
  { name: 'Accept junk of 8 KB', send: gql('{ __typename }', { Accept: ';q=,'.repeat(2000) }), expect: ['200', '400', '406'] },
  { name: 'Expect: 100-continue', send: request('POST', '/graphql/', { 'Content-Type': 'application/json', Expect: '100-continue' }, TYPENAME), expect: ['200'] },
  { name: 'Expect: junk', send: request('POST', '/graphql/', { 'Content-Type': 'application/json', Expect: 'junk' }, TYPENAME), expect: ['200', '417'] },
  { name: 'Upgrade: websocket without an upgrade handler', send: raw('GET /graphql/ HTTP/1.1', 'Host: x', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: x', 'Sec-WebSocket-Version: 13', '', ''), keepAlive: true, expect: ['400', '404', '426'] },
  { name: 'Upgrade: h2c', send: request('POST', '/graphql/', [['Content-Type', 'application/json'], ['Upgrade', 'h2c'], ['HTTP2-Settings', '%%%'], ['Connection', 'Upgrade, HTTP2-Settings, close']], TYPENAME), expect: ['200', '400'] },

  // --- bodies --------------------------------------------------------------------------------
  { name: 'two different Content-Length', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Content-Length: 2', 'Content-Length: 3'), latin1('{}}')]), expect: ['400'] },
  { name: 'two equal Content-Length', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, `Content-Length: ${TYPENAME.length}`, `Content-Length: ${TYPENAME.length}`), latin1(TYPENAME)]), expect: ['200', '400'] },
  { name: 'Content-Length list "N, N"', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, `Content-Length: ${TYPENAME.length}, ${TYPENAME.length}`), latin1(TYPENAME)]), expect: ['200', '400'] },
  { name: 'Content-Length and Transfer-Encoding', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Content-Length: 5', 'Transfer-Encoding: chunked'), latin1('0\r\n\r\n')]), expect: ['400'] },
  { name: 'Transfer-Encoding twice', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'), latin1(chunked(TYPENAME))]), expect: ['200', '400'] },
  { name: 'chunk size zz', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Transfer-Encoding: chunked'), latin1('zz\r\nab\r\n0\r\n\r\n')]), expect: ['400'] },
  { name: 'chunk size of 20 hex digits', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Transfer-Encoding: chunked'), latin1('ffffffffffffffffffff\r\nab\r\n0\r\n\r\n')]), expect: ['400', '413'] },
  { name: 'chunk size -1', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Transfer-Encoding: chunked'), latin1('-1\r\nab\r\n0\r\n\r\n')]), expect: ['400'] },
  { name: 'chunk data not followed by CRLF', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Transfer-Encoding: chunked'), latin1('2\r\n{}XX0\r\n\r\n')]), expect: ['400'] },
  { name: 'chunk extension of 20 KB', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Transfer-Encoding: chunked'), latin1(`2;${'a'.repeat(20_000)}\r\n{}\r\n0\r\n\r\n`)]), expect: ['400', '413'] },
  { name: 'Transfer-Encoding: gzip', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Transfer-Encoding: gzip'), latin1('abc')]), expect: ['400', '501'] },
  { name: 'Transfer-Encoding: chunked, gzip', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Transfer-Encoding: chunked, gzip'), latin1('abc')]), expect: ['400', '501'] },
  { name: 'valid chunked GraphQL body', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Transfer-Encoding: chunked'), latin1(chunked('{"query":', '"{ __typename }"', '}'))]), expect: ['200'], check: (x) => expect(bodyJson(x)).toEqual({ data: { __typename: 'Query' } }) },
  {
    name: 'chunked body over the limit in 64 KB chunks',
    send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Transfer-Encoding: chunked'), latin1(chunked(...Array.from({ length: 20 }, () => ' '.repeat(64 * 1024))))]),
    expect: ['413'],
  },
  { name: 'trailer fields after a chunked body', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Transfer-Encoding: chunked'), latin1(chunked(TYPENAME).slice(0, -2) + 'Content-Length: 99\r\nX-T: \xff\r\n\r\n')]), expect: ['200', '400'] },
  { name: 'Content-Length -1', send: head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Content-Length: -1'), expect: ['400'] },
  { name: 'Content-Length of 23 digits', send: head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Content-Length: 99999999999999999999999'), expect: ['400', '413'] },
  { name: 'Content-Length 2^53', send: head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Content-Length: 9007199254740993'), expect: ['400', '413'] },
  { name: 'Content-Length one over the limit (body not sent)', send: head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, `Content-Length: ${MAX_BODY + 1}`), expect: ['413'] },
  { name: 'Content-Length +2', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Content-Length: +2'), latin1('{}')]), expect: ['400'] },
  { name: 'Content-Length 0x10', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Content-Length: 0x10'), latin1('{}')]), expect: ['400'] },
  { name: 'Content-Length "2 2"', send: Buffer.concat([head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Content-Length: 2 2'), latin1('{}')]), expect: ['400'] },
  { name: 'body over 1 MB (sent)', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, Buffer.alloc(MAX_BODY + 100 * 1024, 0x20)), expect: ['413'] },
  { name: 'body exactly at the limit (whitespace JSON)', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, Buffer.concat([latin1(TYPENAME), Buffer.alloc(MAX_BODY - TYPENAME.length, 0x20)])), expect: ['200'] },
  { name: 'invalid JSON', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, '{"query":'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'JSON array', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, '[{"query":"{ __typename }"}]'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'JSON string', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, '"{ __typename }"'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'JSON number', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, '1e999'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'JSON null', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, 'null'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'JSON true', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, 'true'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'JSON empty object', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, '{}'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'empty body', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, ''), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'JSON with a byte-order mark', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, '\ufeff' + TYPENAME), expect: ['200', '400'], check: (x) => void graphqlShape(x) },
  { name: 'body of NUL bytes', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, Buffer.alloc(1000)), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'invalid UTF-8 in operationName', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, latin1('{"query":"{ __typename }","operationName":"\xff\xfe"}')), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'invalid UTF-8 in the query', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, latin1('{"query":"{ __typename \xc3\x28 }"}')), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'overlong UTF-8 in an unused field', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, latin1('{"query":"{ __typename }","x":"\xc0\x80\xed\xa0\x80"}')), expect: ['200'], check: (x) => void graphqlShape(x) },
  { name: 'lone surrogate escapes in the query', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, '{"query":"{ user(email: \\"\\ud800\\udfff\\udc00\\") { id } }"}'), expect: ['200', '400'], check: (x) => void graphqlShape(x) },
  { name: 'variables nested 100k deep', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, `{"query":"{ __typename }","variables":{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`), expect: ['200', '400'], check: (x) => void graphqlShape(x) },
  { name: 'declared variable nested 50k deep', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, `{"query":"query($a: [String]) { __typename }","variables":{"a":${'['.repeat(50_000)}${']'.repeat(50_000)}}}`), expect: ['200', '400'], check: (x) => void graphqlShape(x) },
  { name: 'variables with __proto__', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, '{"query":"{ __typename }","variables":{"__proto__":{"isStaff":true}}}'), expect: ['200', '400'], check: (x) => void graphqlShape(x) },
  { name: 'body with __proto__ as the request', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, '{"__proto__":{"query":"{ __typename }"}}'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'variables as a string', send: graphqlRequest({ query: '{ __typename }', variables: '{"a":1}' }), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'extensions as a string', send: graphqlRequest({ query: '{ __typename }', extensions: 'x' }), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'persisted-query hash junk', send: graphqlRequest({ extensions: { persistedQuery: { version: 1, sha256Hash: '%%%' } } }), expect: ['200', '400'], check: (x) => void graphqlShape(x) },
  { name: 'persisted-query with a wrong hash', send: graphqlRequest({ query: '{ __typename }', extensions: { persistedQuery: { version: 1, sha256Hash: 'a'.repeat(64) } } }), expect: ['200', '400'], check: (x) => void graphqlShape(x) },
  { name: 'query as a number', send: graphqlRequest({ query: 1 }), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'operationName as an object', send: graphqlRequest({ query: '{ __typename }', operationName: { a: 1 } }), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'variable of the wrong type', send: graphqlRequest({ query: 'query($a: Int!) { __typename }', variables: { a: 'x' } }), expect: ['200', '400'], check: (x) => void graphqlShape(x) },
  { name: 'variable 1e400', send: request('POST', '/graphql/', { 'Content-Type': 'application/json' }, '{"query":"query($a: Float!) { __typename }","variables":{"a":1e400}}'), expect: ['200', '400'], check: (x) => void graphqlShape(x) },
  { name: 'form-encoded body', send: request('POST', '/graphql/', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'query=%7B__typename%7D'), expect: ['400', '415'] },

  // --- GET /graphql --------------------------------------------------------------------------
  { name: 'GET /graphql?query=%', send: head('GET /graphql?query=% HTTP/1.1', 'Host: x'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'GET /graphql/?query=% with a preflight header', send: head('GET /graphql/?query=% HTTP/1.1', 'Host: x', 'Apollo-Require-Preflight: 1'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'GET /graphql/?query={__typename} with a preflight header', send: head('GET /graphql/?query=%7B__typename%7D HTTP/1.1', 'Host: x', 'Apollo-Require-Preflight: 1'), expect: ['200'], check: (x) => expect(bodyJson(x)).toEqual({ data: { __typename: 'Query' } }) },
  // Apollo's CSRF prevention (it gets the request headers it reads: see APOLLO_REQUEST_HEADERS).
  { name: 'GET /graphql/?query={__typename} without a preflight header (CSRF)', send: head('GET /graphql/?query=%7B__typename%7D HTTP/1.1', 'Host: x'), expect: ['400'], check: (x) => expect(JSON.stringify(bodyJson(x))).toContain('Cross-Site Request Forgery') },
  { name: 'GET /graphql/?query={__typename} with X-Apollo-Operation-Name', send: head('GET /graphql/?query=%7B__typename%7D HTTP/1.1', 'Host: x', 'X-Apollo-Operation-Name: q'), expect: ['200'], check: (x) => expect(bodyJson(x)).toEqual({ data: { __typename: 'Query' } }) },
  { name: 'POST text/plain (a simple request: CSRF)', send: request('POST', '/graphql/', { 'Content-Type': 'text/plain' }, '{"query":"{ __typename }"}'), expect: ['400'], check: (x) => expect(JSON.stringify(bodyJson(x))).toContain('Cross-Site Request Forgery') },
  { name: 'GET /graphql/ with junk variables and extensions', send: head('GET /graphql/?query=%7B__typename%7D&variables=%7B&extensions=%5B HTTP/1.1', 'Host: x', 'Apollo-Require-Preflight: 1'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'GET /graphql/ with a mutation', send: head('GET /graphql/?query=mutation%7BtokensDeactivateAll%7Berrors%7Bcode%7D%7D%7D HTTP/1.1', 'Host: x', 'Apollo-Require-Preflight: 1'), expect: ['400', '405'], check: (x) => void graphqlShape(x) },
  { name: 'GET /graphql/ with query twice', send: head('GET /graphql/?query=%7B__typename%7D&query=%7Bme%7Bid%7D%7D HTTP/1.1', 'Host: x', 'Apollo-Require-Preflight: 1'), expect: ['200', '400'], check: (x) => void graphqlShape(x) },
  { name: 'GET /graphql/ with a 15 KB query string', send: head(`GET /graphql/?${'a=%zz&'.repeat(2500)} HTTP/1.1`, 'Host: x'), expect: ['400', '414', '431'] },

  // --- GraphQL documents ---------------------------------------------------------------------
  { name: 'syntax error: unclosed selection', send: gql('{ me { id '), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'syntax error: only closing braces', send: gql('}}}}'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'syntax error: empty document', send: gql(''), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'syntax error: only a comment', send: gql('# nothing'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'syntax error: unterminated string', send: gql('{ user(email: "abc) { id } }'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'syntax error: bad unicode escape', send: gql('{ user(email: "\\uZZZZ\\u{110000}") { id } }'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'syntax error: unterminated block string', send: gql('{ user(email: """abc) { id } }'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'syntax error: NUL and control characters', send: gql('{ me\u0000 { id\u0007 } }'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'syntax error: query (', send: gql('query ('), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'unknown field', send: gql('{ nope }'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'two anonymous operations', send: gql('{ __typename } { me { id } }'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'subscription', send: gql('subscription { me { id } }'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'unknown and repeated directives', send: gql(`{ __typename @foo(x: 1) ${'@skip(if: false) '.repeat(500)} }`), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'nested 10k levels', send: gql(deep(10_000)), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'nested 100k levels', send: gql(deep(100_000)), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: '100k opening braces', send: gql('{'.repeat(100_000)), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'list argument nested 50k deep', send: gql(`{ user(id: ${'['.repeat(50_000)}${']'.repeat(50_000)}) { id } }`), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'object argument nested 20k deep', send: gql(`{ user(id: ${'{a:'.repeat(20_000)}1${'}'.repeat(20_000)}) { id } }`), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: '100k tokens (refused by GRAPHQL_MAX_TOKENS)', send: gql(`{ ${'a '.repeat(100_000)}}`), expect: ['400'], timeoutMs: 15_000, check: refusedByTokenLimit },
  { name: '100k tokens of valid fields', send: gql(`{ ${'__typename '.repeat(90_000)}}`), expect: ['400'], timeoutMs: 15_000, check: refusedByTokenLimit },
  { name: 'aliases x1000', send: gql(`{ ${Array.from({ length: 1000 }, (_, i) => `a${i}: __typename`).join(' ')} }`), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'fragment cycle', send: gql('query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'fragment self-spread in an inline fragment', send: gql('query { ...A } fragment A on Query { ... on Query { ...A } }'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'fragment bomb (2^40 fields once expanded)', send: gql(fragmentBomb(40)), expect: ['400'], timeoutMs: 10_000, check: (x) => void graphqlShape(x) },
  { name: 'mutation fan-out through an inline fragment', send: gql(`mutation { ... on Mutation { ${Array.from({ length: 200 }, (_, i) => `a${i}: tokenVerify(token: "x") { isValid }`).join(' ')} } }`), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'unknown fragment and unused fragment', send: gql('query { ...Nope } fragment Unused on Query { __typename }'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'fragment on a type that does not exist', send: gql('query { ...A } fragment A on Nope { __typename }'), expect: ['400'], check: (x) => void graphqlShape(x) },
  { name: 'introspection with a junk type name', send: gql('{ __type(name: "\\u0000%%%") { name } }'), expect: ['200', '400'], check: (x) => void graphqlShape(x) },

  // --- back-channel logout -------------------------------------------------------------------
  { name: 'back-channel: pluginId %E0%A4%A', send: request('POST', '/oidc/backchannel-logout/%E0%A4%A', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'logout_token=x'), expect: ['400'] },
  { name: 'back-channel: pluginId %E0%A4%A, empty body', send: request('POST', '/oidc/backchannel-logout/%E0%A4%A', {}, ''), expect: ['400'] },
  { name: 'back-channel: logout_token=%%%', send: request('POST', '/oidc/backchannel-logout/mirumee.authentication.openidconnect', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'logout_token=%%%&&=&logout_token'), expect: ['400'] },
  { name: 'back-channel: binary body', send: request('POST', '/oidc/backchannel-logout/mirumee.authentication.openidconnect', { 'Content-Type': 'application/x-www-form-urlencoded' }, latin1('\x00\xff\xfe=\xc3\x28')), expect: ['400'] },
  { name: 'back-channel: JWT-shaped junk token', send: request('POST', '/oidc/backchannel-logout/mirumee.authentication.openidconnect', { 'Content-Type': 'application/x-www-form-urlencoded' }, `logout_token=${JWT_ALG_NONE}`), expect: ['400'] },
  { name: 'back-channel: 100 KB body', send: request('POST', '/oidc/backchannel-logout/mirumee.authentication.openidconnect', { 'Content-Type': 'application/x-www-form-urlencoded' }, `logout_token=${'a'.repeat(100 * 1024)}`), expect: ['400', '413'] },
  { name: 'back-channel: JSON body', send: request('POST', '/oidc/backchannel-logout/mirumee.authentication.openidconnect', { 'Content-Type': 'application/json' }, '{"logout_token":{"a":1}}'), expect: ['400'] },
  { name: 'back-channel: unknown plugin', send: request('POST', '/oidc/backchannel-logout/nope', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'logout_token=x'), expect: ['400', '404'] },
  { name: 'back-channel: pluginId of 10 KB', send: request('POST', `/oidc/backchannel-logout/${'%41'.repeat(3000)}`, { 'Content-Type': 'application/x-www-form-urlencoded' }, 'logout_token=x'), expect: ['400', '404'] },
  { name: 'back-channel: pluginId __proto__', send: request('POST', '/oidc/backchannel-logout/__proto__', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'logout_token=x'), expect: ['400', '404'] },
  { name: 'back-channel: GET', send: head('GET /oidc/backchannel-logout/%E0%A4%A HTTP/1.1', 'Host: x'), expect: ['404', '405'] },
  { name: 'back-channel: no plugin id', send: request('POST', '/oidc/backchannel-logout/', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'logout_token=x'), expect: ['400', '404'] },

  // --- CORS preflight ------------------------------------------------------------------------
  { name: 'preflight, Origin: null', send: head('OPTIONS /graphql/ HTTP/1.1', 'Host: x', 'Origin: null', 'Access-Control-Request-Method: POST'), expect: ['204'], check: noCorsFor },
  { name: 'preflight, Origin of 10 KB', send: head('OPTIONS /graphql/ HTTP/1.1', 'Host: x', `Origin: http://localhost:${'9'.repeat(10_000)}`, 'Access-Control-Request-Method: POST'), expect: ['204'], check: noCorsFor },
  { name: 'preflight, Origin: *', send: head('OPTIONS /graphql/ HTTP/1.1', 'Host: x', 'Origin: *', 'Access-Control-Request-Method: POST'), expect: ['204'], check: noCorsFor },
  { name: 'preflight, Origin with bytes >= 0x80', send: head('OPTIONS /graphql/ HTTP/1.1', 'Host: x', 'Origin: http://evil\xff.example', 'Access-Control-Request-Method: POST'), expect: ['204'], check: noCorsFor },
  { name: 'preflight, Origin twice', send: head('OPTIONS /graphql/ HTTP/1.1', 'Host: x', 'Origin: https://a.example', 'Origin: https://b.example', 'Access-Control-Request-Method: POST'), expect: ['204'], check: noCorsFor },
  { name: 'preflight, 8 KB of requested headers', send: head('OPTIONS /graphql/ HTTP/1.1', 'Host: x', 'Origin: https://a.example', 'Access-Control-Request-Method: POST', `Access-Control-Request-Headers: ${'x,'.repeat(4000)}`), expect: ['204'] },
  { name: 'POST with Origin: null gets no CORS headers', send: gql('{ __typename }', { Origin: 'null' }), expect: ['200'], check: noCorsFor },

  // --- pipelining ----------------------------------------------------------------------------
  {
    name: 'HTTP/0.9-style request, then garbage: nothing after the close-delimited response',
    send: latin1('GET /healthz\r\n\r\n%\r\n\r\n'),
    responses: 2,
    expect: ['200'],
    check: (x) => expect(x.finals.map((r) => r.status)).toEqual([200]),
  },
  {
    name: 'HTTP/0.9-style request line with a CRLF CRLF inside the target',
    send: latin1('GET /\r\n\r\n% HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'),
    responses: 2,
    expect: ['400', '404'],
    check: (x) => expect(x.finals).toHaveLength(1),
  },
  {
    name: 'HTTP/1.0 request, then garbage: nothing after the close-delimited response',
    send: latin1('GET /nope HTTP/1.0\r\n\r\n%\r\n\r\n'),
    responses: 2,
    expect: ['404'],
    check: (x) => expect(x.finals.map((r) => r.status)).toEqual([404]),
  },
  {
    name: 'Connection: close request, then garbage: no second response',
    send: Buffer.concat([head('GET /nope HTTP/1.1', 'Host: x'), latin1('%\r\n\r\n')]),
    responses: 2,
    expect: ['404'],
    check: (x) => expect(x.finals.map((r) => r.status)).toEqual([404]),
  },
  {
    name: 'Connection: close request, then a second request: not answered',
    send: Buffer.concat([head('GET /nope HTTP/1.1', 'Host: x'), head('GET /healthz HTTP/1.1', 'Host: x')]),
    responses: 2,
    expect: ['404'],
    check: (x) => expect(x.finals.map((r) => r.status)).toEqual([404]),
  },
  {
    name: 'pipelined: malformed target, then /healthz',
    send: Buffer.concat([raw('GET //a:99999/ HTTP/1.1', 'Host: x', '', ''), head('GET /healthz HTTP/1.1', 'Host: x')]),
    responses: 2,
    expect: ['400', '404'],
  },
  {
    name: 'pipelined: three /healthz',
    send: Buffer.concat([raw('GET /healthz HTTP/1.1', 'Host: x', '', ''), raw('GET /healthz HTTP/1.1', 'Host: x', '', ''), head('GET /healthz HTTP/1.1', 'Host: x')]),
    responses: 3,
    expect: ['200'],
    check: (x) => expect(x.finals.map((r) => r.status)).toEqual([200, 200, 200]),
  },
  {
    name: 'pipelined: GraphQL, then garbage',
    send: Buffer.concat([request('POST', '/graphql/', [['Content-Type', 'application/json'], ['Connection', 'keep-alive']], TYPENAME), latin1('\x00\xff garbage \r\n\r\n')]),
    responses: 2,
    expect: ['200', '400'],
  },
  {
    name: 'pipelined: /readyz (database round trip), then a header overflow',
    send: Buffer.concat([raw('GET /readyz HTTP/1.1', 'Host: x', '', ''), head('GET /healthz HTTP/1.1', 'Host: x', `X-A: ${'a'.repeat(20_000)}`)]),
    responses: 2,
    expect: ['200', '431'],
  },
  {
    // The refused bytes arrive while /readyz still waits for the database: its answer comes first.
    name: 'pipelined: /readyz (database round trip), then garbage: answered in order',
    send: Buffer.concat([raw('GET /readyz HTTP/1.1', 'Host: x', '', ''), latin1('\x00\xff garbage \r\n\r\n')]),
    responses: 2,
    expect: ['200', '400'],
    check: (x) => expect(x.finals.map((r) => r.status)).toEqual([200, 400]),
  },
  {
    name: 'HTTP/1.0 /readyz (database round trip), then garbage: only the /readyz answer',
    send: latin1('GET /readyz HTTP/1.0\r\n\r\nGET /x%\r\n\r\n'),
    responses: 2,
    expect: ['200'],
    check: (x) => expect(x.finals.map((r) => r.status)).toEqual([200]),
  },
];

async function expectHealthy(): Promise<void> {
  expect(server.alive(), `server exited: ${JSON.stringify(server.exit())}\n${server.stderr().slice(-2000)}`).toBe(true);
  const h = await healthz(server.port);
  expect(h.parsed.error).toBeUndefined();
  expect(h.outcome).toBe('200');
  expect(bodyJson(h)).toEqual({ status: 'ok' });
}

/** Every response in the exchange is well-formed and none is a server error. */
function expectWellFormed(x: Exchange, opts: { head?: boolean } = {}): void {
  const shown = JSON.stringify(x.bytes.subarray(0, 600).toString('latin1'));
  expect(x.parsed.error, `malformed reply: ${shown}`).toBeUndefined();
  expect(x.finals.filter((r) => r.status >= 500).map((r) => r.status), shown).toEqual([]);
  for (const r of x.finals) {
    expect(headerValues(r, 'x-request-id').every((v) => REQUEST_ID_SHAPE.test(v))).toBe(true);
    // (A response to HEAD has the headers of the GET response and no body.)
    const json = opts.head !== true && /^application\/(graphql-response\+)?json\b/i.test(header(r, 'content-type') ?? '');
    expect(() => (json ? JSON.parse(r.body.toString('utf8')) : null), `body of a JSON response: ${shown}`).not.toThrow();
  }
}

describe('hostile HTTP corpus (raw sockets)', () => {
  it.each(cases)('$name', async (c) => {
    const x = await exchange(server.port, c.send, {
      responses: c.responses ?? 1,
      head: c.headRequest === true,
      end: c.end === true,
      untilClose: c.keepAlive !== true,
      timeoutMs: c.timeoutMs ?? 8000,
    });
    expectWellFormed(x, { head: c.headRequest === true });
    expect(x.timedOut, `no complete reply, or the connection was not closed, within the time limit: ${JSON.stringify(x.bytes.subarray(0, 600).toString('latin1'))}`).toBe(false);
    expect(c.expect, `outcome ${x.outcome}: ${JSON.stringify(x.bytes.subarray(0, 600).toString('latin1'))}`).toContain(x.outcome);
    (c.check ?? noCheck)(x);
    await expectHealthy();
  });
});

describe('slow and idle clients', { timeout: 60_000 }, () => {
  it('a body shorter than its Content-Length is cut off by the request timeout', async () => {
    const x = await exchange(server.port, head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, 'Content-Length: 100'), { timeoutMs: 45_000, untilClose: true });
    expectWellFormed(x);
    expect(x.outcome).toBe('408');
    expect(x.closedByServer).toBe(true);
    expect(x.elapsedMs).toBeLessThan(REQUEST_TIMEOUT_MS + TIMEOUT_SLACK_MS);
    await expectHealthy();
  });

  it('slowloris: headers at one byte per 200 ms are cut off by the headers timeout, and /healthz answers meanwhile', async () => {
    const drip = 'X-Slow: ' + 'a'.repeat(200);
    const parts = [latin1('GET /healthz HTTP/1.1\r\nHost: x\r\n'), ...[...drip].map(latin1)];
    const slow = exchange(server.port, parts, { partDelayMs: 200, timeoutMs: 45_000, untilClose: true });
    await new Promise((r) => setTimeout(r, 700));
    const during = await healthz(server.port);
    expect(during.outcome).toBe('200');
    const x = await slow;
    expectWellFormed(x);
    expect(['408']).toContain(x.outcome);
    expect(x.closedByServer).toBe(true);
    expect(x.elapsedMs).toBeLessThan(HEADERS_TIMEOUT_MS + TIMEOUT_SLACK_MS);
    await expectHealthy();
  });

  it('slow body: one byte per 200 ms is cut off by the request timeout, and /healthz answers meanwhile', async () => {
    const body = JSON.stringify({ query: `{ __typename }${' '.repeat(200)}` });
    const parts = [head('POST /graphql/ HTTP/1.1', 'Host: x', ...GQL_HEADERS, `Content-Length: ${body.length}`), ...[...body].map(latin1)];
    const slow = exchange(server.port, parts, { partDelayMs: 200, timeoutMs: 45_000, untilClose: true });
    await new Promise((r) => setTimeout(r, 700));
    const during = await healthz(server.port);
    expect(during.outcome).toBe('200');
    const x = await slow;
    expectWellFormed(x);
    expect(x.outcome).toBe('408');
    expect(x.closedByServer).toBe(true);
    expect(x.elapsedMs).toBeLessThan(REQUEST_TIMEOUT_MS + TIMEOUT_SLACK_MS);
    await expectHealthy();
  });

  it('200 idle connections do not stop /healthz, and are closed by the headers timeout', async () => {
    const idle = Array.from({ length: 200 }, () => exchange(server.port, Buffer.alloc(0), { timeoutMs: 45_000, untilClose: true }));
    await new Promise((r) => setTimeout(r, 300));
    const during = await healthz(server.port);
    expect(during.outcome).toBe('200');
    const results = await Promise.all(idle);
    for (const x of results) expectWellFormed(x);
    expect([...new Set(results.map((x) => x.outcome))].filter((o) => o !== '408' && o !== 'closed')).toEqual([]);
    expect(Math.max(...results.map((x) => x.elapsedMs))).toBeLessThan(HEADERS_TIMEOUT_MS + TIMEOUT_SLACK_MS);
    await expectHealthy();
  });

  it('100 connections that each send a partial request and reset', async () => {
    const { connect } = await import('node:net');
    await Promise.all(
      Array.from(
        { length: 100 },
        (_, i) =>
          new Promise<void>((resolve) => {
            const s = connect({ host: '127.0.0.1', port: server.port }, () => {
              s.write(i % 2 ? 'POST /graphql/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"query":' : 'GET /heal');
              setTimeout(() => {
                s.resetAndDestroy();
                resolve();
              }, 20);
            });
            s.on('error', () => resolve());
          }),
      ),
    );
    await expectHealthy();
  });
});

describe('after the corpus', () => {
  it('nothing escaped an error boundary (no error-level log line) and the process is still up', async () => {
    await expectHealthy();
    const errors = server.logRecords().filter((r) => r['level'] === 'error');
    expect(errors.map((r) => ({ message: r['message'], errorName: r['errorName'], errorMessage: r['errorMessage'], path: r['path'] }))).toEqual([]);
    expect(server.stderr()).toBe('');
  });
});
