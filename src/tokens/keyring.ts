/**
 * Our token-signing keys. The newest key that is not retired signs; retired keys keep
 * verifying (and stay in the JWKS) until `verifyUntil`, i.e. until every token they signed
 * has expired. `kid` is the RFC 7638 thumbprint of the public key.
 *
 * Keys are stored in the database (private part sealed with the server secret), so every
 * process sees the same set; a running server picks up a rotation made by the CLI within
 * RELOAD_INTERVAL_MS, or at once when it meets a token signed with a kid it does not know.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Prisma } from '../db/database.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { SigningAlgorithm } from '../config.ts';
import type { Logger } from '../log.ts';

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
  retiredAt: Date | null;
  verifyUntil: Date | null;
}

export interface KeyringOptions {
  algorithm: SigningAlgorithm;
  /** How long a retired key must keep verifying: the longest lifetime of a token we mint. */
  maxTokenLifetimeSeconds: number;
}

async function createKeyRow(prisma: Prisma, box: SecretBox, alg: SigningAlgorithm) {
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
    },
  });
  return kid;
}

/**
 * Creates a new signing key and retires the previous ones: they keep verifying for
 * `maxTokenLifetimeSeconds`. Returns the new kid. Used by the CLI (`keys rotate`).
 */
export async function rotateSigningKey(
  prisma: Prisma,
  box: SecretBox,
  options: KeyringOptions,
): Promise<{ kid: string; retired: string[] }> {
  const now = new Date();
  const verifyUntil = new Date(now.getTime() + options.maxTokenLifetimeSeconds * 1000);
  const current = await prisma.signingKey.findMany({ where: { retiredAt: null }, select: { kid: true } });
  const kid = await createKeyRow(prisma, box, options.algorithm);
  await prisma.signingKey.updateMany({
    where: { kid: { in: current.map((k) => k.kid) } },
    data: { retiredAt: now, verifyUntil },
  });
  return { kid, retired: current.map((k) => k.kid) };
}

export class Keyring {
  private keys = new Map<string, LoadedKey>();
  private signer: LoadedKey | undefined;
  private loadedAt = 0;
  private lastUnknownKidReload = 0;
  private reloading: Promise<void> | undefined;

  constructor(
    private readonly prisma: Prisma,
    private readonly box: SecretBox,
    private readonly options: KeyringOptions,
    private readonly log: Logger,
  ) {}

  /** Loads the keys, creating the first one on an empty database. */
  async init(): Promise<void> {
    await this.reload();
    if (!this.signer) {
      const kid = await createKeyRow(this.prisma, this.box, this.options.algorithm);
      this.log.info('created signing key', { kid, alg: this.options.algorithm });
      await this.reload();
    }
    if (!this.signer) throw new Error('no usable signing key after creating one');
  }

  /** Re-reads keys from the database (coalesced: concurrent callers share one query). */
  reload(): Promise<void> {
    this.reloading ??= this.load().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
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
          retiredAt: row.retiredAt,
          verifyUntil: row.verifyUntil,
        });
      } catch (e) {
        // Most likely SECRET_KEY changed: the key cannot be used, but others may.
        this.log.error('cannot load signing key', { kid: row.kid, errorMessage: (e as Error).message });
      }
    }
    this.keys = next;
    // rows are newest first: the first unretired key signs.
    this.signer = [...next.values()].find((k) => k.retiredAt === null);
    this.loadedAt = Date.now();
  }

  private refreshInBackgroundIfDue(): void {
    if (Date.now() - this.loadedAt > RELOAD_INTERVAL_MS && !this.reloading) {
      this.reload().catch((e: unknown) => this.log.warn('signing key reload failed', { errorMessage: String(e) }));
    }
  }

  /** The key that signs new tokens. */
  signingKey(): LoadedKey {
    this.refreshInBackgroundIfDue();
    if (!this.signer) throw new Error('keyring not initialised');
    return this.signer;
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
