/**
 * bearerOf (src/http/bearer.ts): the token a request carries, remembered per connection. It
 * must always be the token of this request's headers, never the previous request's.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { IncomingMessage } from 'node:http';
import { bearerOf } from '../../src/http/bearer.ts';
import { tokenFromHeaders } from '../../src/auth/authenticate.ts';
import { hashToken } from '../../src/crypto/secret-box.ts';

/** A request on `socket` with these headers (what bearerOf reads of one). */
function request(socket: object, headers: Record<string, string | string[] | undefined>): IncomingMessage {
  return { socket, headers } as unknown as IncomingMessage;
}

describe('bearerOf', () => {
  it('gives the token of the headers and its hash, and the same answer again without parsing it again', () => {
    const socket = {};
    const first = bearerOf(request(socket, { authorization: 'Bearer abc.def' }));
    expect(first).toMatchObject({ token: 'abc.def', key: hashToken('abc.def') });
    // The same headers on the same connection: the remembered answer itself.
    expect(bearerOf(request(socket, { authorization: `Bearer ${'abc.def'}` }))).toBe(first);
    // Another connection has its own.
    const other = bearerOf(request({}, { authorization: 'Bearer abc.def' }));
    expect(other).not.toBe(first);
    expect(other.key).toBe(first.key);
  });

  it('follows the headers as they change on one connection: another token, none, Saleor’s header precedence', () => {
    const socket = {};
    const seen = (headers: Record<string, string | undefined>) => {
      const b = bearerOf(request(socket, headers));
      return { token: b.token, key: b.key };
    };
    expect(seen({ authorization: 'Bearer one' })).toEqual({ token: 'one', key: hashToken('one') });
    expect(seen({ authorization: 'Bearer two' })).toEqual({ token: 'two', key: hashToken('two') });
    expect(seen({})).toEqual({ token: undefined, key: undefined });
    expect(seen({ authorization: 'Bearer two' })).toEqual({ token: 'two', key: hashToken('two') });
    expect(seen({ authorization: 'Bearer two', 'authorization-bearer': 'three' })).toEqual({ token: 'three', key: hashToken('three') });
    expect(seen({ authorization: 'Bearer two' })).toEqual({ token: 'two', key: hashToken('two') });
    expect(seen({ authorization: 'Basic dXNlcjpwdw==' })).toEqual({ token: undefined, key: undefined });
    expect(seen({ authorization: 'Bearer a b' })).toEqual({ token: undefined, key: undefined });
    expect(seen({ authorization: 'JWT two' })).toEqual({ token: 'two', key: hashToken('two') });
  });

  it('property: on one connection, every request’s answer is what its own headers say', () => {
    const value = fc.oneof(fc.constant(undefined), fc.constantFrom('Bearer t1', 'Bearer t2', 'JWT t1', 'bearer  t2 ', 'Bearer', 'Basic x', 'Bearer t1 t2'), fc.string({ maxLength: 12 }));
    fc.assert(
      fc.property(fc.array(fc.record({ authorization: value, direct: fc.oneof(fc.constant(undefined), fc.constantFrom('t3', ' ', ''), fc.array(fc.constant('t4'), { minLength: 2, maxLength: 2 })) }), { minLength: 1, maxLength: 30 }), (requests) => {
        const socket = {};
        for (const { authorization, direct } of requests) {
          const headers = { authorization, 'authorization-bearer': direct };
          const expected = tokenFromHeaders(headers);
          const got = bearerOf(request(socket, headers));
          expect(got.token).toBe(expected);
          expect(got.key).toBe(expected === undefined ? undefined : hashToken(expected));
        }
      }),
      { numRuns: 300 },
    );
  });
});
