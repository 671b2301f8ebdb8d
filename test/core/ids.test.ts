import { describe, expect, it } from 'vitest';
import { fromGlobalId, parseGlobalIdOf, toGlobalId } from '../../src/core/ids.ts';

// Expected encodings are standard base64 of the plain strings (as graphene produces them).
describe('toGlobalId', () => {
  it.each<[string, string | number, string]>([
    ['User', 1, 'VXNlcjox'],
    ['User', '1', 'VXNlcjox'],
    ['User', 42, 'VXNlcjo0Mg=='],
    ['Group', 1, 'R3JvdXA6MQ=='],
    ['User', 'abc', 'VXNlcjphYmM='],
    ['User', '1:2', 'VXNlcjoxOjI='],
    ['User', Number.MAX_SAFE_INTEGER, 'VXNlcjo5MDA3MTk5MjU0NzQwOTkx'],
    ['Usér', 7, 'VXPDqXI6Nw=='],
  ])('(%j, %j) → %s', (type, id, expected) => {
    expect(toGlobalId(type, id)).toBe(expected);
  });

  it.each(['', 'Us:er', ':'])('refuses type %j', (type) => {
    expect(() => toGlobalId(type, 1)).toThrow(TypeError);
  });
});

describe('fromGlobalId', () => {
  it.each<[string, { type: string; id: string }]>([
    ['VXNlcjox', { type: 'User', id: '1' }],
    ['VXNlcjo0Mg==', { type: 'User', id: '42' }],
    ['R3JvdXA6MQ==', { type: 'Group', id: '1' }],
    ['VXNlcjphYmM=', { type: 'User', id: 'abc' }],
    // Split on the first colon only.
    ['VXNlcjoxOjI=', { type: 'User', id: '1:2' }],
    ['VXPDqXI6Nw==', { type: 'Usér', id: '7' }],
  ])('%s → %j', (input, expected) => {
    expect(fromGlobalId(input)).toEqual(expected);
  });

  it.each<[string, string]>([
    ['empty string', ''],
    ['not base64 (plain "User:abc")', 'User:abc'],
    ['not base64 (punctuation)', '!!!'],
    ['whitespace', ' VXNlcjox'],
    ['trailing newline', 'VXNlcjox\n'],
    ['missing padding', 'VXNlcjo0Mg'],
    ['too much padding', 'VXNlcjox===='],
    ['padding in the middle', 'VX==cjox'],
    ['URL-safe alphabet', '_w=='],
    ['non-canonical padding bits', 'R3JvdXA6MR=='],
    ['empty id ("User:")', 'VXNlcjo='],
    ['empty type (":1")', 'OjE='],
    ['no colon ("User")', 'VXNlcg=='],
    ['invalid UTF-8 (0xFF)', '/w=='],
  ])('null for %s', (_label, input) => {
    expect(fromGlobalId(input)).toBeNull();
  });

  it.each<unknown>([undefined, null, 1, {}, ['VXNlcjox']])(
    'null, not a throw, for a non-string (%j) from untyped callers',
    (input) => {
      expect(fromGlobalId(input as string)).toBeNull();
    },
  );

  it.each<[string, string | number]>([
    ['User', 1],
    ['ProductVariant', 'abc-123'],
    ['Order', '3f2b6c1e-2c1a-4c55-9d1f-0a8d8e7c1b2a'],
    ['Émoji🙂', 'ünïcode'],
  ])('round trips (%j, %j)', (type, id) => {
    expect(fromGlobalId(toGlobalId(type, id))).toEqual({ type, id: String(id) });
  });
});

describe('parseGlobalIdOf', () => {
  it.each<[string, string, number | null]>([
    // Valid
    ['User', 'VXNlcjox', 1],
    ['User', 'VXNlcjo0Mg==', 42],
    ['Group', 'R3JvdXA6MQ==', 1],
    ['User', 'VXNlcjo5MDA3MTk5MjU0NzQwOTkx', Number.MAX_SAFE_INTEGER],
    // Wrong type
    ['User', 'R3JvdXA6MQ==', null], // a Group id where a User is expected
    ['Group', 'VXNlcjox', null],
    ['user', 'VXNlcjox', null], // type names are case-sensitive
    ['User', 'dXNlcjox', null], // "user:1"
    // Not a positive safe integer
    ['User', 'VXNlcjphYmM=', null], // "User:abc"
    ['User', 'VXNlcjow', null], // "User:0"
    ['User', 'VXNlcjotMQ==', null], // "User:-1"
    ['User', 'VXNlcjowMQ==', null], // "User:01"
    ['User', 'VXNlcjoxLjU=', null], // "User:1.5"
    ['User', 'VXNlcjoxZTM=', null], // "User:1e3"
    ['User', 'VXNlcjogMQ==', null], // "User: 1"
    ['User', 'VXNlcjoxOjI=', null], // "User:1:2"
    ['User', 'VXNlcjo5MDA3MTk5MjU0NzQwOTky', null], // MAX_SAFE_INTEGER + 1
    // Malformed
    ['User', 'VXNlcjo=', null], // "User:" (empty id)
    ['User', 'User:abc', null],
    ['User', '!!!', null],
    ['User', '', null],
  ])('(%j, %j) → %s', (type, globalId, expected) => {
    expect(parseGlobalIdOf(type, globalId)).toBe(expected);
  });

  it.each([1, 7, 1234567, Number.MAX_SAFE_INTEGER])('round trips User %d', (id) => {
    expect(parseGlobalIdOf('User', toGlobalId('User', id))).toBe(id);
  });
});
