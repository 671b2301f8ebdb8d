/**
 * Multi-tenant issuers (Microsoft Entra ID `/common`, `/organizations`, `/consumers`): pure rules.
 *
 * Entra publishes one discovery document for all its tenants, whose `issuer` is a template,
 * `https://login.microsoftonline.com/{tenantid}/v2.0`; every token names its tenant in `tid` and
 * carries the template with that tenant put in as `iss`. OpenID Connect Discovery 1.0 section
 * 4.3 (the discovered issuer equals the configured one) and Core 3.1.3.7 item 2 (`iss` equals
 * the issuer) cannot hold then. They are relaxed only as a named opt-in, a connection's
 * `allowed_tenants`, and only this far:
 *
 * - Configuration: `issuer_url` is the template with `{tenantid}` replaced by `common`,
 *   `organizations` or `consumers` (same scheme, host, port and rest of the path), so that it
 *   can be discovered; the template itself is not an issuer URL. `allowed_tenants` lists tenant
 *   ids (GUIDs); it is required for such an issuer (no tenant is accepted by default) and refused
 *   for any other.
 * - Discovery: a discovered issuer containing `{tenantid}` is accepted only if it is exactly the
 *   template `issuer_url` stands for, and only when `allowed_tenants` is set.
 * - Tokens (id_tokens at login and refresh, access tokens as bearer, logout tokens): `tid` is
 *   present and in `allowed_tenants`, and `iss` is exactly the template with `{tenantid}`
 *   replaced by that `tid`.
 * - Identity: users are linked by the token's own `iss` (tenant included), so one `sub` in two
 *   tenants is never one user; a session keeps its tenant (a refreshed id_token from another
 *   tenant names another identity and ends it).
 */

export const TENANT_PLACEHOLDER = '{tenantid}';

/** The first path segments of Entra's multi-tenant endpoints. */
export const MULTI_TENANT_SEGMENTS: readonly string[] = ['common', 'organizations', 'consumers'];

/** Hosts where an `issuer_url` of a multi-tenant form is known to be multi-tenant without asking. */
const ENTRA_HOSTS = new Set(['login.microsoftonline.com', 'login.microsoftonline.us', 'login.partner.microsoftonline.cn']);

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An Entra tenant id: a GUID, any case. */
export function isTenantId(value: string): boolean {
  return GUID.test(value);
}

/** `origin`, first path segment, rest of the path (no query, fragment or braces outside the segment). */
const ISSUER_FORM = /^(https?:\/\/[^/?#{}\s]+)\/([^/?#\s]+)((?:\/[^?#{}\s]*)?)$/;

/**
 * The issuer template a multi-tenant `issuer_url` stands for (its first path segment, `common`,
 * `organizations` or `consumers`, replaced by `{tenantid}`), or undefined when it is no such form.
 */
export function issuerTemplate(issuerUrl: string): string | undefined {
  const m = ISSUER_FORM.exec(issuerUrl);
  if (!m || !MULTI_TENANT_SEGMENTS.includes(m[2]!)) return undefined;
  return `${m[1]}/${TENANT_PLACEHOLDER}${m[3]}`;
}

/** An Entra `issuer_url` that is multi-tenant whatever its discovery says (checked without the network). */
export function isKnownMultiTenantIssuer(issuerUrl: string): boolean {
  if (issuerTemplate(issuerUrl) === undefined) return false;
  try {
    return ENTRA_HOSTS.has(new URL(issuerUrl).hostname.toLowerCase());
  } catch {
    return false;
  }
}

/** The tenant segment of `iss` when it is `template` with some tenant put in; undefined otherwise. */
export function tenantSegment(template: string, iss: string): string | undefined {
  const at = template.indexOf(TENANT_PLACEHOLDER);
  if (at < 0) return undefined;
  const before = template.slice(0, at);
  const after = template.slice(at + TENANT_PLACEHOLDER.length);
  if (iss.length <= before.length + after.length || !iss.startsWith(before) || !iss.endsWith(after)) return undefined;
  const tenant = iss.slice(before.length, iss.length - after.length);
  return /^[^/?#{}\s]+$/.test(tenant) ? tenant : undefined;
}

/** A multi-tenant connection's rule: the template (undefined when issuer_url has no multi-tenant form) and its tenants. */
export interface Tenancy {
  template: string | undefined;
  /** Lower-case tenant ids. */
  allowed: ReadonlySet<string>;
}

export function tenancyOf(issuerUrl: string, allowedTenants: readonly string[]): Tenancy | undefined {
  if (allowedTenants.length === 0) return undefined;
  return { template: issuerTemplate(issuerUrl), allowed: new Set(allowedTenants.map((t) => t.toLowerCase())) };
}

/** Is `iss` the template with an allowed tenant put in? (What a session's or a response's issuer must be.) */
export function isAllowedTenantIssuer(t: Tenancy, iss: unknown): iss is string {
  if (typeof iss !== 'string' || !t.template) return false;
  const tenant = tenantSegment(t.template, iss);
  return tenant !== undefined && t.allowed.has(tenant.toLowerCase());
}

const quoted = (v: string) => JSON.stringify(v.length > 200 ? `${v.slice(0, 200)}…` : v);

/**
 * Why a verified token's `iss` and `tid` do not fit the connection's tenants (null when they
 * do): `tid` present and allowed, and `iss` the template with exactly that `tid`.
 */
export function tenantTokenProblem(t: Tenancy, claims: Record<string, unknown>): string | null {
  if (!t.template) return 'the issuer URL is not a multi-tenant form';
  const tid = claims['tid'];
  if (typeof tid !== 'string' || tid === '') return 'the token has no tid (tenant id)';
  if (!t.allowed.has(tid.toLowerCase())) return `tenant ${quoted(tid)} is not in allowed_tenants`;
  if (claims['iss'] !== t.template.replace(TENANT_PLACEHOLDER, tid)) return "the token's iss does not name its tenant (tid)";
  return null;
}

function sameUrl(a: string, b: string): boolean {
  try {
    return new URL(a).href === new URL(b).href;
  } catch {
    return false;
  }
}

export interface IssuerProblem {
  field: 'issuerUrl' | 'allowedTenants';
  reason: string;
}

/**
 * Does the issuer a discovery document names fit the configuration? Null when it does:
 * - a template (containing `{tenantid}`): `issuer_url` stands for exactly that template, and
 *   `allowed_tenants` is set;
 * - any other issuer: equal to `issuer_url` (as URLs, OpenID Connect Discovery 1.0 section 4.3),
 *   and `allowed_tenants` is empty.
 */
export function discoveredIssuerProblem(issuerUrl: string, allowedTenants: readonly string[], discovered: string): IssuerProblem | null {
  if (discovered.includes(TENANT_PLACEHOLDER)) {
    if (issuerTemplate(issuerUrl) !== discovered) {
      return {
        field: 'issuerUrl',
        reason: `the discovery document names the multi-tenant issuer ${quoted(discovered)}: the issuer URL must be it with ${TENANT_PLACEHOLDER} replaced by ${MULTI_TENANT_SEGMENTS.join(', ')}, not ${quoted(issuerUrl)}`,
      };
    }
    if (allowedTenants.length === 0) {
      return { field: 'allowedTenants', reason: `the issuer is multi-tenant (${quoted(discovered)}): list the tenant ids to accept in Allowed tenants; no tenant is accepted by default` };
    }
    return null;
  }
  if (!sameUrl(discovered, issuerUrl)) {
    return {
      field: 'issuerUrl',
      reason: `the discovery document names the issuer ${quoted(discovered)}, not ${quoted(issuerUrl)} (they must be equal, OpenID Connect Discovery 1.0 section 4.3)`,
    };
  }
  if (allowedTenants.length > 0) {
    return { field: 'allowedTenants', reason: `the issuer ${quoted(discovered)} is not multi-tenant (no ${TENANT_PLACEHOLDER}): leave Allowed tenants empty` };
  }
  return null;
}
