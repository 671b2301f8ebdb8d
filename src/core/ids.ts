/**
 * Relay global object ids as Saleor produces them (graphene's `Node.to_global_id`, from
 * graphql-relay: `base64("<Type>:<id>")`, standard alphabet with `=` padding). For example
 * the user with primary key 1 is `VXNlcjox` (`"User:1"`).
 *
 * Decoding is strict: only canonical, padded standard base64 of valid UTF-8 is accepted,
 * and nothing here throws on bad input.
 *
 * @module
 */

/** Canonical-looking standard base64 with padding (length a multiple of 4). */
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A positive decimal integer without sign, leading zeros or spaces. */
const POSITIVE_INTEGER_PATTERN = /^[1-9][0-9]*$/;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Encodes a Relay global id: base64 of `"<type>:<id>"` (graphql-relay's `to_global_id`).
 *
 * @param type the GraphQL object type name, e.g. `'User'`; must be non-empty and contain no
 *   `:` (the decoder splits on the first colon).
 * @param id the object's id; numbers are written in decimal (`String(id)`).
 * @throws {TypeError} for an empty type or one containing `:`.
 * @example toGlobalId('User', 1) // 'VXNlcjox'
 */
export function toGlobalId(type: string, id: string | number): string {
  if (type.length === 0 || type.includes(':')) {
    throw new TypeError(`Invalid GraphQL type name for a global id: ${JSON.stringify(type)}`);
  }
  return Buffer.from(`${type}:${String(id)}`, 'utf8').toString('base64');
}

/**
 * Decodes a Relay global id into its type name and id (graphql-relay's `from_global_id`,
 * which splits on the first `:`).
 *
 * @returns `{ type, id }`, or `null` when the input is not canonical padded base64, does not
 *   decode to UTF-8, has no colon, or has an empty type or id. Never throws.
 */
export function fromGlobalId(globalId: string): { type: string; id: string } | null {
  if (typeof globalId !== 'string' || globalId.length === 0) return null;
  if (!BASE64_PATTERN.test(globalId)) return null;
  const bytes = Buffer.from(globalId, 'base64');
  // Reject non-canonical encodings (non-zero padding bits), so one id has one spelling.
  if (bytes.toString('base64') !== globalId) return null;
  let decoded: string;
  try {
    decoded = utf8.decode(bytes);
  } catch {
    return null;
  }
  const colon = decoded.indexOf(':');
  if (colon <= 0 || colon === decoded.length - 1) return null;
  return { type: decoded.slice(0, colon), id: decoded.slice(colon + 1) };
}

/**
 * Decodes a global id that must name an object of `type` with a positive integer primary
 * key, as Saleor's database ids are. Stricter than Saleor (which applies Python's `int()`):
 * the id must be plain decimal digits without sign, spaces or leading zeros, and at most
 * `Number.MAX_SAFE_INTEGER`.
 *
 * @returns the numeric id, or `null` for a malformed id, another type, or a non-positive,
 *   non-integer or unsafe id. Never throws.
 * @example parseGlobalIdOf('User', 'VXNlcjox') // 1
 */
export function parseGlobalIdOf(type: string, globalId: string): number | null {
  const parsed = fromGlobalId(globalId);
  if (parsed === null || parsed.type !== type) return null;
  if (!POSITIVE_INTEGER_PATTERN.test(parsed.id)) return null;
  const id = Number(parsed.id);
  return Number.isSafeInteger(id) ? id : null;
}
