/**
 * A connection's own key pairs, for `private_key_jwt` client authentication (RFC 7523 §2.2,
 * OpenID Connect Core §9): the private key signs client assertions, the public keys are served
 * at GET /oidc/jwks/<pluginId> for the operator to register at the provider (as `jwks_uri`).
 *
 * - `kid` is the RFC 7638 thumbprint of the public key; algorithms RS256 (default) or ES256.
 * - The private JWK is sealed with the server secret, for a purpose naming the connection, so a
 *   row copied to another connection does not open.
 * - The first key is created when needed (first use, or the JWKS of a private_key_jwt
 *   connection), under an advisory lock on the connection: instances racing create one key.
 * - Rotation is staged like our signing keys (tokens/keyring.ts): the new key is published at
 *   once and signs from `signsFrom` = now + KEY_ROTATION_PUBLISH_SECONDS (the JWKS max-age),
 *   when the keys it replaces retire; so a provider never meets an assertion signed by a key it
 *   could not have fetched. Retired keys stay published for `retainSeconds` (one day), or until
 *   the next rotation, which deletes keys retired before it.
 * - Which key signs is decided from the clock on every call: instances holding the same rows
 *   switch at the same instant. Rows are cached for RELOAD_INTERVAL_MS (JWKS_RELOAD_INTERVAL_MS
 *   for the JWKS); `invalidate()` (on the 'plugins' invalidation topic) drops the cache at once.
 * - Keys live and die with their connection (foreign key, ON DELETE CASCADE).
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Prisma } from '../../db/database.ts';
import type { SecretBox } from '../../crypto/secret-box.ts';
import type { Logger } from '../../log.ts';
import type { ClientSigningKey } from './client-auth.ts';
import { currentSigner } from '../../crypto/staged-keys.ts';

export type ConnectionKeyAlgorithm = 'RS256' | 'ES256';

const SEAL_PURPOSE = 'connection-signing-key';
const RELOAD_INTERVAL_MS = 30_000;
/**
 * The JWKS is re-read more often: a rotation made by another process that cannot notify this
 * one (the CLI on the embedded database) must be published well within the publish window.
 */
const JWKS_RELOAD_INTERVAL_MS = 5_000;
/** Default: a retired key stays published one day. */
const DEFAULT_RETAIN_SECONDS = 86_400;
/**
 * A rotation deletes keys retired longer ago than this (a client assertion lives 60 s: one
 * signed just before the switch may still be on its way).
 */
const ASSERTION_GRACE_MS = 120_000;

/** JWK members of a public key, per `kty` (RFC 7518 §6.2.1, §6.3.1), plus the metadata we publish. */
const PUBLIC_MEMBERS: Record<string, readonly string[]> = {
  RSA: ['kty', 'n', 'e'],
  EC: ['kty', 'crv', 'x', 'y'],
  OKP: ['kty', 'crv', 'x'],
};
const METADATA_MEMBERS = ['kid', 'alg', 'use'] as const;

export interface ConnectionKeyOptions {
  /** Algorithm of new keys (existing keys keep theirs). Default RS256. */
  algorithm?: ConnectionKeyAlgorithm;
  /** A rotated-in key is published this long before it signs (KEY_ROTATION_PUBLISH_SECONDS). */
  publishSeconds: number;
  /** A retired key stays published this long (default one day), unless a rotation drops it. */
  retainSeconds?: number;
  /** The clock (ms since epoch); tests move it. */
  now?: () => number;
}

/** The connection does not exist (no stored configuration). */
export class UnknownConnectionError extends Error {
  readonly code = 'UNKNOWN_CONNECTION';
  constructor(readonly pluginId: string) {
    super(`No connection with id ${pluginId}.`);
    this.name = 'UnknownConnectionError';
  }
}

/** The connection has no key that can sign (none yet, or none that opens with this server secret). */
export class NoConnectionKeyError extends Error {
  readonly code = 'NO_CONNECTION_KEY';
  constructor(readonly pluginId: string) {
    super(`Connection ${pluginId} has no usable signing key.`);
    this.name = 'NoConnectionKeyError';
  }
}

export interface ConnectionKeyInfo {
  kid: string;
  alg: ConnectionKeyAlgorithm;
  publicJwk: JWK;
  createdAt: Date;
  signsFrom: Date;
  retiredAt: Date | null;
}

interface LoadedKey extends ConnectionKeyInfo {
  privateKey: CryptoKey;
}

interface Loaded {
  keys: LoadedKey[];
  loadedAt: number;
}

type Tx = Parameters<Parameters<Prisma['$transaction']>[0]>[0];

/** Only the public members of a JWK (and kid/alg/use): never a private part, whatever was stored. */
export function publicJwkOf(jwk: JWK): JWK {
  const members = PUBLIC_MEMBERS[jwk.kty ?? ''];
  if (!members) throw new Error(`unsupported key type ${String(jwk.kty)}`);
  const out: Record<string, unknown> = {};
  for (const name of [...members, ...METADATA_MEMBERS]) {
    const value = (jwk as Record<string, unknown>)[name];
    if (value !== undefined) out[name] = value;
  }
  return out as JWK;
}

/** Whether a key is in the published JWKS at `now`. */
export function isPublished(key: Pick<ConnectionKeyInfo, 'retiredAt'>, now: number, retainSeconds: number): boolean {
  return key.retiredAt === null || key.retiredAt.getTime() + retainSeconds * 1000 > now;
}

export class ConnectionKeyStore {
  private readonly cache = new Map<string, Loaded>();
  private readonly loading = new Map<string, Promise<Loaded>>();
  /** Bumped per connection by invalidate(): a load that started before may have read old rows. */
  private generation = 0;
  private readonly algorithm: ConnectionKeyAlgorithm;
  private readonly retainSeconds: number;
  private readonly now: () => number;

  constructor(
    private readonly prisma: Prisma,
    private readonly box: SecretBox,
    private readonly options: ConnectionKeyOptions,
    private readonly log: Logger,
  ) {
    this.algorithm = options.algorithm ?? 'RS256';
    this.retainSeconds = options.retainSeconds ?? DEFAULT_RETAIN_SECONDS;
    this.now = options.now ?? Date.now;
  }

  private purpose(pluginId: string): string {
    return `${SEAL_PURPOSE}:${pluginId}`;
  }

  /** Forget cached keys (of one connection, or all): the next call reads the database. */
  invalidate(pluginId?: string): void {
    this.generation++;
    if (pluginId === undefined) this.cache.clear();
    else this.cache.delete(pluginId);
  }

  private async lock(tx: Tx, pluginId: string): Promise<void> {
    await tx.$queryRaw`SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtext(${`connection-keys:${pluginId}`}))) AS l`;
  }

  private async requireConnection(tx: Tx, pluginId: string): Promise<void> {
    const row = await tx.pluginConfiguration.findUnique({ where: { id: pluginId }, select: { id: true } });
    if (!row) throw new UnknownConnectionError(pluginId);
  }

  private canOpen(sealed: string, pluginId: string): boolean {
    try {
      this.box.open(sealed, this.purpose(pluginId));
      return true;
    } catch {
      return false;
    }
  }

  private async createRow(tx: Tx, pluginId: string, createdAt: Date, signsFrom: Date): Promise<string> {
    const alg = this.algorithm;
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
    const privateJwk = await exportJWK(privateKey);
    await tx.connectionKey.create({
      data: {
        pluginId,
        kid,
        alg,
        publicJwk: publicJwkOf({ ...publicJwk, kid, alg, use: 'sig' }) as object,
        privateJwkEncrypted: this.box.seal(JSON.stringify(privateJwk), this.purpose(pluginId)),
        createdAt,
        signsFrom,
      },
    });
    return kid;
  }

  /**
   * Makes sure the connection has a key that signs now (creating its first one, exactly once
   * across instances). Throws UnknownConnectionError for a connection that is not stored.
   */
  async ensure(pluginId: string): Promise<{ kid: string | undefined; created: boolean }> {
    const kid = await this.prisma.$transaction(
      async (tx) => {
        await this.lock(tx, pluginId);
        await this.requireConnection(tx, pluginId);
        const now = this.now();
        const rows = await tx.connectionKey.findMany({ where: { pluginId } });
        // A key another instance created while we waited will do, if it opens here.
        const usable = rows.filter((r) => this.canOpen(r.privateJwkEncrypted, pluginId));
        if (currentSigner(usable, now)) return undefined;
        return this.createRow(tx, pluginId, new Date(now), new Date(now));
      },
      { timeout: 30_000, maxWait: 30_000 },
    );
    this.invalidate(pluginId);
    if (kid) this.log.info('created connection signing key', { pluginId, kid, alg: this.algorithm });
    return { kid, created: kid !== undefined };
  }

  /**
   * Staged rotation (CLI `connection-keys rotate`): a new key, published now, signing from
   * now + publishSeconds, when the keys signing until then retire. Keys retired before this
   * rotation are deleted. A connection without a key gets its first one, signing at once.
   */
  async rotate(pluginId: string): Promise<{ kid: string; retired: string[]; signsFrom: Date; deleted: string[] }> {
    const result = await this.prisma.$transaction(
      async (tx) => {
        await this.lock(tx, pluginId);
        await this.requireConnection(tx, pluginId);
        const now = this.now();
        const rows = await tx.connectionKey.findMany({ where: { pluginId } });
        const stale = rows.filter((r) => r.retiredAt !== null && r.retiredAt.getTime() <= now - ASSERTION_GRACE_MS).map((r) => r.kid);
        if (stale.length) await tx.connectionKey.deleteMany({ where: { pluginId, kid: { in: stale } } });
        const current = rows.filter((r) => r.retiredAt === null && this.canOpen(r.privateJwkEncrypted, pluginId));
        const signsFrom = new Date(current.length ? now + this.options.publishSeconds * 1000 : now);
        const kid = await this.createRow(tx, pluginId, new Date(now), signsFrom);
        const retiring = rows.filter((r) => r.retiredAt === null).map((r) => r.kid);
        if (retiring.length) await tx.connectionKey.updateMany({ where: { pluginId, kid: { in: retiring } }, data: { retiredAt: signsFrom } });
        return { kid, retired: retiring, signsFrom, deleted: stale };
      },
      { timeout: 30_000, maxWait: 30_000 },
    );
    this.invalidate(pluginId);
    this.log.info('rotated connection signing key', { pluginId, kid: result.kid, retired: result.retired, signsFrom: result.signsFrom.toISOString() });
    return result;
  }

  private async load(pluginId: string): Promise<Loaded> {
    const generation = this.generation;
    const rows = await this.prisma.connectionKey.findMany({ where: { pluginId }, orderBy: { signsFrom: 'asc' } });
    const known = new Map((this.cache.get(pluginId)?.keys ?? []).map((k) => [k.kid, k]));
    const keys: LoadedKey[] = [];
    for (const row of rows) {
      const info: ConnectionKeyInfo = {
        kid: row.kid,
        alg: row.alg as ConnectionKeyAlgorithm,
        publicJwk: row.publicJwk as JWK,
        createdAt: row.createdAt,
        signsFrom: row.signsFrom,
        retiredAt: row.retiredAt,
      };
      const before = known.get(row.kid);
      if (before) {
        keys.push({ ...before, ...info, privateKey: before.privateKey });
        continue;
      }
      try {
        const privateJwk = JSON.parse(this.box.open(row.privateJwkEncrypted, this.purpose(pluginId))) as JWK;
        keys.push({ ...info, privateKey: (await importJWK(privateJwk, info.alg)) as CryptoKey });
      } catch (e) {
        // Most likely SECRET_KEY changed: this key cannot sign (and is not published).
        this.log.error('cannot load connection signing key', { pluginId, kid: row.kid, errorMessage: (e as Error).message });
      }
    }
    const loaded = { keys, loadedAt: this.now() };
    if (generation === this.generation) this.cache.set(pluginId, loaded);
    return loaded;
  }

  /** The connection's usable keys (cached; re-read after RELOAD_INTERVAL_MS; loads coalesced). */
  private async keysOf(pluginId: string, maxAgeMs = RELOAD_INTERVAL_MS): Promise<LoadedKey[]> {
    const cached = this.cache.get(pluginId);
    if (cached && this.now() - cached.loadedAt < maxAgeMs) return cached.keys;
    let pending = this.loading.get(pluginId);
    if (!pending) {
      pending = this.load(pluginId).finally(() => this.loading.delete(pluginId));
      this.loading.set(pluginId, pending);
    }
    return (await pending).keys;
  }

  /**
   * The key that signs the connection's client assertions now; the first key is created when
   * there is none. Throws UnknownConnectionError for a connection that is not stored.
   */
  async signingKey(pluginId: string): Promise<ClientSigningKey & { alg: ConnectionKeyAlgorithm }> {
    let signer = currentSigner(await this.keysOf(pluginId), this.now());
    if (!signer) {
      await this.ensure(pluginId);
      signer = currentSigner(await this.keysOf(pluginId), this.now());
    }
    if (!signer) throw new NoConnectionKeyError(pluginId);
    return { key: signer.privateKey, kid: signer.kid, alg: signer.alg };
  }

  /** The connection's keys (public parts and dates), newest first: for the CLI and tests. */
  async list(pluginId: string): Promise<ConnectionKeyInfo[]> {
    return (await this.keysOf(pluginId)).map(({ privateKey: _private, ...info }) => info).reverse();
  }

  /**
   * The public JWK Set served at /oidc/jwks/<pluginId>: current, staged, and recently retired
   * keys; public members only. With `create`, a connection without keys gets its first one
   * (its method is private_key_jwt: the operator registers this URL before the first login).
   */
  async jwks(pluginId: string, options: { create?: boolean } = {}): Promise<{ keys: JWK[] }> {
    let keys = await this.keysOf(pluginId, JWKS_RELOAD_INTERVAL_MS);
    if (options.create && !currentSigner(keys, this.now())) {
      await this.ensure(pluginId);
      keys = await this.keysOf(pluginId);
    }
    const now = this.now();
    return {
      keys: keys
        .filter((k) => isPublished(k, now, this.retainSeconds))
        .sort((a, b) => b.signsFrom.getTime() - a.signsFrom.getTime())
        .map((k) => publicJwkOf(k.publicJwk)),
    };
  }
}
