/**
 * Declarative plugin configuration (PLUGINS_CONFIG_FILE), applied at start through the same
 * validation as pluginUpdate. Format:
 *
 *   { "plugins": [ { "id": "mirumee.authentication.openidconnect", "active": true,
 *                    "configuration": { "client_id": "…", "client_secret": "…" } } ] }
 *
 * `configuration` may also be Saleor's list form [{ "name": …, "value": … }]. An entry for an
 * id that does not exist yet needs "kind" (e.g. "openid-connect") and may give "name".
 * Field names are taken as they are: every field of the plugin kind can be set here.
 *
 * The network checks of an activation (the kind's `validateActivation`: OpenID discovery of
 * the issuer) are skipped here, unlike pluginUpdate: a provider that is down while we start
 * must not keep the server from starting (nor block every instance of a fleet). A wrong issuer
 * shows at run time instead: the connection answers "provider unavailable" (or, with the
 * authorization, token and JWKS URLs all set, works without discovery), and the provider
 * logs the discovery failure as a warning.
 */
import { readFileSync } from 'node:fs';
import { FieldErrors } from '../errors.ts';
import type { PluginManager } from './manager.ts';

export class PluginsConfigFileError extends Error {
  constructor(file: string, detail: string) {
    super(`PLUGINS_CONFIG_FILE ${file}: ${detail}`);
    this.name = 'PluginsConfigFileError';
  }
}

interface FileEntry {
  id: string;
  kind?: string;
  name?: string;
  active?: boolean;
  configuration: Array<{ name: string; value: string | boolean | null }>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parsePluginsConfig(file: string, text: string): FileEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    // The parser's message quotes the file's text, which may hold secrets: give only where.
    const at = /position (\d+)/.exec((e as Error).message);
    let where = '';
    if (at) {
      const before = text.slice(0, Number(at[1]));
      const line = before.split('\n').length;
      where = ` at line ${line}, column ${before.length - before.lastIndexOf('\n')}`;
    }
    throw new PluginsConfigFileError(file, `not valid JSON${where}`);
  }
  const list = isRecord(doc) ? doc['plugins'] : doc;
  if (!Array.isArray(list)) throw new PluginsConfigFileError(file, 'expected {"plugins": [...]} or a list');
  return list.map((raw, i) => {
    const where = `plugins[${i}]`;
    if (!isRecord(raw) || typeof raw['id'] !== 'string' || raw['id'] === '') {
      throw new PluginsConfigFileError(file, `${where}: "id" (a string) is required`);
    }
    const { id, kind, name, active } = raw;
    if (kind !== undefined && typeof kind !== 'string') throw new PluginsConfigFileError(file, `${where}.kind must be a string`);
    if (name !== undefined && typeof name !== 'string') throw new PluginsConfigFileError(file, `${where}.name must be a string`);
    if (active !== undefined && typeof active !== 'boolean') throw new PluginsConfigFileError(file, `${where}.active must be true or false`);
    const conf = raw['configuration'] ?? {};
    let configuration: FileEntry['configuration'];
    const okValue = (v: unknown): v is string | boolean | null => v === null || typeof v === 'string' || typeof v === 'boolean';
    if (Array.isArray(conf)) {
      configuration = conf.map((item, j) => {
        if (!isRecord(item) || typeof item['name'] !== 'string' || !okValue(item['value'] ?? null)) {
          throw new PluginsConfigFileError(file, `${where}.configuration[${j}] must be {"name": string, "value": string|boolean|null}`);
        }
        return { name: item['name'], value: (item['value'] ?? null) as string | boolean | null };
      });
    } else if (isRecord(conf)) {
      configuration = Object.entries(conf).map(([n, v]) => {
        if (!okValue(v)) throw new PluginsConfigFileError(file, `${where}.configuration.${n} must be a string, boolean or null`);
        return { name: n, value: v };
      });
    } else {
      throw new PluginsConfigFileError(file, `${where}.configuration must be an object or a list`);
    }
    return { id, kind, name, active, configuration } as FileEntry;
  });
}

/** Applies the file; throws PluginsConfigFileError naming the plugin and fields on failure. */
export async function applyPluginsConfigFile(manager: PluginManager<unknown>, file: string): Promise<string[]> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new PluginsConfigFileError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const applied: string[] = [];
  for (const entry of parsePluginsConfig(file, text)) {
    try {
      await manager.update(
        entry.id,
        { active: entry.active ?? null, configuration: entry.configuration },
        {
          activationCheck: false,
          ...(entry.kind ? { createAs: { kind: entry.kind, ...(entry.name ? { name: entry.name } : {}) } } : {}),
        },
      );
    } catch (e) {
      if (e instanceof FieldErrors) {
        throw new PluginsConfigFileError(
          file,
          `plugin ${entry.id}: ${e.errors.map((x) => `${x.field ?? '-'}: ${x.message}`).join('; ')}`,
        );
      }
      throw e;
    }
    applied.push(entry.id);
  }
  return applied;
}
