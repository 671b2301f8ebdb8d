/**
 * CORS as Saleor does it: ALLOWED_GRAPHQL_ORIGINS is a comma list of origin patterns with `*`
 * wildcards. A matching Origin is echoed with credentials allowed (browser storefronts send the
 * refresh cookie cross-origin); a non-matching one gets no CORS headers at all.
 * Beyond Saleor: `null` (sandboxed frames, file: pages, some redirects) is never allowed, not
 * even by `*`, and only a well-formed http(s) origin (scheme://host[:port], nothing else) is
 * matched, so `http://localhost:*` can only ever match a port. Unset, the list is empty in
 * production and local pages in development (config.ts).
 */
export const ALLOWED_METHODS = 'POST, GET, OPTIONS';
export const ALLOWED_HEADERS = 'Authorization, Authorization-Bearer, Content-Type, X-Request-Id, Apollo-Require-Preflight';

/** Origins longer than this are never allowed (and never matched against patterns). */
const MAX_ORIGIN_LENGTH = 512;

/**
 * Matches `origin` against a pattern whose `*` stands for any run of characters, in linear
 * time (a regular expression with several `.*` would backtrack on a crafted Origin header).
 * Case-insensitive, as origins' scheme and host are.
 */
function matchesPattern(pattern: string, origin: string): boolean {
  const parts = pattern.toLowerCase().split('*');
  const value = origin.toLowerCase();
  if (parts.length === 1) return value === parts[0];
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (!value.startsWith(first) || !value.endsWith(last) || value.length < first.length + last.length) return false;
  let at = first.length;
  const end = value.length - last.length;
  for (const middle of parts.slice(1, -1)) {
    const found = value.indexOf(middle, at);
    if (found < 0 || found + middle.length > end) return false;
    at = found + middle.length;
  }
  return true;
}

/** scheme://host[:port] exactly as a browser serialises it (RFC 6454 section 6.2). */
function isSerializedOrigin(origin: string): boolean {
  if (!/^https?:\/\//i.test(origin)) return false;
  try {
    return new URL(origin).origin === origin.toLowerCase();
  } catch {
    return false;
  }
}

export function originMatcher(patterns: readonly string[]): (origin: string) => boolean {
  if (patterns.length === 0) return () => false;
  return (origin) => origin.length <= MAX_ORIGIN_LENGTH && isSerializedOrigin(origin) && patterns.some((p) => matchesPattern(p, origin));
}

/**
 * Origins listed exactly (no wildcard) in the allowed patterns: pages the operator named one by
 * one. A browser sets `Origin` itself and a cross-site page cannot forge it, so a request from
 * such an origin was sent by one of those pages (what the session service takes as CSRF proof
 * where a client cannot send the CSRF token, e.g. the Saleor Dashboard's logout).
 */
export function exactOriginMatcher(patterns: readonly string[]): (origin: string | undefined) => boolean {
  const exact = new Set(patterns.filter((p) => !p.includes('*')).map((p) => p.toLowerCase()));
  return (origin) => origin !== undefined && exact.size > 0 && isSerializedOrigin(origin) && exact.has(origin.toLowerCase());
}

/** No CORS headers (one shared, frozen object: most requests have no Origin). */
const NONE: Readonly<Record<string, string>> = Object.freeze({});

/** The CORS headers for a response to `origin` (none when it is not allowed). */
export function corsHeaders(origin: string | undefined, allowed: (origin: string) => boolean, preflight: boolean): Readonly<Record<string, string>> {
  if (!origin || !allowed(origin)) return NONE;
  const headers: Record<string, string> = {
    'access-control-allow-origin': origin,
    'access-control-allow-credentials': 'true',
    vary: 'Origin',
  };
  if (preflight) {
    headers['access-control-allow-methods'] = ALLOWED_METHODS;
    headers['access-control-allow-headers'] = ALLOWED_HEADERS;
    headers['access-control-max-age'] = '600';
  }
  return headers;
}
