/**
 * Who is staff and with which permissions, from what the provider says (saleor-contract.md
 * section 5). Pure: the caller applies the decision to the database.
 */
import { parsePermissionsClaim, parseScopePermissions, sortPermissions, type PermissionCode } from './permissions.ts';

export interface StaffRules {
  /** "Use OAuth scope permissions". */
  useScopePermissions: boolean;
  /** Lower-cased email domains whose (verified) users are staff. */
  staffDomains: readonly string[];
}

export interface ProviderGrant {
  /** Granted scope string (token response `scope`, or the access token's scope). */
  scope?: string | null | undefined;
  /** A `permissions` claim, when the provider sends one. */
  permissionsClaim?: unknown;
  email: string;
  emailVerified: boolean;
}

export interface StaffDecision {
  isStaff: boolean;
  /** Permissions granted by the provider (scope / claim); empty unless scope permissions are on. */
  permissions: PermissionCode[];
}

export function emailDomain(email: string): string {
  const at = email.lastIndexOf('@');
  return at < 0 ? '' : email.slice(at + 1).toLowerCase();
}

/**
 * With scope permissions on: `saleor:<perm>` scopes (or the permissions claim) grant those
 * permissions and make the user staff; `saleor:staff` alone makes them staff with none.
 * A verified email in a staff domain makes them staff (Saleor does not ask for verification).
 * Anyone else is not staff.
 */
export function decideStaff(rules: StaffRules, grant: ProviderGrant): StaffDecision {
  let isStaff = false;
  let permissions: PermissionCode[] = [];
  if (rules.useScopePermissions) {
    const fromScope = parseScopePermissions(grant.scope);
    const fromClaim = parsePermissionsClaim(grant.permissionsClaim);
    permissions = sortPermissions([...fromScope.permissions, ...fromClaim.permissions]);
    isStaff = fromScope.any || fromClaim.any;
  }
  if (!isStaff && grant.emailVerified && rules.staffDomains.includes(emailDomain(grant.email))) isStaff = true;
  return { isStaff, permissions };
}
