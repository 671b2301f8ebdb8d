/**
 * Request authentication: which token a request carries, and who it belongs to.
 *
 * Header precedence (Saleor's): `Authorization-Bearer: <token>` wins; otherwise
 * `Authorization: Bearer <token>` or `Authorization: JWT <token>` (prefix case-insensitive).
 * Our own tokens are tried first; a token that is not ours goes to the active plugins'
 * `authenticateRequest`. A token nobody vouches for leaves the request anonymous.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Prisma } from '../db/database.ts';
import type { Principal } from '../accounts/principal.ts';
import { principalFromAccessClaims } from './our-tokens.ts';
import type { TokenService, AccessTokenClaims } from '../tokens/jwt.ts';
import type { PluginManager } from '../plugins/manager.ts';
import type { RequestInfo } from '../plugins/contract.ts';
import { fingerprint } from '../log.ts';

export function tokenFromHeaders(headers: IncomingHttpHeaders): string | undefined {
  const direct = headers['authorization-bearer'];
  const directValue = Array.isArray(direct) ? direct[0] : direct;
  if (directValue && directValue.trim()) return directValue.trim();
  const auth = headers['authorization'];
  if (!auth) return undefined;
  const match = /^\s*(bearer|jwt)\s+(\S+)\s*$/i.exec(auth);
  return match?.[2];
}

export class Authenticator {
  constructor(
    private readonly prisma: Prisma,
    private readonly tokens: TokenService,
    private readonly plugins: PluginManager<unknown>,
  ) {}

  async authenticate(token: string, req: RequestInfo): Promise<Principal | null> {
    const result = await this.tokens.verify(token, 'access');
    if (result.ok) return principalFromAccessClaims(this.prisma, result.claims as AccessTokenClaims);
    if (result.ours) {
      req.log.debug('bearer token refused', { reason: result.code, token: fingerprint(token) });
      return null;
    }
    for (const plugin of await this.plugins.activeInstances()) {
      if (!plugin.authenticateRequest) continue;
      const principal = await plugin.authenticateRequest(token, req);
      if (principal) return principal;
    }
    req.log.debug('bearer token not recognised', { token: fingerprint(token) });
    return null;
  }
}
