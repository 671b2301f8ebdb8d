/**
 * Redirect-URI allow-lists. An entry matches exactly (string equality), or, when it ends in
 * `/*`, any URI that starts with the entry without its `*` (so a prefix always ends at a path
 * boundary: `https://shop.example.com/*` cannot match `https://shop.example.com.evil.net`).
 * URIs with a fragment never match (RFC 6749 §3.1.2), nor do URIs with a query string: the
 * code exchange (openid-client) sends the redirect_uri without its query, which the provider
 * would not recognise.
 */

export function isValidAllowListEntry(entry: string): boolean {
  const base = entry.endsWith('/*') ? entry.slice(0, -1) : entry;
  if (entry.includes('*') && !entry.endsWith('/*')) return false;
  if (base.includes('*')) return false;
  try {
    const url = new URL(base);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.hostname !== '' && !base.includes('#') && !base.includes('?');
  } catch {
    return false;
  }
}

export function isAllowedRedirect(uri: string, allowList: readonly string[]): boolean {
  if (uri === '' || uri.includes('#') || uri.includes('?')) return false;
  let parsed: URL;
  try {
    parsed = new URL(uri);
  } catch {
    return false;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return false;
  if (parsed.username || parsed.password) return false;
  return allowList.some((entry) => {
    if (entry.endsWith('/*')) {
      const prefix = entry.slice(0, -1);
      const rest = uri.slice(prefix.length);
      // Nothing in the path after the prefix may climb out of it: no dot segments (also
      // encoded), no encoded slashes, no backslashes, no second slash right after the prefix.
      if (/(^|\/)\.\.?(\/|$)|%2e|%2f|%5c|\\/i.test(rest)) return false;
      return uri.startsWith(prefix) && !rest.startsWith('/');
    }
    return uri === entry;
  });
}
