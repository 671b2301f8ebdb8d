/**
 * The client's address. With TRUST_PROXY = n, the n reverse proxies in front of us each
 * appended the address they received the request from to X-Forwarded-For, so the client is the
 * n-th entry from the right (entries further left were written by the client and prove
 * nothing). With 0 (the default), the socket's peer address.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export function clientAddress(req: IncomingMessage, trustProxy: number): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (trustProxy <= 0) return peer;
  const header = req.headers['x-forwarded-for'];
  const raw = Array.isArray(header) ? header.join(',') : header;
  if (!raw) return peer;
  const hops = raw.split(',').map((h) => h.trim()).filter((h) => h !== '');
  const candidate = hops[hops.length - trustProxy] ?? hops[0];
  return candidate !== undefined && isIP(candidate) ? candidate : peer;
}
