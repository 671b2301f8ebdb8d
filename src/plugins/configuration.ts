/**
 * Pure rules for plugin configuration: defaults, read-back masking, applying an update.
 */
import { FieldError, FieldErrors, camelCase } from '../errors.ts';
import { SECRET_FIELD_TYPES, type ConfigField, type ConfigValues, type PluginKind } from './contract.ts';

export interface ConfigurationItemView {
  name: string;
  value: string | null;
  type: string;
  helpText: string;
  label: string;
}

export interface ConfigurationUpdate {
  active?: boolean | null;
  configuration?: ReadonlyArray<{ name: string; value?: string | boolean | null }> | null;
}

export function defaultValues(kind: Pick<PluginKind, 'fields'>): ConfigValues {
  return Object.fromEntries(kind.fields.map((f) => [f.name, f.default]));
}

/**
 * Saleor's read-back mask of a secret: its last 4 characters, or the last one when it has
 * 4 or fewer; null when empty.
 */
export function maskSecret(value: string | null | undefined): string | null {
  if (!value) return null;
  return value.length > 4 ? value.slice(-4) : value.slice(-1);
}

function stringValue(value: string | boolean | null | undefined): string | null {
  if (value === null || value === undefined || value === '') return null;
  return typeof value === 'boolean' ? String(value) : value;
}

/** Configuration as `plugin { globalConfiguration { configuration } }` shows it. */
export function readBack(kind: Pick<PluginKind, 'fields'>, values: ConfigValues): ConfigurationItemView[] {
  return kind.fields.map((field) => {
    const raw = values[field.name] ?? field.default;
    const value = SECRET_FIELD_TYPES.has(field.type)
      ? maskSecret(typeof raw === 'string' ? raw : null)
      : stringValue(raw);
    return { name: field.name, value, type: field.type, helpText: field.helpText, label: field.label };
  });
}

function parseBoolean(field: ConfigField, value: string | boolean): boolean {
  if (typeof value === 'boolean') return value;
  const v = value.trim().toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new FieldError(camelCase(field.name), 'INVALID', `${field.label} must be "true" or "false".`);
}

/**
 * Applies `update` to the current state. `value: null` leaves a field unchanged; sending back
 * a secret's masked read-back leaves the secret unchanged (Saleor would overwrite it with the
 * mask). When the result is active, the kind's validation runs. Throws FieldErrors; the caller
 * saves nothing in that case.
 */
export function applyUpdate(
  kind: PluginKind,
  current: { active: boolean; values: ConfigValues },
  update: ConfigurationUpdate,
): { active: boolean; values: ConfigValues; changed: string[] } {
  const fields = new Map(kind.fields.map((f) => [f.name, f]));
  const values: ConfigValues = { ...defaultValues(kind), ...current.values };
  const changed: string[] = [];
  const problems: FieldError[] = [];
  for (const item of update.configuration ?? []) {
    const field = fields.get(item.name);
    if (!field) {
      problems.push(new FieldError('configuration', 'INVALID', `Unknown configuration field: ${item.name}.`));
      continue;
    }
    if (item.value === null || item.value === undefined) continue;
    if (field.type === 'OUTPUT') {
      problems.push(new FieldError(camelCase(field.name), 'INVALID', `${field.label} is read-only.`));
      continue;
    }
    try {
      let next: string | boolean | null;
      if (field.type === 'BOOLEAN') {
        next = parseBoolean(field, item.value);
      } else {
        const text = String(item.value);
        if (SECRET_FIELD_TYPES.has(field.type)) {
          const stored = values[field.name];
          if (typeof stored === 'string' && stored !== '' && text === maskSecret(stored)) continue;
        }
        next = text.trim() === '' ? null : text;
      }
      if (values[field.name] !== next) {
        values[field.name] = next;
        changed.push(field.name);
      }
    } catch (e) {
      if (e instanceof FieldError) problems.push(e);
      else throw e;
    }
  }
  if (problems.length) throw new FieldErrors(problems);
  const active = update.active ?? current.active;
  if (active) {
    const invalid = kind.validate(values);
    if (invalid.length) throw new FieldErrors(invalid);
  }
  if (active !== current.active) changed.push('active');
  return { active, values, changed };
}
