/**
 * In-memory storage for the demo provider (oidc-provider's adapter interface: upsert, find,
 * findByUid, findByUserCode, consume, destroy, revokeByGrantId). One store per provider, so
 * nothing is shared between demos in one process; everything is lost when the demo stops,
 * which is what a demo wants.
 */

type Payload = Record<string, unknown>;

interface Entry {
  payload: Payload;
  /** Epoch ms; Infinity when the model has no expiry. */
  expiresAt: number;
}

export class DemoStore {
  readonly #entries = new Map<string, Entry>();
  /** secondary index key → primary key */
  readonly #index = new Map<string, string>();
  /** grantId → keys of the tokens issued under it */
  readonly #grants = new Map<string, Set<string>>();

  get(key: string): Payload | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(key: string, payload: Payload, expiresInSeconds: number | undefined): void {
    const expiresAt = typeof expiresInSeconds === 'number' ? Date.now() + expiresInSeconds * 1000 : Infinity;
    this.#entries.set(key, { payload, expiresAt });
    // Expired entries are dropped when read; sweep now and then so the map does not grow.
    if (this.#entries.size % 500 === 0) this.sweep();
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  indexed(indexKey: string): string | undefined {
    return this.#index.get(indexKey);
  }

  index(indexKey: string, key: string): void {
    this.#index.set(indexKey, key);
  }

  addToGrant(grantId: string, key: string): void {
    const members = this.#grants.get(grantId) ?? new Set<string>();
    members.add(key);
    this.#grants.set(grantId, members);
  }

  revokeGrant(grantId: string): void {
    for (const key of this.#grants.get(grantId) ?? []) this.#entries.delete(key);
    this.#grants.delete(grantId);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key);
  }
}

/** An adapter class bound to `store`, as oidc-provider's `adapter` option expects. */
export function adapterFor(store: DemoStore) {
  return class DemoAdapter {
    constructor(readonly model: string) {}

    private key(id: string): string {
      return `${this.model}:${id}`;
    }

    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      const key = this.key(id);
      store.set(key, payload, expiresIn);
      if (typeof payload['uid'] === 'string') store.index(`${this.model}:uid:${payload['uid']}`, key);
      if (typeof payload['userCode'] === 'string') store.index(`${this.model}:userCode:${payload['userCode']}`, key);
      if (typeof payload['grantId'] === 'string') store.addToGrant(payload['grantId'], key);
    }

    async find(id: string): Promise<Payload | undefined> {
      return store.get(this.key(id));
    }

    async findByUid(uid: string): Promise<Payload | undefined> {
      const key = store.indexed(`${this.model}:uid:${uid}`);
      return key === undefined ? undefined : store.get(key);
    }

    async findByUserCode(userCode: string): Promise<Payload | undefined> {
      const key = store.indexed(`${this.model}:userCode:${userCode}`);
      return key === undefined ? undefined : store.get(key);
    }

    async consume(id: string): Promise<void> {
      const payload = store.get(this.key(id));
      if (payload) payload['consumed'] = Math.floor(Date.now() / 1000);
    }

    async destroy(id: string): Promise<void> {
      store.delete(this.key(id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      store.revokeGrant(grantId);
    }
  };
}
