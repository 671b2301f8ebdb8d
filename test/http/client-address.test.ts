import { describe, expect, it } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { clientAddress } from '../../src/http/client-address.ts';

const req = (xff: string | undefined, peer = '127.0.0.1') =>
  ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;

describe('clientAddress', () => {
  it.each([
    [0, '203.0.113.9', '127.0.0.1'],
    [1, undefined, '127.0.0.1'],
    [1, '203.0.113.9', '203.0.113.9'],
    [1, '198.51.100.1, 203.0.113.9', '203.0.113.9'],
    [2, '198.51.100.1, 203.0.113.9', '198.51.100.1'],
    [2, '1.1.1.1, 198.51.100.1, 203.0.113.9', '198.51.100.1'],
    [3, '203.0.113.9', '203.0.113.9'],
    [1, 'not-an-ip', '127.0.0.1'],
    [1, '2001:db8::1', '2001:db8::1'],
    [1, ' , ', '127.0.0.1'],
  ] as const)('TRUST_PROXY=%s, X-Forwarded-For %j → %s', (hops, xff, expected) => {
    expect(clientAddress(req(xff), hops)).toBe(expected);
  });
});
