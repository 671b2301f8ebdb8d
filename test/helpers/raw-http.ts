/**
 * HTTP/1.1 over a bare socket, for tests that send what no HTTP client library would: raw
 * bytes out, raw bytes back, and a strict parser of what came back.
 *
 * `exchange` writes the given bytes (all at once, or part by part with a delay) and collects
 * the reply until the server closes the connection, the expected number of complete final
 * responses has arrived, or a timeout. `parseResponses` checks that the bytes are well-formed
 * HTTP/1.1 responses (RFC 9112): a status line `HTTP/1.1 NNN Reason`, header fields of token
 * names and visible values, CRLF CRLF, and a body framed by Content-Length, chunked
 * Transfer-Encoding, or (only with `Connection: close`) the end of the connection.
 */
import net from 'node:net';

export interface HttpResponse {
  status: number;
  reason: string;
  /** Header fields in order, names lower-cased, values without surrounding whitespace. */
  headers: Array<[string, string]>;
  body: Buffer;
  framing: 'none' | 'content-length' | 'chunked' | 'close';
}

/** Values of one header (lower-case name), in order. */
export function headerValues(response: HttpResponse, name: string): string[] {
  return response.headers.filter(([n]) => n === name).map(([, v]) => v);
}

/** The single value of a header (undefined when absent; every value joined when repeated). */
export function header(response: HttpResponse, name: string): string | undefined {
  const values = headerValues(response, name);
  return values.length ? values.join(', ') : undefined;
}

export interface ParseResult {
  /** Complete responses, interim (1xx) ones included, in order. */
  responses: HttpResponse[];
  /** The bytes end inside a response (more may come). */
  incomplete: boolean;
  /** Why the bytes are not well-formed HTTP/1.1 (undefined: they are, so far). */
  error?: string;
}

const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.1 ([1-5][0-9]{2}) ([\t\x20-\x7e\x80-\xff]+)$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function bodyless(status: number, head: boolean): boolean {
  return head || (status >= 100 && status < 200) || status === 204 || status === 304;
}

/**
 * Parses `bytes` as a sequence of HTTP/1.1 responses.
 * @param closed the connection has ended after these bytes (a close-delimited body is complete,
 *   and a partial response is an error rather than "incomplete")
 * @param head the request was HEAD (no body whatever the headers say)
 */
export function parseResponses(bytes: Buffer, opts: { closed: boolean; head?: boolean }): ParseResult {
  const responses: HttpResponse[] = [];
  let at = 0;
  const partial = (what: string): ParseResult =>
    opts.closed ? { responses, incomplete: false, error: `connection closed inside ${what}` } : { responses, incomplete: true };
  const bad = (error: string): ParseResult => ({ responses, incomplete: false, error });

  while (at < bytes.length) {
    const headEnd = bytes.indexOf(HEAD_END, at);
    if (headEnd < 0) return partial('the status line or header section');
    const headText = bytes.subarray(at, headEnd).toString('latin1');
    const lines = headText.split('\r\n');
    const statusLine = lines[0]!;
    const m = STATUS_LINE.exec(statusLine);
    if (!m) return bad(`malformed status line ${JSON.stringify(statusLine)}`);
    const status = Number(m[1]);
    const headers: Array<[string, string]> = [];
    for (const line of lines.slice(1)) {
      if (line.includes('\n') || line.includes('\r')) return bad(`bare CR or LF in header line ${JSON.stringify(line)}`);
      const colon = line.indexOf(':');
      if (colon <= 0) return bad(`header line without a name and colon: ${JSON.stringify(line)}`);
      const name = line.slice(0, colon);
      if (!TOKEN.test(name)) return bad(`invalid header name ${JSON.stringify(name)}`);
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
      if (!FIELD_VALUE.test(value)) return bad(`invalid characters in header ${name}: ${JSON.stringify(value)}`);
      headers.push([name.toLowerCase(), value]);
    }
    if (statusLine.includes('\n')) return bad('bare LF in the status line');
    at = headEnd + HEAD_END.length;

    const values = (n: string) => headers.filter(([k]) => k === n).map(([, v]) => v);
    const lengths = values('content-length');
    const codings = values('transfer-encoding')
      .flatMap((v) => v.split(','))
      .map((v) => v.trim().toLowerCase())
      .filter((v) => v !== '');
    const connection = values('connection')
      .flatMap((v) => v.split(','))
      .map((v) => v.trim().toLowerCase());
    if (lengths.length && codings.length) return bad('both Content-Length and Transfer-Encoding');
    if (lengths.length > 1) return bad(`${lengths.length} Content-Length fields`);

    let body: Buffer;
    let framing: HttpResponse['framing'];
    if (bodyless(status, opts.head === true)) {
      body = Buffer.alloc(0);
      framing = 'none';
    } else if (codings.length) {
      if (codings.join(',') !== 'chunked') return bad(`unexpected Transfer-Encoding ${JSON.stringify(codings.join(', '))}`);
      framing = 'chunked';
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = bytes.indexOf(CRLF, at);
        if (lineEnd < 0) return partial('a chunk size line');
        const sizeLine = bytes.subarray(at, lineEnd).toString('latin1');
        const sm = /^([0-9A-Fa-f]{1,15})(;[\t\x20-\x7e\x80-\xff]*)?$/.exec(sizeLine);
        if (!sm) return bad(`malformed chunk size line ${JSON.stringify(sizeLine)}`);
        const size = parseInt(sm[1]!, 16);
        at = lineEnd + CRLF.length;
        if (size === 0) {
          // Trailer section: header lines, then an empty line.
          for (;;) {
            const tEnd = bytes.indexOf(CRLF, at);
            if (tEnd < 0) return partial('the chunked trailer section');
            const trailer = bytes.subarray(at, tEnd).toString('latin1');
            at = tEnd + CRLF.length;
            if (trailer === '') break;
            if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*$/.test(trailer)) return bad(`malformed trailer ${JSON.stringify(trailer)}`);
          }
          break;
        }
        if (bytes.length < at + size + CRLF.length) return partial('a chunk');
        parts.push(bytes.subarray(at, at + size));
        at += size;
        if (!bytes.subarray(at, at + CRLF.length).equals(CRLF)) return bad('chunk data not followed by CRLF');
        at += CRLF.length;
      }
      body = Buffer.concat(parts);
    } else if (lengths.length) {
      if (!/^[0-9]{1,15}$/.test(lengths[0]!)) return bad(`malformed Content-Length ${JSON.stringify(lengths[0])}`);
      const length = Number(lengths[0]);
      if (bytes.length < at + length) return partial('a Content-Length body');
      body = bytes.subarray(at, at + length);
      framing = 'content-length';
      at += length;
    } else {
      // RFC 9112 section 6.3: the body runs to the end of the connection. Only acceptable
      // when the server says it closes the connection.
      if (!connection.includes('close')) return bad(`status ${status}: no Content-Length, no chunked encoding, and no Connection: close`);
      if (!opts.closed) return { responses, incomplete: true };
      body = bytes.subarray(at);
      framing = 'close';
      at = bytes.length;
    }
    responses.push({ status, reason: m[2]!, headers, body, framing });
  }
  return { responses, incomplete: false };
}

export interface ExchangeOptions {
  host?: string;
  /** Give up (and destroy the socket) after this long. Default 10 s. */
  timeoutMs?: number;
  /** Stop once this many complete final (non-1xx) responses arrived. Default 1. */
  responses?: number;
  /** The request is HEAD (responses have no body). */
  head?: boolean;
  /** Pause between the parts of `data` when it is an array (ms). Default 0. */
  partDelayMs?: number;
  /** Half-close (FIN) our side after the last part. Default false. */
  end?: boolean;
  /** Keep listening after the responses until the server closes the connection (or the timeout). */
  untilClose?: boolean;
}

export interface Exchange {
  /** Everything the server sent. */
  bytes: Buffer;
  /** The server ended the connection (FIN or reset) before we stopped listening. */
  closedByServer: boolean;
  /** We gave up after `timeoutMs`. */
  timedOut: boolean;
  /** A socket error on our side (e.g. ECONNRESET, EPIPE), if any. */
  socketError?: string;
  /** Milliseconds from connect to the end of the exchange. */
  elapsedMs: number;
  parsed: ParseResult;
  /** The final (non-1xx) responses. */
  finals: HttpResponse[];
  /**
   * What happened, as one comparable string: the status of the first final response, or
   * 'closed' (closed without any response), 'timeout' (nothing complete in time), or
   * 'malformed' (the bytes are not well-formed HTTP/1.1; see parsed.error).
   */
  outcome: string;
}

/** Connects to host:port, writes `data`, and collects the reply. */
export function exchange(port: number, data: string | Buffer | Array<string | Buffer>, opts: ExchangeOptions = {}): Promise<Exchange> {
  const host = opts.host ?? '127.0.0.1';
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const wanted = opts.responses ?? 1;
  const parts = (Array.isArray(data) ? data : [data]).map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p));
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ host, port });
    const chunks: Buffer[] = [];
    let closedByServer = false;
    let timedOut = false;
    let socketError: string | undefined;
    let finished = false;
    let writer: NodeJS.Timeout | undefined;

    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(writer);
      socket.destroy();
      const bytes = Buffer.concat(chunks);
      const parsed = parseResponses(bytes, { closed: closedByServer, head: opts.head === true });
      const finals = parsed.responses.filter((r) => r.status >= 200);
      const outcome = parsed.error
        ? 'malformed'
        : finals.length
          ? String(finals[0]!.status)
          : closedByServer && bytes.length === 0
            ? 'closed'
            : timedOut
              ? 'timeout'
              : 'malformed';
      resolve({ bytes, closedByServer, timedOut, socketError, elapsedMs: Date.now() - started, parsed, finals, outcome });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      finish();
    }, timeoutMs);

    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const p = parseResponses(Buffer.concat(chunks), { closed: false, head: opts.head === true });
      const complete = p.responses.filter((r) => r.status >= 200).length;
      if (p.error || (!opts.untilClose && complete >= wanted && !p.incomplete)) finish();
    });
    socket.on('end', () => {
      closedByServer = true;
      finish();
    });
    socket.on('close', () => {
      closedByServer = true;
      finish();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      socketError = e.code ?? e.message;
    });

    let next = 0;
    const writeNext = () => {
      if (finished || socket.destroyed) return;
      const part = parts[next++];
      if (part === undefined) {
        if (opts.end) socket.end();
        return;
      }
      socket.write(part);
      if (next < parts.length && opts.partDelayMs) writer = setTimeout(writeNext, opts.partDelayMs);
      else writeNext();
    };
    socket.once('connect', writeNext);
  });
}

/** A request with `Host` and `Connection: close`, CRLF line ends. */
export function request(method: string, target: string, headers: Array<[string, string]> | Record<string, string> = [], body?: string | Buffer): Buffer {
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  const bodyBytes = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', ...list.map(([k, v]) => `${k}: ${v}`)];
  if (bodyBytes !== undefined && !list.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k))) lines.push(`Content-Length: ${bodyBytes.length}`);
  if (!list.some(([k]) => /^connection$/i.test(k))) lines.push('Connection: close');
  // Request lines and headers are bytes: latin1 keeps each char < 256 as one byte.
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), bodyBytes ?? Buffer.alloc(0)]);
}

/** A JSON POST to /graphql/. */
export function graphqlRequest(body: unknown, headers: Record<string, string> = {}): Buffer {
  return request('POST', '/graphql/', { 'Content-Type': 'application/json', ...headers }, JSON.stringify(body));
}

/** GET /healthz over a fresh connection. */
export function healthz(port: number, timeoutMs = 5000): Promise<Exchange> {
  return exchange(port, request('GET', '/healthz'), { timeoutMs });
}
