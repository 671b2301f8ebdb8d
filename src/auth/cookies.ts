/**
 * Cookies: parsing the request's, and the refresh-token cookie we set.
 * `refreshToken`: HttpOnly; Path=/; SameSite=None; Secure on https deployments (browser
 * storefronts send it cross-origin), SameSite=Lax without Secure on plain http (local dev).
 */
export const REFRESH_COOKIE = 'refreshToken';

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      value = decodeURIComponent(value);
    } catch {
      // keep the raw value
    }
    if (!(name in out)) out[name] = value;
  }
  return out;
}

export function refreshCookie(value: string, opts: { secure: boolean; maxAgeSeconds: number }): string {
  const attrs = [`${REFRESH_COOKIE}=${encodeURIComponent(value)}`, 'HttpOnly', 'Path=/', `Max-Age=${opts.maxAgeSeconds}`];
  attrs.push(opts.secure ? 'SameSite=None; Secure' : 'SameSite=Lax');
  return attrs.join('; ');
}

export function clearRefreshCookie(opts: { secure: boolean }): string {
  return [`${REFRESH_COOKIE}=`, 'HttpOnly', 'Path=/', 'Max-Age=0', opts.secure ? 'SameSite=None; Secure' : 'SameSite=Lax'].join('; ');
}
