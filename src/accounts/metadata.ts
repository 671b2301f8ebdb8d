/**
 * Metadata of users and of the shop: public (`metadata`) and private (`privateMetadata`) string
 * maps, kept by key. The rules (schema.graphql states them too):
 *
 * - A key is 1 to 256 characters; a key that is empty or only whitespace is REQUIRED (Saleor's
 *   "Metadata key cannot be empty."); a value is at most 10,000 characters. Characters are Unicode
 *   code points (Saleor counts with Python's `len`).
 * - Keys and values must be storable: no U+0000 and no lone surrogate (PostgreSQL text cannot hold
 *   them); such input is INVALID rather than a database error.
 * - A key given twice in one input: the last value wins (as in Saleor, which builds a dict).
 * - After a change an object holds at most 100 keys, and its compact JSON (`JSON.stringify`,
 *   UTF-8) is at most 65,536 bytes. Otherwise the change is INVALID and nothing is written.
 * - Deleting a key that is not there is no error.
 *
 * Every write is one SQL statement: the merge (`jsonb || patch`), the deletion (`jsonb - keys`)
 * and the limit checks all run on the row version the statement locks, so concurrent writes of
 * different keys all survive and two writes that each fit cannot together exceed a limit. When a
 * write was authorised because the target is a customer (MANAGE_USERS) or staff (MANAGE_STAFF),
 * the statement also requires `is_staff` to be unchanged; a user promoted or demoted in between
 * reports `staff-changed` and the caller decides again. Saleor reads, merges in Python and saves
 * the whole map, so its concurrent updates lose keys.
 *
 * The shop's row (shop_settings, id 1) is created by its first write.
 */
import { Prisma as Sql } from '../generated/prisma/client.ts';
import type { Prisma } from '../db/database.ts';
import { FieldError } from '../errors.ts';
import type { PermissionCode } from './permissions.ts';

export const METADATA_LIMITS = {
  /** Characters (code points) of a key. */
  maxKeyChars: 256,
  /** Characters (code points) of a value. */
  maxValueChars: 10_000,
  /** Keys of one object (public and private counted separately). */
  maxKeys: 100,
  /** UTF-8 bytes of one object's compact JSON. */
  maxBytes: 65_536,
} as const;

export type MetadataKind = 'public' | 'private';
export type MetadataMap = Record<string, string>;

export interface MetadataEntry {
  key: string;
  value: string;
}

/** Who may write a user's metadata (beyond the user themself, for public metadata): Saleor's rule. */
export function userMetadataPermission(targetIsStaff: boolean): PermissionCode {
  return targetIsStaff ? 'MANAGE_STAFF' : 'MANAGE_USERS';
}

/** Who may write the shop's metadata, or read its private metadata. */
export const SHOP_METADATA_PERMISSION: PermissionCode = 'MANAGE_SETTINGS';

/** accountUpdate's names: at most this many characters. */
export const MAX_NAME_CHARS = 256;

/** A given or family name that cannot be stored (too long, or unstorable characters), or null. */
export function nameError(field: string, name: string): FieldError | null {
  if (codePoints(name) > MAX_NAME_CHARS) return new FieldError(field, 'INVALID', `Names can have at most ${MAX_NAME_CHARS} characters.`);
  if (!isStorable(name)) return new FieldError(field, 'INVALID', 'Names cannot contain NUL characters or unpaired surrogates.');
  return null;
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** U+0000, or a surrogate code unit without its pair (matched per UTF-16 code unit: no `u` flag). */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** PostgreSQL text (and so jsonb) holds neither U+0000 nor lone surrogates. */
export function isStorable(s: string): boolean {
  return !UNSTORABLE.test(s);
}

/** UTF-8 bytes of the object's compact JSON (what the 64 KB limit measures). */
export function serializedBytes(m: MetadataMap): number {
  return Buffer.byteLength(JSON.stringify(m), 'utf8');
}

/** A stored JSON value as a metadata map (own keys only; non-string values as strings). */
export function metadataOf(value: unknown): MetadataMap {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return {};
  // fromEntries defines own properties: a key "__proto__" stays a key.
  return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, typeof v === 'string' ? v : String(v)]));
}

/** Restricts a map to `keys` (all of it when null). */
export function pickMetadata(m: MetadataMap, keys: readonly string[] | null | undefined): MetadataMap {
  if (keys == null) return m;
  return Object.fromEntries(keys.filter((k) => Object.hasOwn(m, k)).map((k) => [k, m[k]!]));
}

/** One key's value, or null (own keys only: "constructor" is not a key unless stored). */
export function metafieldOf(m: MetadataMap, key: string): string | null {
  return Object.hasOwn(m, key) ? m[key]! : null;
}

function limitsError(field: string, m: MetadataMap): FieldError | null {
  if (Object.keys(m).length > METADATA_LIMITS.maxKeys) {
    return new FieldError(field, 'INVALID', `An object can hold at most ${METADATA_LIMITS.maxKeys} metadata keys.`);
  }
  if (serializedBytes(m) > METADATA_LIMITS.maxBytes) {
    return new FieldError(field, 'INVALID', `An object's metadata can take at most ${METADATA_LIMITS.maxBytes} bytes (as JSON).`);
  }
  return null;
}

/**
 * Checks a list of entries to set and returns them as one map (the last value of a repeated key
 * wins). Throws a FieldError on `field`: REQUIRED for an empty key, INVALID for anything else
 * (length, unstorable characters, or more than an object may hold on its own).
 */
export function parseMetadataInput(entries: readonly MetadataEntry[], field: string): MetadataMap {
  const out = new Map<string, string>();
  for (const { key, value } of entries) {
    if (key.trim() === '') throw new FieldError(field, 'REQUIRED', 'Metadata key cannot be empty.');
    if (codePoints(key) > METADATA_LIMITS.maxKeyChars) {
      throw new FieldError(field, 'INVALID', `Metadata keys can have at most ${METADATA_LIMITS.maxKeyChars} characters.`);
    }
    if (codePoints(value) > METADATA_LIMITS.maxValueChars) {
      throw new FieldError(field, 'INVALID', `Metadata values can have at most ${METADATA_LIMITS.maxValueChars} characters.`);
    }
    if (!isStorable(key) || !isStorable(value)) {
      throw new FieldError(field, 'INVALID', 'Metadata keys and values cannot contain NUL characters or unpaired surrogates.');
    }
    out.delete(key); // last wins, and takes the last place
    out.set(key, value);
  }
  const map = Object.fromEntries(out);
  const tooMuch = limitsError(field, map);
  if (tooMuch) throw tooMuch;
  return map;
}

/**
 * Checks keys to delete: an empty key is REQUIRED on `field`. Keys that could never have been
 * stored (unstorable characters) are dropped: they are not there.
 */
export function parseDeleteKeys(keys: readonly string[], field: string): string[] {
  if (keys.some((k) => k.trim() === '')) throw new FieldError(field, 'REQUIRED', 'Metadata key cannot be empty.');
  return [...new Set(keys.filter(isStorable))];
}

// --- SQL ------------------------------------------------------------------------------------

/** The two columns, as fixed SQL identifiers (never built from input). */
const COLUMN: Record<MetadataKind, Sql.Sql> = { public: Sql.raw('metadata'), private: Sql.raw('private_metadata') };

/** `count` and compact-JSON byte size of a jsonb object expression, as `serializedBytes` measures it. */
function withinLimits(expr: Sql.Sql): Sql.Sql {
  // Per entry: the key as a JSON string, ':', the value as JSON, ','; minus the last ','; plus '{}'.
  // PostgreSQL escapes JSON strings as JSON.stringify does (", \, \b \f \n \r \t, other controls
  // as \u00xx), and neither escapes anything else, so the byte counts agree.
  return Sql.sql`(SELECT count(*) <= ${METADATA_LIMITS.maxKeys}
      AND 2 + COALESCE(sum(octet_length(to_jsonb(e.key)::text) + octet_length(e.value::text) + 2), 0) - LEAST(count(*), 1) <= ${METADATA_LIMITS.maxBytes}
    FROM jsonb_each(${expr}) AS e)`;
}

/** The jsonb parameter of a map. */
const jsonb = (m: MetadataMap) => Sql.sql`${JSON.stringify(m)}::jsonb`;

/** How a write to a user's row ended. */
export type UserWriteOutcome = 'written' | 'not-found' | 'staff-changed';

export interface UserWriteOptions {
  /** The target's `is_staff` the caller's authorisation relied on; the write requires it unchanged. */
  isStaff?: boolean | undefined;
  /** Given names to set (null/undefined: unchanged). Checked by the caller. */
  firstName?: string | null | undefined;
  lastName?: string | null | undefined;
  /** The field limit errors are reported on. */
  field: string;
}

/** Why a user write matched no row: re-read (the answer is advisory: the row may change again). */
async function explainUserMiss(
  prisma: Prisma,
  userId: number,
  kind: MetadataKind,
  isStaff: boolean | undefined,
  patch: MetadataMap | null,
  field: string,
): Promise<UserWriteOutcome | null> {
  const row = await prisma.user.findUnique({ where: { id: userId }, select: { isStaff: true, metadata: true, privateMetadata: true } });
  if (!row) return 'not-found';
  if (isStaff !== undefined && row.isStaff !== isStaff) return 'staff-changed';
  if (patch) {
    // (Spreading defines own properties: a key "__proto__" stays a key.)
    const tooMuch = limitsError(field, { ...metadataOf(kind === 'public' ? row.metadata : row.privateMetadata), ...patch });
    if (tooMuch) throw tooMuch;
  }
  return null;
}

/**
 * Merges `patch` into a user's metadata of `kind` (and sets names), in one statement.
 * Throws a FieldError (INVALID on `options.field`) when the result would exceed a limit; then
 * nothing is written.
 */
export async function mergeUserMetadata(prisma: Prisma, userId: number, kind: MetadataKind, patch: MetadataMap, options: UserWriteOptions): Promise<UserWriteOutcome> {
  const column = COLUMN[kind];
  const merged = Sql.sql`${column} || ${jsonb(patch)}`;
  const hasPatch = Object.keys(patch).length > 0;
  for (let attempt = 0; attempt < 3; attempt++) {
    const rows = await prisma.$queryRaw<Array<{ id: number }>>`
      UPDATE users SET
        ${column} = ${merged},
        first_name = COALESCE(${options.firstName ?? null}::text, first_name),
        last_name = COALESCE(${options.lastName ?? null}::text, last_name),
        updated_at = now()
      WHERE id = ${userId}
        ${options.isStaff === undefined ? Sql.empty : Sql.sql`AND is_staff = ${options.isStaff}`}
        ${hasPatch ? Sql.sql`AND ${withinLimits(merged)}` : Sql.empty}
      RETURNING id`;
    if (rows.length > 0) return 'written';
    const why = await explainUserMiss(prisma, userId, kind, options.isStaff, hasPatch ? patch : null, options.field);
    if (why) return why;
    // The row fits now (keys were deleted in between): try again.
  }
  throw new FieldError(options.field, 'INVALID', 'The metadata changed while being updated; try again.');
}

/** Removes keys from a user's metadata of `kind`, in one statement. */
export async function deleteUserMetadata(prisma: Prisma, userId: number, kind: MetadataKind, keys: readonly string[], options: { isStaff?: boolean | undefined }): Promise<UserWriteOutcome> {
  const column = COLUMN[kind];
  const rows = await prisma.$queryRaw<Array<{ id: number }>>`
    UPDATE users SET ${column} = ${column} - ${[...keys]}::text[], updated_at = now()
    WHERE id = ${userId} ${options.isStaff === undefined ? Sql.empty : Sql.sql`AND is_staff = ${options.isStaff}`}
    RETURNING id`;
  if (rows.length > 0) return 'written';
  return (await explainUserMiss(prisma, userId, kind, options.isStaff, null, '')) ?? 'written';
}

export interface ShopMetadata {
  metadata: MetadataMap;
  privateMetadata: MetadataMap;
}

const SHOP_ROW_ID = 1;

function shopMetadataOf(row: { metadata: unknown; private_metadata?: unknown; privateMetadata?: unknown } | null | undefined): ShopMetadata {
  const parse = (v: unknown) => metadataOf(typeof v === 'string' ? JSON.parse(v) : v);
  return { metadata: parse(row?.metadata), privateMetadata: parse(row?.private_metadata ?? row?.privateMetadata) };
}

/** The shop's metadata (empty when its row does not exist yet). */
export async function readShopMetadata(prisma: Prisma): Promise<ShopMetadata> {
  return shopMetadataOf(await prisma.shopSettings.findUnique({ where: { id: SHOP_ROW_ID }, select: { metadata: true, privateMetadata: true } }));
}

/**
 * Merges `patch` into the shop's metadata of `kind`, creating the row on first write, in one
 * statement. Throws a FieldError (INVALID on `field`) when the result would exceed a limit.
 */
export async function mergeShopMetadata(prisma: Prisma, kind: MetadataKind, patch: MetadataMap, field: string): Promise<ShopMetadata> {
  const column = COLUMN[kind];
  const merged = Sql.sql`shop_settings.${column} || EXCLUDED.${column}`;
  for (let attempt = 0; attempt < 3; attempt++) {
    // A new row holds the patch alone, which parseMetadataInput checked against the limits.
    const rows = await prisma.$queryRaw<Array<{ metadata: unknown; private_metadata: unknown }>>`
      INSERT INTO shop_settings (id, ${column}, updated_at) VALUES (${SHOP_ROW_ID}, ${jsonb(patch)}, now())
      ON CONFLICT (id) DO UPDATE SET ${column} = ${merged}, updated_at = now()
        WHERE ${withinLimits(merged)}
      RETURNING metadata, private_metadata`;
    if (rows.length > 0) return shopMetadataOf(rows[0]);
    const current = await readShopMetadata(prisma);
    const tooMuch = limitsError(field, { ...(kind === 'public' ? current.metadata : current.privateMetadata), ...patch });
    if (tooMuch) throw tooMuch;
  }
  throw new FieldError(field, 'INVALID', 'The metadata changed while being updated; try again.');
}

/** Removes keys from the shop's metadata of `kind`, in one statement (no row: nothing to remove). */
export async function deleteShopMetadata(prisma: Prisma, kind: MetadataKind, keys: readonly string[]): Promise<ShopMetadata> {
  const column = COLUMN[kind];
  const rows = await prisma.$queryRaw<Array<{ metadata: unknown; private_metadata: unknown }>>`
    UPDATE shop_settings SET ${column} = ${column} - ${[...keys]}::text[], updated_at = now()
    WHERE id = ${SHOP_ROW_ID}
    RETURNING metadata, private_metadata`;
  return shopMetadataOf(rows[0]);
}
