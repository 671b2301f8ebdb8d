/**
 * Plugin configurations in the database. Secret fields are sealed with the server secret;
 * everything above this module sees plain values.
 */
import type { Prisma } from '../db/database.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
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

export class PluginConfigStore {
  constructor(
    private readonly prisma: Prisma,
    private readonly box: SecretBox,
  ) {}

  private secretNames(kind: PluginKind | undefined): Set<string> {
    return new Set((kind?.fields ?? []).filter((f) => SECRET_FIELD_TYPES.has(f.type)).map((f) => f.name));
  }

  async loadAll(kinds: ReadonlyMap<string, PluginKind>): Promise<StoredPlugin[]> {
    const rows = await this.prisma.pluginConfiguration.findMany({ orderBy: { id: 'asc' } });
    return rows.map((row) => {
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
    });
  }

  /** Version stamp of all configurations: changes whenever any row is written or removed. */
  async version(): Promise<string> {
    const agg = await this.prisma.pluginConfiguration.aggregate({ _max: { updatedAt: true }, _count: { _all: true } });
    return `${agg._count._all}:${agg._max.updatedAt?.getTime() ?? 0}`;
  }

  async save(kind: PluginKind, plugin: Omit<StoredPlugin, 'updatedAt' | 'kind'>): Promise<void> {
    const secrets = this.secretNames(kind);
    const stored: Record<string, string | boolean | null> = {};
    for (const [name, value] of Object.entries(plugin.values)) {
      stored[name] =
        typeof value === 'string' && secrets.has(name) ? this.box.seal(value, `${SEAL_PURPOSE}:${plugin.id}:${name}`) : value;
    }
    await this.prisma.pluginConfiguration.upsert({
      where: { id: plugin.id },
      create: { id: plugin.id, kind: kind.kind, name: plugin.name, active: plugin.active, configuration: stored },
      update: { name: plugin.name, active: plugin.active, configuration: stored },
    });
  }
}
