/**
 * @saleor/auth-sdk 1.0.3 decodes a JWT's payload with Node's
 * `Buffer.from(part, 'base64').toString()` (its utils' decodeToken), and browsers have no
 * `Buffer` (Next.js used to polyfill it). The storefront bundle injects this object for the
 * free identifier `Buffer` (esbuild `inject`): exactly that call, base64 or base64url, padded
 * or not, as Node accepts it, decoded as UTF-8.
 */
export const Buffer = {
  from(input: string, encoding: string): { toString(): string } {
    if (encoding !== 'base64') throw new Error(`Buffer shim: only base64 is supported, not ${encoding}`);
    const base64 = input.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const binary = atob(padded);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const text = new TextDecoder().decode(bytes);
    return { toString: () => text };
  },
};
