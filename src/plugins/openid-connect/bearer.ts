/**
 * A provider's access token as a bearer token (resource server, saleor-contract.md section 5):
 * what resource-server.ts verified goes through the same identity pipeline as a login. The
 * token's scope decides permissions only when it is authoritative: scope permissions need the
 * configured audience (as Saleor); a token validated by userinfo only says who the user is,
 * not that it was meant for us (no permissions). Client-credentials tokens (no user) are apps.
 */
import { AppError } from '../../core/errors.ts';
import { FieldError } from '../../errors.ts';
import { appPermissions, type IdentityService } from '../../identity/identity.ts';
import type { AuthenticationResult } from '../contract.ts';
import { TokenRefusedError, type ResourceServer } from './resource-server.ts';
import type { OidcSettings } from './settings.ts';
import { identityRules } from './refresh-port.ts';

export interface BearerContext {
  pluginId: string;
  settings: OidcSettings;
  resourceServer: ResourceServer;
  identity: IdentityService;
}

/** Null: not this provider's token. Throws TokenRefusedError, or the provider's unavailability. */
export async function bearerPrincipal(token: string, c: BearerContext): Promise<AuthenticationResult | null> {
  const found = await c.resourceServer.identify(token);
  if (!found) return null;
  const rules = { ...identityRules(c.pluginId, c.settings), useScopePermissions: c.settings.useScopePermissions && found.audienceMatches };
  if (found.kind === 'app') {
    const permissions = appPermissions(found.scope, found.permissionsClaim, rules);
    return { principal: { kind: 'app', owner: c.pluginId, clientId: found.clientId ?? found.subject ?? 'unknown', permissions }, expiresAt: found.expiresAt };
  }
  let auth;
  try {
    auth = await c.identity.resolve(
      {
        issuer: found.issuer,
        subject: found.subject!,
        email: found.email,
        emailVerified: found.emailVerified,
        firstName: found.firstName,
        lastName: found.lastName,
        scope: found.scope,
        permissionsClaim: found.permissionsClaim,
        groups: found.groups,
      },
      rules,
      { authoritative: !found.identityOnly && (!c.settings.useScopePermissions || found.audienceMatches) },
    );
  } catch (e) {
    if (e instanceof AppError || e instanceof FieldError) throw new TokenRefusedError(e.message);
    throw e;
  }
  const principal = found.identityOnly ? { ...auth, permissions: [], isStaff: false } : auth;
  return { principal: { kind: 'user', owner: c.pluginId, ...principal }, expiresAt: found.expiresAt };
}
