/**
 * Our token-signing keys. Retired keys keep verifying (and stay in the JWKS) until
 * `verifyUntil`, i.e. until every token they signed has expired. `kid` is the RFC 7638
 * thumbprint of the public key.
 *
 * Rotation is staged: a new key is published in the JWKS at once but signs only from
 * `signsFrom` (KEY_ROTATION_PUBLISH_SECONDS later, the JWKS cache max-age), when the keys it
 * replaces retire; so no relying party meets a token signed by a key it could not have fetched
 * yet. Which key signs is decided from the clock on every call, so every instance holding the
 * same rows switches at the same instant.
 *
 * Keys are stored in the database (private part sealed with the server secret), so every
 * process sees the same set. A process learns of a change through the invalidation channel
 * (`reloadAfterChange`), else within RELOAD_INTERVAL_MS, or at once when it meets a token signed
 * with a kid it does not know. The first key is created under an advisory lock: instances
 * starting together on an empty database create one key.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Prisma } from '../db/database.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { SigningAlgorithm } from '../config.ts';
import type { Logger } from '../log.ts';
import { currentSigner } from '../crypto/staged-keys.ts';

/** pg_advisory_xact_lock key serialising the creation of the first signing key ('sakeys'). */
const FIRST_KEY_LOCK = 0x73616b657973;

const SEAL_PURPOSE = 'signing-key';
const RELOAD_INTERVAL_MS = 30_000;
/** Unknown kids trigger at most one reload per this interval (no amplification by junk tokens). */
const UNKNOWN_KID_RELOAD_MS = 5_000;

export interface LoadedKey {
  kid: string;
  alg: SigningAlgorithm;
  publicJwk: JWK;
  publicKey: CryptoKey;
  privateKey: CryptoKey;
  createdAt: Date;
  /** Signs from this instant (createdAt unless staged). */
  signsFrom: Date;
  retiredAt: Date | null;
  verifyUntil: Date | null;
}

export interface KeyringOptions {
  algorithm: SigningAlgorithm;
  /** How long a retired key must keep verifying: the longest lifetime of a token we mint. */
  maxTokenLifetimeSeconds: number;
  /** A rotated-in key is published this long before it signs (KEY_ROTATION_PUBLISH_SECONDS). */
  publishSeconds: number;
  /** Serialise the first key's creation with an advisory lock (several processes on PostgreSQL). */
  lockFirstKey?: boolean;
}

type KeyWriter = Pick<Prisma, 'signingKey'>;

async function createKeyRow(prisma: KeyWriter, box: SecretBox, alg: SigningAlgorithm, signsFrom?: Date) {
  const { publicKey, privateKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'RS256' ? { modulusLength: 2048 } : {}),
  });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  const privateJwk = await exportJWK(privateKey);
  const publicForJwks: JWK = { ...publicJwk, kid, alg, use: 'sig' };
  await prisma.signingKey.create({
    data: {
      kid,
      alg,
      publicJwk: publicForJwks as object,
      privateJwkEncrypted: box.seal(JSON.stringify(privateJwk), SEAL_PURPOSE),
      ...(signsFrom ? { signsFrom } : {}),
    },
  });
  return kid;
}

/**
 * Staged rotation (CLI `keys rotate`): creates a key that signs from `publishSeconds` from
 * now; the keys signing until then retire at that instant and keep verifying for
 * `maxTokenLifetimeSeconds` more. Returns the new kid, the retired kids and when it signs.
 */
export async function rotateSigningKey(
  prisma: Prisma,
  box: SecretBox,
  options: KeyringOptions,
): Promise<{ kid: string; retired: string[]; signsFrom: Date }> {
  const signsFrom = new Date(Date.now() + options.publishSeconds * 1000);
  const verifyUntil = new Date(signsFrom.getTime() + options.maxTokenLifetimeSeconds * 1000);
  return prisma.$transaction(async (tx) => {
    const current = await tx.signingKey.findMany({ where: { retiredAt: null }, select: { kid: true } });
    const kid = await createKeyRow(tx, box, options.algorithm, signsFrom);
    await tx.signingKey.updateMany({
      where: { kid: { in: current.map((k) => k.kid) } },
      data: { retiredAt: signsFrom, verifyUntil },
    });
    return { kid, retired: current.map((k) => k.kid), signsFrom };
  });
}

export class Keyring {
  private keys = new Map<string, LoadedKey>();
  private loadedAt = 0;
  private lastUnknownKidReload = 0;
  private reloading: Promise<void> | undefined;

  constructor(
    private readonly prisma: Prisma,
    private readonly box: SecretBox,
    private readonly options: KeyringOptions,
    private readonly log: Logger,
  ) {}

  /**
   * Loads the keys, creating the first one on an empty database: under an advisory lock when
   * `lockFirstKey`, so that instances starting together create exactly one.
   */
  async init(): Promise<void> {
    await this.reload();
    if (this.currentSigner()) return;
    const created = await this.prisma.$transaction(
      async (tx) => {
        if (this.options.lockFirstKey) await tx.$executeRaw`SELECT pg_advisory_xact_lock(${FIRST_KEY_LOCK}::bigint)`;
        const rows = await tx.signingKey.findMany({ where: { retiredAt: null }, select: { privateJwkEncrypted: true } });
        // A key another instance created while we waited for the lock will do, if we can open it.
        if (rows.some((r) => this.canOpen(r.privateJwkEncrypted))) return undefined;
        return createKeyRow(tx, this.box, this.options.algorithm);
      },
      { timeout: 30_000, maxWait: 30_000 },
    );
    if (created) this.log.info('created signing key', { kid: created, alg: this.options.algorithm });
    await this.reload();
    if (!this.currentSigner()) throw new Error('no usable signing key after creating one');
  }

  private canOpen(sealed: string): boolean {
    try {
      this.box.open(sealed, SEAL_PURPOSE);
      return true;
    } catch {
      return false;
    }
  }

  /** Re-reads keys from the database (coalesced: concurrent callers share one query). */
  reload(): Promise<void> {
    this.reloading ??= this.load().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  /**
   * Another process changed the keys: a read that starts now (not one already running, which
   * may have missed the change).
   */
  async reloadAfterChange(): Promise<void> {
    await this.reloading?.catch(() => {});
    await this.reload();
  }

  private async load(): Promise<void> {
    const now = new Date();
    const rows = await this.prisma.signingKey.findMany({
      where: { OR: [{ verifyUntil: null }, { verifyUntil: { gt: now } }] },
      orderBy: { createdAt: 'desc' },
    });
    const next = new Map<string, LoadedKey>();
    for (const row of rows) {
      const known = this.keys.get(row.kid);
      if (known) {
        next.set(row.kid, { ...known, retiredAt: row.retiredAt, verifyUntil: row.verifyUntil });
        continue;
      }
      try {
        const alg = row.alg as SigningAlgorithm;
        const publicJwk = row.publicJwk as JWK;
        const privateJwk = JSON.parse(this.box.open(row.privateJwkEncrypted, SEAL_PURPOSE)) as JWK;
        next.set(row.kid, {
          kid: row.kid,
          alg,
          publicJwk,
          publicKey: (await importJWK(publicJwk, alg)) as CryptoKey,
          privateKey: (await importJWK(privateJwk, alg)) as CryptoKey,
          createdAt: row.createdAt,
          signsFrom: row.signsFrom ?? row.createdAt,
          retiredAt: row.retiredAt,
          verifyUntil: row.verifyUntil,
        });
      } catch (e) {
        // Most likely SECRET_KEY changed: the key cannot be used, but others may.
        this.log.error('cannot load signing key', { kid: row.kid, errorMessage: (e as Error).message });
      }
    }
    this.keys = next;
    this.loadedAt = Date.now();
  }

  private refreshInBackgroundIfDue(): void {
    if (Date.now() - this.loadedAt > RELOAD_INTERVAL_MS && !this.reloading) {
      this.reload().catch((e: unknown) => this.log.warn('signing key reload failed', { errorMessage: String(e) }));
    }
  }

  /** The key signing now (staged rotation, crypto/staged-keys.ts). */
  private currentSigner(now = Date.now()): LoadedKey | undefined {
    return currentSigner(this.keys.values(), now);
  }

  /** The key that signs new tokens. */
  signingKey(): LoadedKey {
    this.refreshInBackgroundIfDue();
    const signer = this.currentSigner();
    if (!signer) throw new Error('keyring not initialised');
    return signer;
  }

  /**
   * The key for `kid` if it may still verify; reloads once (rate-limited) for an unknown kid
   * so a rotation done by another process is seen at once.
   */
  async verificationKey(kid: string): Promise<LoadedKey | undefined> {
    this.refreshInBackgroundIfDue();
    const key = this.keys.get(kid);
    if (key) return key.verifyUntil && key.verifyUntil.getTime() <= Date.now() ? undefined : key;
    if (Date.now() - this.lastUnknownKidReload < UNKNOWN_KID_RELOAD_MS) return undefined;
    this.lastUnknownKidReload = Date.now();
    await this.reload();
    const reloaded = this.keys.get(kid);
    return reloaded && !(reloaded.verifyUntil && reloaded.verifyUntil.getTime() <= Date.now()) ? reloaded : undefined;
  }

  /** Whether `kid` names one of our keys that may still verify (no I/O). */
  canVerify(kid: string): boolean {
    const key = this.keys.get(kid);
    return key !== undefined && !(key.verifyUntil && key.verifyUntil.getTime() <= Date.now());
  }

  /** The public JWK Set served at /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    this.refreshInBackgroundIfDue();
    const now = Date.now();
    return {
      keys: [...this.keys.values()]
        .filter((k) => !k.verifyUntil || k.verifyUntil.getTime() > now)
        .map((k) => k.publicJwk),
    };
  }
}
