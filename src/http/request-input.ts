/**
 * Reading what a client sent, defensively: the request target (origin-form only), the body
 * (bounded, and never left pending when the client goes away), and the answer to what Node's
 * HTTP parser refused before any handler ran.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log.ts';

/**
 * The body is over the limit. Up to DISCARD_FACTOR times the limit, the rest of it is read and
 * thrown away after the 413 (Node dumps an unread body once the response is sent), so the client
 * reads its answer instead of a connection reset; beyond that the connection is closed.
 */
export class BodyTooLarge extends Error {
  constructor(readonly closeConnection: boolean) {
    super('request body too large');
  }
}
class BodyAborted extends Error {}

const DISCARD_FACTOR = 8;

/** What readBody keeps on the request it reads (one object; the listeners are shared). */
interface BodyRead {
  chunks: Buffer[];
  size: number;
  limit: number;
  settled: boolean;
  resolve: (body: string) => void;
  reject: (e: Error) => void;
}
const BODY_READ = Symbol('bodyRead');
type Reading = IncomingMessage & { [BODY_READ]?: BodyRead };

function failRead(req: Reading, e: Error): void {
  const read = req[BODY_READ];
  if (!read || read.settled) return;
  read.settled = true;
  read.reject(e);
}

// The listeners, shared by every request (each finds its state on the request itself): no
// closures to make per request.
function onBodyData(this: Reading, chunk: Buffer): void {
  const read = this[BODY_READ]!;
  if (read.settled) return;
  read.size += chunk.length;
  if (read.size > read.limit) {
    failRead(this, new BodyTooLarge(true));
    this.removeAllListeners('data');
    this.resume();
    return;
  }
  read.chunks.push(chunk);
}
function onBodyEnd(this: Reading): void {
  const read = this[BODY_READ]!;
  if (read.settled) return;
  read.settled = true;
  read.resolve(read.chunks.length === 1 ? read.chunks[0]!.toString('utf8') : Buffer.concat(read.chunks).toString('utf8'));
}
function onBodyError(this: Reading, e: Error): void {
  failRead(this, e);
}
// A client that goes away mid-body (or is cut off by the request timeout) must not leave the
// promise pending forever. ('close' comes after every request, also complete ones: the error,
// and its stack trace, only when it is needed.)
function onBodyClose(this: Reading): void {
  if (!this[BODY_READ]!.settled) failRead(this, new BodyAborted('request closed before its body was complete'));
}

export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new BodyTooLarge(declared > limit * DISCARD_FACTOR));
      return;
    }
    (req as Reading)[BODY_READ] = { chunks: [], size: 0, limit, settled: false, resolve, reject };
    req.on('data', onBodyData);
    req.on('end', onBodyEnd);
    req.on('error', onBodyError);
    req.on('close', onBodyClose);
  });
}

/** What we use of a request's target: its path and its query (`?…`, or empty), as URL has them. */
export interface RequestTarget {
  pathname: string;
  search: string;
}

/** A path URL would give back unchanged: no query, fragment, escapes, dot segments or backslashes. */
const PLAIN_PATH = /^[A-Za-z0-9_\-/]+$/;

/** The request's target, or null when it is not one we can serve (400). */
export function parseTarget(raw: string | undefined): RequestTarget | null {
  // origin-form only (RFC 9112 section 3.2.1); `//x` would be read as a host, `*` and
  // absolute-form are for proxies.
  if (!raw || raw[0] !== '/' || raw[1] === '/') return null;
  // The usual case (`/graphql/`) without a URL parser.
  if (PLAIN_PATH.test(raw)) return { pathname: raw, search: '' };
  try {
    return new URL(raw, 'http://localhost');
  } catch {
    return null;
  }
}

const CLIENT_ERROR_STATUS: Record<string, number> = {
  HPE_HEADER_OVERFLOW: 431,
  ERR_HTTP_REQUEST_TIMEOUT: 408,
  ERR_HTTP_HEADERS_TIMEOUT: 408,
};
const REASON: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/** The request a socket is being answered for (its response not finished yet). */
export interface PendingExchange {
  req: IncomingMessage;
  res: ServerResponse;
}

/**
 * Answers what Node's HTTP parser refused before any handler ran, then closes the socket.
 * Nothing is written when a response is already under way on the socket, or when the bytes came
 * after a response that closes the connection (HPE_CLOSED_CONNECTION): an answer there would
 * land inside the other response.
 *
 * `pending`: a request on this socket still being answered. When it was read completely, the bad
 * bytes are a next (pipelined) request: its answer waits for the pending response, so the client
 * reads the answers in order. When it was not (its body timed out, or is what the parser refused),
 * the answer is for that request, at once.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, log: Logger, pending?: PendingExchange): void {
  const status = CLIENT_ERROR_STATUS[err.code ?? ''] ?? 400;
  log.info('request refused by the HTTP parser', { status, code: err.code });
  if (pending && pending.req.complete && !pending.res.writableFinished && !pending.res.destroyed) {
    pending.res.once('close', () => answerClientError(err, socket, log));
    return;
  }
  // Node's own handler checks the same (the socket's response in progress is internal state).
  const inProgress = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (err.code === 'ECONNRESET' || err.code === 'HPE_CLOSED_CONNECTION' || !socket.writable || inProgress?.headersSent) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ errors: [{ message: REASON[status] }] });
  socket.end(
    `HTTP/1.1 ${status} ${REASON[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
