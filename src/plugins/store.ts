/**
 * Plugin configurations in the database. Secret fields are sealed with the server secret;
 * everything above this module sees plain values.
 */
import type { Prisma } from '../db/database.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { PluginConfiguration } from '../generated/prisma/client.ts';
import { SECRET_FIELD_TYPES, type ConfigValues, type PluginKind } from './contract.ts';

const SEAL_PURPOSE = 'plugin-configuration';

export interface StoredPlugin {
  id: string;
  kind: string;
  name: string;
  active: boolean;
  values: ConfigValues;
  updatedAt: Date;
}

type Kinds = ReadonlyMap<string, PluginKind<never>>;
type Tx = Parameters<Parameters<Prisma['$transaction']>[0]>[0];

export type SavePlugin = (kind: PluginKind<never>, plugin: Omit<StoredPlugin, 'updatedAt' | 'kind'>) => Promise<void>;

export class PluginConfigStore {
  constructor(
    private readonly prisma: Prisma,
    private readonly box: SecretBox,
  ) {}

  private secretNames(kind: PluginKind<never> | undefined): Set<string> {
    return new Set((kind?.fields ?? []).filter((f) => SECRET_FIELD_TYPES.has(f.type)).map((f) => f.name));
  }

  private decode(row: PluginConfiguration, kinds: Kinds): StoredPlugin {
    const secrets = this.secretNames(kinds.get(row.kind));
    const stored = (row.configuration ?? {}) as Record<string, unknown>;
    const values: ConfigValues = {};
    for (const [name, value] of Object.entries(stored)) {
      if (typeof value === 'string' && secrets.has(name) && this.box.isSealed(value)) {
        values[name] = this.box.open(value, `${SEAL_PURPOSE}:${row.id}:${name}`);
      } else if (typeof value === 'string' || typeof value === 'boolean' || value === null) {
        values[name] = value;
      }
    }
    return { id: row.id, kind: row.kind, name: row.name, active: row.active, values, updatedAt: row.updatedAt };
  }

  async loadAll(kinds: Kinds): Promise<StoredPlugin[]> {
    const rows = await this.prisma.pluginConfiguration.findMany({ orderBy: { id: 'asc' } });
    return rows.map((row) => this.decode(row, kinds));
  }

  private async save(tx: Tx, kind: PluginKind<never>, plugin: Omit<StoredPlugin, 'updatedAt' | 'kind'>): Promise<void> {
    const secrets = this.secretNames(kind);
    const stored: Record<string, string | boolean | null> = {};
    for (const [name, value] of Object.entries(plugin.values)) {
      stored[name] =
        typeof value === 'string' && secrets.has(name) ? this.box.seal(value, `${SEAL_PURPOSE}:${plugin.id}:${name}`) : value;
    }
    await tx.pluginConfiguration.upsert({
      where: { id: plugin.id },
      create: { id: plugin.id, kind: kind.kind, name: plugin.name, active: plugin.active, configuration: stored },
      update: { name: plugin.name, active: plugin.active, configuration: stored },
    });
  }

  /**
   * Read-modify-write of one plugin's configuration, serialised across processes by a
   * transaction-scoped advisory lock on the plugin id (a row lock would not cover a row that
   * does not exist yet). `fn` sees the stored state (null when none) and may save.
   */
  transact<T>(id: string, kinds: Kinds, fn: (current: StoredPlugin | null, save: SavePlugin) => Promise<T>): Promise<T> {
    return this.prisma.$transaction(async (tx) => {
      await tx.$queryRaw`SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtext(${`plugin-configuration:${id}`}))) AS l`;
      const row = await tx.pluginConfiguration.findUnique({ where: { id } });
      return fn(row ? this.decode(row, kinds) : null, (kind, plugin) => this.save(tx, kind, plugin));
    });
  }

  /** Removes a stored configuration; true when there was one. */
  async remove(id: string): Promise<boolean> {
    const { count } = await this.prisma.pluginConfiguration.deleteMany({ where: { id } });
    return count > 0;
  }
}
