/**
 * Routes hooks to plugins by id, and owns their configuration lifecycle.
 *
 * - Known ids are the stored configurations plus the built-in defaults (Saleor's OIDC plugin
 *   id exists, inactive, before anyone configures it).
 * - A snapshot of all configurations is cached; it is re-read when this process updates one,
 *   when another process announces a change (`invalidate`, through the invalidation channel;
 *   every write here is announced through `onChange`), and otherwise at most every
 *   SNAPSHOT_TTL_MS. Instances survive a reload unless their own configuration changed, so their
 *   caches (JWKS, discovery) stay warm.
 */
import { FieldError, FieldErrors } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { PluginInstance, PluginKind, ConfigValues } from './contract.ts';
import { applyUpdate, defaultValues, readBack, type ConfigurationItemView, type ConfigurationUpdate } from './configuration.ts';
import type { PluginConfigStore, StoredPlugin } from './store.ts';

const SNAPSHOT_TTL_MS = 5_000;

/** The state an activation check was made on is no longer what would be saved. */
class StaleActivationCheck extends Error {}

function sameState(a: { active: boolean; values: ConfigValues }, b: { active: boolean; values: ConfigValues }): boolean {
  if (a.active !== b.active) return false;
  const names = new Set([...Object.keys(a.values), ...Object.keys(b.values)]);
  for (const name of names) if ((a.values[name] ?? null) !== (b.values[name] ?? null)) return false;
  return true;
}

export interface BuiltinPlugin {
  id: string;
  kind: string;
  name: string;
}

export interface PluginView {
  id: string;
  name: string;
  description: string;
  kind: string;
  active: boolean;
  configuration: ConfigurationItemView[];
}

interface Entry {
  stored: Omit<StoredPlugin, 'updatedAt'> & { updatedAt: Date | null };
  kind: PluginKind;
  instance: PluginInstance;
}

export class PluginManager<Services = unknown> {
  private readonly kinds: Map<string, PluginKind<Services>>;
  private entries = new Map<string, Entry>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;
  /** Bumped by invalidate(): a load that started before it may have read the old rows. */
  private generation = 0;

  constructor(
    kinds: readonly PluginKind<Services>[],
    private readonly builtins: readonly BuiltinPlugin[],
    private readonly store: PluginConfigStore,
    private readonly services: Services,
    private readonly log: Logger,
    /** Announces a write of this process (to the other instances). */
    private readonly onChange: () => Promise<void> = async () => {},
  ) {
    this.kinds = new Map(kinds.map((k) => [k.kind, k]));
  }

  private reload(): Promise<void> {
    this.loading ??= this.load().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async load(): Promise<void> {
    const generation = this.generation;
    const rows = await this.store.loadAll(this.kinds as ReadonlyMap<string, PluginKind<never>>);
    const wanted = new Map<string, Entry['stored']>();
    for (const b of this.builtins) {
      const kind = this.kinds.get(b.kind);
      if (kind) wanted.set(b.id, { id: b.id, kind: b.kind, name: b.name, active: false, values: defaultValues(kind), updatedAt: null });
    }
    for (const row of rows) {
      if (!this.kinds.has(row.kind)) {
        this.log.warn('stored plugin of unknown kind ignored', { pluginId: row.id, kind: row.kind });
        continue;
      }
      wanted.set(row.id, { ...row, values: { ...defaultValues(this.kinds.get(row.kind)!), ...row.values } });
    }
    const next = new Map<string, Entry>();
    for (const [id, stored] of wanted) {
      const kind = this.kinds.get(stored.kind)!;
      const previous = this.entries.get(id);
      if (previous && previous.stored.updatedAt?.getTime() === stored.updatedAt?.getTime() && previous.kind === kind) {
        next.set(id, previous);
        continue;
      }
      previous?.instance.close?.();
      const instance = kind.create({ id, name: stored.name, active: stored.active, values: stored.values }, this.services);
      next.set(id, { stored, kind, instance });
    }
    for (const [id, entry] of this.entries) if (!next.has(id)) entry.instance.close?.();
    this.entries = next;
    // Invalidated while reading: what was read may predate the change; read again next time.
    this.loadedAt = generation === this.generation ? Date.now() : 0;
  }

  private async fresh(): Promise<Map<string, Entry>> {
    // A load already running when the snapshot was invalidated does not count: wait for it,
    // then read again (bounded: a storm of invalidations cannot hold a request forever).
    for (let i = 0; i < 3 && Date.now() - this.loadedAt > SNAPSHOT_TTL_MS; i++) await this.reload();
    return this.entries;
  }

  /** Forces the next read to reload from the database (another process changed something). */
  invalidate(): void {
    this.generation++;
    this.loadedAt = 0;
  }

  private view(entry: Entry): PluginView {
    return {
      id: entry.stored.id,
      name: entry.stored.name,
      description: entry.kind.description,
      kind: entry.kind.kind,
      active: entry.stored.active,
      configuration: readBack(entry.kind, entry.stored.values),
    };
  }

  async list(): Promise<PluginView[]> {
    return [...(await this.fresh()).values()].map((e) => this.view(e)).sort((a, b) => a.id.localeCompare(b.id));
  }

  async get(id: string): Promise<PluginView | undefined> {
    const entry = (await this.fresh()).get(id);
    return entry && this.view(entry);
  }

  /** The active instance for `id`, or undefined (unknown or inactive: callers return defaults). */
  async active(id: string): Promise<PluginInstance | undefined> {
    const entry = (await this.fresh()).get(id);
    return entry?.stored.active ? entry.instance : undefined;
  }

  async activeInstances(): Promise<PluginInstance[]> {
    return [...(await this.fresh()).values()].filter((e) => e.stored.active).map((e) => e.instance);
  }

  /**
   * What `update` makes of the stored `row` (null: none yet): the kind, the name, and the
   * result of applying it (throws FieldErrors when the update is refused by the rules alone).
   */
  private plan(
    id: string,
    row: StoredPlugin | null,
    update: ConfigurationUpdate,
    createAs: { kind: string; name?: string } | undefined,
  ): { kind: PluginKind<Services>; name: string; result: ReturnType<typeof applyUpdate> } {
    const builtin = this.builtins.find((b) => b.id === id);
    const kindName = row?.kind ?? builtin?.kind ?? createAs?.kind;
    const kind = kindName === undefined ? undefined : this.kinds.get(kindName);
    if (!kind) {
      if (createAs) throw new FieldErrors([new FieldError('kind', 'INVALID', `Unknown plugin kind ${createAs.kind}.`)]);
      throw new FieldErrors([new FieldError('id', 'NOT_FOUND', `Plugin with id ${id} does not exist.`)]);
    }
    const name = row?.name ?? builtin?.name ?? createAs?.name ?? kind.defaultName;
    const fresh = !row && !builtin ? kind.createdDefaults : undefined;
    const current = { active: row?.active ?? false, values: { ...defaultValues(kind), ...fresh, ...row?.values } };
    return { kind, name, result: applyUpdate(kind as PluginKind, current, update) };
  }

  /** The kind's I/O checks apply: the result is active and something changed. */
  private needsActivationCheck(plan: ReturnType<PluginManager<Services>['plan']>): boolean {
    return Boolean(plan.kind.validateActivation) && plan.result.active && plan.result.changed.length > 0;
  }

  /**
   * pluginUpdate: validates and saves, or throws FieldErrors and saves nothing.
   * Returns the names of the fields that changed (values are never reported).
   *
   * When the result is active and something changed, the kind's `validateActivation` (I/O:
   * e.g. the provider's discovery) runs first, outside the transaction, on the state read just
   * before; the transaction then saves only if it arrives at that same state (otherwise another
   * update came in between: checked again, a few times at most). `activationCheck: false`
   * skips it (PLUGINS_CONFIG_FILE at start).
   */
  async update(
    id: string,
    update: ConfigurationUpdate,
    options: { createAs?: { kind: string; name?: string }; activationCheck?: boolean } = {},
  ): Promise<{ plugin: PluginView; changed: string[] }> {
    const kinds = this.kinds as ReadonlyMap<string, PluginKind<never>>;
    const checkActivation = (options.activationCheck ?? true) && [...this.kinds.values()].some((k) => k.validateActivation);
    let updatedKind: PluginKind<Services> | undefined;
    let saved = false;
    let changed: string[] | undefined;
    for (let attempt = 1; changed === undefined; attempt++) {
      let checked: { active: boolean; values: ConfigValues } | undefined;
      if (checkActivation) {
        const stored = (await this.store.loadAll(kinds)).find((r) => r.id === id) ?? null;
        const plan = this.plan(id, stored, update, options.createAs);
        if (this.needsActivationCheck(plan)) {
          const problems = await plan.kind.validateActivation!(plan.result.values, plan.result.changed, this.services);
          if (problems.length) throw new FieldErrors(problems);
          checked = plan.result;
        }
      }
      try {
        changed = await this.store.transact(id, kinds, async (row, save) => {
          // Start from the database row (not the cache): concurrent updates must not lose changes.
          const plan = this.plan(id, row, update, options.createAs);
          if (checkActivation && this.needsActivationCheck(plan) && !(checked && sameState(checked, plan.result))) {
            throw new StaleActivationCheck();
          }
          updatedKind = plan.kind;
          const { result } = plan;
          if (result.changed.length > 0 || !row) {
            await save(plan.kind, { id, name: plan.name, active: result.active, values: result.values });
            saved = true;
          }
          return result.changed;
        });
      } catch (e) {
        if (!(e instanceof StaleActivationCheck)) throw e;
        if (attempt >= 3) {
          throw new FieldErrors([new FieldError(null, 'INVALID', 'The configuration was changed by another update while it was being checked; try again.')]);
        }
      }
    }
    await this.reloadAfterWrite();
    if (saved) await this.onChange();
    if (changed.length && updatedKind?.afterUpdate) await updatedKind.afterUpdate(id, changed, this.services);
    const entry = this.entries.get(id);
    if (!entry) throw new Error(`plugin ${id} vanished after it was saved`);
    return { plugin: this.view(entry), changed };
  }

  /** A load that starts after our write (not one already running, which may miss it). */
  private async reloadAfterWrite(): Promise<void> {
    await this.loading?.catch(() => {});
    await this.reload();
  }

  /**
   * Adds a new instance of `kind` (inactive, defaults). Throws FieldErrors: bad or taken id.
   */
  async create(id: string, kind: string, name: string): Promise<PluginView> {
    if (!/^[a-z0-9][a-z0-9._-]{2,99}$/.test(id)) {
      throw new FieldErrors([new FieldError('id', 'INVALID', "Use 3 to 100 characters of a-z, 0-9, '.', '-' and '_', starting with a letter or digit.")]);
    }
    if (!name.trim()) throw new FieldErrors([new FieldError('name', 'REQUIRED', 'A name is required.')]);
    await this.reloadAfterWrite();
    if (this.entries.has(id)) throw new FieldErrors([new FieldError('id', 'UNIQUE', `Plugin with id ${id} already exists.`)]);
    return (await this.update(id, {}, { createAs: { kind, name: name.trim() } })).plugin;
  }

  /** Removes an instance that was created (built-in plugins cannot be removed). */
  async remove(id: string): Promise<void> {
    if (this.builtins.some((b) => b.id === id)) {
      throw new FieldErrors([new FieldError('id', 'INVALID', 'Built-in plugins cannot be removed; deactivate them instead.')]);
    }
    const kind = this.entries.get(id)?.kind;
    if (!(await this.store.remove(id))) throw new FieldErrors([new FieldError('id', 'NOT_FOUND', `Plugin with id ${id} does not exist.`)]);
    await this.reloadAfterWrite();
    await this.onChange();
    await kind?.afterRemove?.(id, this.services);
  }

  /** The configuration of `id` in plain text, for the plugin's own use (never for output). */
  async values(id: string): Promise<ConfigValues | undefined> {
    return (await this.fresh()).get(id)?.stored.values;
  }

  close(): void {
    for (const entry of this.entries.values()) entry.instance.close?.();
    this.entries.clear();
  }
}
