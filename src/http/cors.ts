/**
 * CORS as Saleor does it: ALLOWED_GRAPHQL_ORIGINS is a comma list of origin patterns with `*`
 * wildcards. A matching Origin is echoed with credentials allowed (browser storefronts send the
 * refresh cookie cross-origin); a non-matching one gets no CORS headers at all.
 */
export const ALLOWED_METHODS = 'POST, GET, OPTIONS';
export const ALLOWED_HEADERS = 'Authorization, Authorization-Bearer, Content-Type, X-Request-Id, Apollo-Require-Preflight';

function patternToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`, 'i');
}

export function originMatcher(patterns: readonly string[]): (origin: string) => boolean {
  const regexps = patterns.map(patternToRegExp);
  return (origin) => regexps.some((r) => r.test(origin));
}

/** The CORS headers for a response to `origin` (empty when it is not allowed). */
export function corsHeaders(origin: string | undefined, allowed: (origin: string) => boolean, preflight: boolean): Record<string, string> {
  if (!origin || !allowed(origin)) return {};
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
