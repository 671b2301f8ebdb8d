/**
 * The one outbound door: every request to an OpenID provider (discovery, JWKS, token,
 * userinfo, revocation, ...) goes through the fetch made here. It adds what a plain fetch
 * lacks when the URL comes from configuration or from a provider's own metadata:
 *
 * - https only (plain http only when private addresses are allowed, i.e. tests);
 * - an address guard applied when the socket is opened, so DNS rebinding cannot slip past
 *   it: the hostname is resolved once, every address is checked, and the connection goes to
 *   the addresses that were checked; literal IP hosts are checked without DNS;
 * - no redirects (a 3xx is an error, its Location is never followed);
 * - one time limit for the whole request including reading the body;
 * - a size limit on the response body, enforced while streaming.
 *
 * Errors are OutboundError with a `kind`; their messages and `url` carry origin and path
 * only, never the query string (it may hold codes or secrets) and never a body. Nothing
 * here logs.
 *
 * The result is a fetch-compatible function for openid-client v6's `customFetch` and jose's
 * `createRemoteJWKSet` `[customFetch]`. It returns a standard `globalThis.Response` holding
 * the buffered body (oauth4webapi checks `instanceof Response`).
 *
 * `observedFetch` wraps such a fetch to report each call's URL, outcome and duration (for
 * metrics); `outboundOutcome` names how a call ended, by status class and error kind.
 */
import dns from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { Agent, buildConnector, fetch as undiciFetch, type Dispatcher } from 'undici';
import { isNonPublicAddress, stripBrackets } from './address-policy.ts';

export { isNonPublicAddress };

export interface GuardedFetchOptions {
  /** Allow loopback/private/link-local destinations and plain http (tests against a local IdP). Default false. */
  allowPrivateAddresses: boolean;
  /** Total time for one request including reading the body. Default 5000 ms. */
  timeoutMs?: number;
  /** Largest response body accepted. Default 1 MiB. */
  maxResponseBytes?: number;
}

export const DEFAULT_TIMEOUT_MS = 5000;
export const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;

export type OutboundErrorKind =
  | 'blocked-address'
  | 'insecure-scheme'
  | 'timeout'
  | 'too-large'
  | 'redirect'
  | 'network';

export class OutboundError extends Error {
  constructor(
    readonly kind: OutboundErrorKind,
    /** Origin and pathname of the request URL only; never the query (it may hold secrets). */
    readonly url: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'OutboundError';
  }
}

/**
 * Raised inside the connector (DNS lookup or literal IP) when a destination is refused;
 * surfaces from undici as the cause of its "fetch failed" TypeError.
 */
class BlockedAddressError extends Error {
  readonly code = 'ERR_OUTBOUND_BLOCKED_ADDRESS';
  constructor(
    readonly host: string,
    readonly address: string,
  ) {
    super(
      host === address
        ? `${address} is not a public address`
        : `${host} resolves to ${address}, which is not a public address`,
    );
    this.name = 'BlockedAddressError';
  }
}

/** Returns a fetch that enforces the outbound rules above. One connection pool per call. */
export function createGuardedFetch(options: GuardedFetchOptions): typeof fetch {
  const allowPrivate = options.allowPrivateAddresses;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError('timeoutMs must be a positive integer');
  }
  if (!Number.isInteger(maxBytes) || maxBytes < 0) {
    throw new RangeError('maxResponseBytes must be a non-negative integer');
  }

  const dispatcher: Dispatcher = allowPrivate ? new Agent() : new Agent({ connect: guardedConnector() });

  return async function guardedFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    let url: URL;
    try {
      url = new URL(input instanceof Request ? input.url : typeof input === 'string' ? input : input.href);
    } catch {
      // Do not echo the input: it may carry secrets in its query.
      throw new TypeError('Invalid URL for an outbound request');
    }
    const where = safeUrl(url);

    if (!(url.protocol === 'https:' || (allowPrivate && url.protocol === 'http:'))) {
      throw new OutboundError(
        'insecure-scheme',
        where,
        `Refusing ${url.protocol} request to ${where}: only ${allowPrivate ? 'https: and http:' : 'https:'} allowed`,
      );
    }
    if (url.username !== '' || url.password !== '') {
      throw new TypeError(`Refusing request to ${where}: credentials in the URL`);
    }
    const literal = stripBrackets(url.hostname);
    if (!allowPrivate && isIP(literal) !== 0 && isNonPublicAddress(literal)) {
      // Checked again by the connector; refusing here spares building the request at all.
      throw new OutboundError('blocked-address', where, `Refusing request to ${where}: ${literal} is not a public address`);
    }

    // Let the platform's Request merge input and init (headers, body, signal) by the spec, then
    // hand plain values to undici: its fetch does not recognise another copy's Request/FormData.
    let request: Request;
    try {
      request = new Request(input instanceof Request ? input : url.href, init);
    } catch (err) {
      throw new TypeError(`Invalid outbound request to ${where}`, { cause: err });
    }
    const body = request.body === null ? undefined : new Uint8Array(await request.arrayBuffer());

    const callerSignal = request.signal;
    const timeoutSignal = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([timeoutSignal, callerSignal]);

    const fail = (err: unknown): unknown => {
      if (err instanceof OutboundError) return err;
      // The caller's own abort keeps its reason, as with fetch (jose maps TimeoutError itself).
      if (callerSignal.aborted) return callerSignal.reason;
      if (timeoutSignal.aborted) {
        return new OutboundError('timeout', where, `Request to ${where} timed out after ${timeoutMs} ms`);
      }
      const blocked = findInCauses(err, (e): e is BlockedAddressError => e instanceof BlockedAddressError);
      if (blocked) {
        return new OutboundError('blocked-address', where, `Refusing request to ${where}: ${blocked.message}`);
      }
      const code = describeFailure(err, url);
      const system = findInCauses(err, (e): e is Error => e instanceof Error && typeof (e as { code?: unknown }).code === 'string');
      // Only a system/undici error with a code is kept as cause: those name at most host and port.
      return new OutboundError('network', where, `Request to ${url.origin} failed: ${code}`, system ? { cause: system } : undefined);
    };

    try {
      const response = await undiciFetch(url.href, {
        method: request.method,
        headers: [...request.headers],
        body,
        signal,
        redirect: 'manual',
        dispatcher,
      });

      if (response.status >= 300 && response.status < 400) {
        void response.body?.cancel().catch(() => {});
        // The Location is deliberately not in the message: it may carry codes or tokens.
        throw new OutboundError('redirect', where, `Refusing redirect (${response.status}) from ${where}`);
      }

      const declared = response.headers.get('content-length');
      if (declared !== null && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
        void response.body?.cancel().catch(() => {});
        throw tooLarge(where, maxBytes);
      }

      const bytes = await readLimited(response.body, maxBytes, where);

      const headers = new Headers();
      for (const [name, value] of response.headers) headers.append(name, value);
      const nullBody = response.status === 204 || response.status === 205;
      const result = new Response(nullBody ? null : bytes, {
        status: response.status,
        statusText: REASON_PHRASE.test(response.statusText) ? response.statusText : '',
        headers,
      });
      // A constructed Response has url ''; keep the one requested, as fetch would.
      Object.defineProperty(result, 'url', { value: url.href, enumerable: true });
      return result;
    } catch (err) {
      throw fail(err);
    }
  };
}

/**
 * How one outbound call ended: an HTTP answer by status class, or why there was none (a time
 * limit, a network failure, a destination refused by policy, an answer refused: a redirect or
 * a body over the size limit).
 */
export type OutboundOutcome = 'ok' | 'http_4xx' | 'http_5xx' | 'timeout' | 'network_error' | 'blocked' | 'invalid_response';

/** The outcome of a call that answered `status`, or that threw `error`. */
export function outboundOutcome(ended: { status: number } | { error: unknown }): OutboundOutcome {
  if ('status' in ended) return ended.status >= 500 ? 'http_5xx' : ended.status >= 400 ? 'http_4xx' : 'ok';
  const e = ended.error;
  if (e instanceof OutboundError) {
    switch (e.kind) {
      case 'timeout':
        return 'timeout';
      case 'blocked-address':
      case 'insecure-scheme':
        return 'blocked';
      case 'redirect':
      case 'too-large':
        return 'invalid_response';
      default:
        return 'network_error';
    }
  }
  // The caller's own time limit (openid-client's AbortSignal.timeout, jose's) keeps its reason.
  if (e instanceof DOMException && (e.name === 'TimeoutError' || e.name === 'AbortError')) return 'timeout';
  return 'network_error';
}

/** Told about every call made through an observed fetch; `url` undefined when unparsable. */
export type FetchObserver = (url: URL | undefined, outcome: OutboundOutcome, seconds: number) => void;

/**
 * `fetchImpl`, reporting each call to `observe` once it ended (the guarded fetch buffers the
 * body, so the duration includes reading it). The call's result or error is passed through
 * untouched, and an observer that throws is ignored.
 */
export function observedFetch(fetchImpl: typeof fetch, observe: FetchObserver): typeof fetch {
  return async function observed(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    let url: URL | undefined;
    try {
      url = new URL(input instanceof Request ? input.url : typeof input === 'string' ? input : input.href);
    } catch {
      url = undefined;
    }
    const started = process.hrtime.bigint();
    const report = (ended: { status: number } | { error: unknown }) => {
      try {
        observe(url, outboundOutcome(ended), Number(process.hrtime.bigint() - started) / 1e9);
      } catch {
        // Observing never changes the call.
      }
    };
    let response: Response;
    try {
      response = await fetchImpl(input, init);
    } catch (error) {
      report({ error });
      throw error;
    }
    report({ status: response.status });
    return response;
  };
}

/** reason-phrase = *( HTAB / SP / VCHAR / obs-text ) (RFC 9112 §4); Response rejects others. */
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]*$/;

function tooLarge(where: string, maxBytes: number): OutboundError {
  return new OutboundError('too-large', where, `Response from ${where} exceeds ${maxBytes} bytes`);
}

/** Reads a body stream into memory, cancelling it as soon as it passes `maxBytes`. */
async function readLimited(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
  where: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const out: Uint8Array[] = [];
  let total = 0;
  if (body !== null) {
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        void reader.cancel().catch(() => {});
        throw tooLarge(where, maxBytes);
      }
      out.push(value);
    }
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of out) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/**
 * undici connector that refuses non-public destinations before any byte is sent: literal IP
 * hosts are checked here (net.connect does not call `lookup` for them), hostnames in
 * `guardedLookup`, whose checked addresses are the ones the socket then connects to.
 */
function guardedConnector(): buildConnector.connector {
  const connect = buildConnector({ lookup: guardedLookup });
  return (opts, callback) => {
    const host = stripBrackets(opts.hostname);
    if (isIP(host) !== 0 && isNonPublicAddress(host)) {
      callback(new BlockedAddressError(host, host), null);
      return;
    }
    connect(opts, callback);
  };
}

/** dns.lookup that resolves all addresses and fails if any of them is non-public. */
const guardedLookup: LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) {
      callback(err, '');
      return;
    }
    const refused = addresses.find((a) => isNonPublicAddress(a.address));
    if (refused) {
      callback(new BlockedAddressError(hostname, refused.address), '');
      return;
    }
    const first = addresses[0];
    if (first === undefined) {
      callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '');
      return;
    }
    if (options.all) callback(null, addresses);
    else callback(null, first.address, first.family);
  });
};

/** Origin and pathname; no userinfo, query or fragment. */
function safeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** Depth-first search through `cause` chains and AggregateError members. */
function findInCauses<T>(err: unknown, match: (e: unknown) => e is T, depth = 0): T | undefined {
  if (depth > 8 || err === null || typeof err !== 'object') return undefined;
  if (match(err)) return err;
  if (err instanceof AggregateError) {
    for (const inner of err.errors) {
      const found = findInCauses(inner, match, depth + 1);
      if (found !== undefined) return found;
    }
  }
  return findInCauses((err as { cause?: unknown }).cause, match, depth + 1);
}

/**
 * What went wrong, for the message: the first code in the error chain (ECONNREFUSED,
 * ENOTFOUND, UND_ERR_SOCKET, ...), else the innermost cause's message (undici's network
 * errors, e.g. "bad port"), with the query removed should it appear there.
 */
function describeFailure(err: unknown, url: URL): string {
  const coded = findInCauses(err, (e): e is { code: string } => typeof (e as { code?: unknown }).code === 'string');
  if (coded) return coded.code;
  let innermost: Error | undefined;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) innermost = e;
  if (innermost === undefined) return 'unknown error';
  let text = innermost.message || innermost.name;
  if (url.search !== '') text = text.split(url.search).join('').split(url.search.slice(1)).join('');
  return text.slice(0, 200);
}
