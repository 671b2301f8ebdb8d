/**
 * `groups_claim`: where a provider's tokens and userinfo keep the user's groups or roles. Pure.
 *
 * The setting is one or more claim paths, comma-separated; the names found under all of them
 * are united (e.g. Keycloak's realm roles and one client's roles:
 * `realm_access.roles, resource_access.saleor-dashboard.roles`). A path is a claim name, or
 * names of nested objects joined by dots. Names may contain dots themselves (namespaced claims
 * such as `https://example.com/groups`, Keycloak client ids such as `shop.dashboard`): at each
 * level, the longest run of the remaining dot-joined parts that names an existing key is taken
 * (a name that exists as such wins), so nothing needs escaping. Only own keys of JSON objects
 * are followed. A string value counts as one name; in an array, only non-empty strings count.
 */

/** At most this many paths, each at most MAX_PATH_LENGTH characters. */
export const MAX_GROUPS_CLAIM_PATHS = 10;
const MAX_PATH_LENGTH = 200;

/** The configured paths (comma-separated, trimmed, blanks dropped). */
export function groupsClaimPaths(value: string | boolean | null | undefined): string[] {
  if (typeof value !== 'string') return [];
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Why the `groups_claim` setting is not usable (null when it is). */
export function groupsClaimProblem(value: string): string | null {
  if (value.trim() === '') return null;
  if (value.split(',').some((s) => s.trim() === '')) return 'An empty claim path (two commas, or a comma at an end).';
  const paths = groupsClaimPaths(value);
  if (paths.length > MAX_GROUPS_CLAIM_PATHS) return `At most ${MAX_GROUPS_CLAIM_PATHS} claim paths.`;
  const bad = paths.filter((p) => p.length > MAX_PATH_LENGTH || /[\s\x00-\x1f\x7f]/.test(p) || p.split('.').some((part) => part === ''));
  if (bad.length) {
    return `Not a claim path (names joined by single dots, no spaces, at most ${MAX_PATH_LENGTH} characters): ${bad.map((p) => JSON.stringify(p.slice(0, 60))).join(', ')}`;
  }
  return null;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The value at `path` (see the module comment for names with dots); undefined when absent. */
export function claimAt(claims: Record<string, unknown>, path: string): unknown {
  const parts = path.split('.');
  let node: unknown = claims;
  let i = 0;
  while (i < parts.length) {
    if (!isObject(node)) return undefined;
    let next = -1;
    for (let j = parts.length; j > i; j--) {
      if (Object.hasOwn(node, parts.slice(i, j).join('.'))) {
        next = j;
        break;
      }
    }
    if (next < 0) return undefined;
    node = node[parts.slice(i, next).join('.')];
    i = next;
  }
  return node;
}

function namesIn(value: unknown): string[] {
  if (typeof value === 'string') return value === '' ? [] : [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string' && v !== '') : [];
}

/** The names under all `paths`, united (first occurrence order, no duplicates). */
export function groupsFromClaims(claims: Record<string, unknown>, paths: readonly string[]): string[] {
  const names = new Set<string>();
  for (const path of paths) for (const name of namesIn(claimAt(claims, path))) names.add(name);
  return [...names];
}
