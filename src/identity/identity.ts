/**
 * One identity pipeline for every way a provider vouches for someone (a login's id_token, a
 * refresh's new id_token, a bearer access token): link or create the user (by issuer + subject,
 * by verified email only as accounts/provisioning.ts allows), sync the profile, refuse inactive
 * users, decide staff and permissions (accounts/staff.ts), apply groups, touch lastLogin.
 * Plugins hand over a verified identity and the connection's rules; they know no user table.
 *
 * Verified email (staff domains): the provider verified *this* email, i.e. the stored one (the
 * stored one may differ when the provider's new email belongs to someone else and was not
 * copied). A bearer token without an email keeps the staff-domain verdict of the last login.
 */
import type { Prisma } from '../db/database.ts';
import type { User } from '../generated/prisma/client.ts';
import type { AuthenticatedUser } from '../accounts/principal.ts';
import { AppError } from '../core/errors.ts';
import { applyStaffDecision, linkUser, touchLastLogin } from '../accounts/provisioning.ts';
import { decideStaff } from '../accounts/staff.ts';
import { effectivePermissions, normalizeEmail } from '../accounts/users.ts';
import type { PermissionCode } from '../accounts/permissions.ts';

/** What a provider vouched for, after the plugin verified it. */
export interface VerifiedIdentity {
  issuer: string;
  subject: string;
  /** Absent: the provider did not say (bearer tokens); the linked identity is used then. */
  email: string | undefined;
  emailVerified: boolean;
  firstName: string | undefined;
  lastName: string | undefined;
  /** Granted scope (space-separated), or null when the provider did not say. */
  scope: string | null;
  permissionsClaim: unknown;
  /** Names from the configured groups claim; undefined when none is configured. */
  groups: string[] | undefined;
}

/** A connection's rules for its identities. */
export interface IdentityRules {
  pluginId: string;
  linkByVerifiedEmail: boolean;
  useScopePermissions: boolean;
  staffDomains: readonly string[];
  defaultGroupName: string | null;
}

/** The permissions of a machine client (client-credentials token: no user): its scope's, when scope permissions apply. */
export function appPermissions(scope: string | null, permissionsClaim: unknown, rules: IdentityRules): PermissionCode[] {
  return decideStaff({ useScopePermissions: rules.useScopePermissions, staffDomains: rules.staffDomains }, { scope, permissionsClaim, email: '', emailVerified: false }).permissions;
}

export class IdentityService {
  constructor(
    private readonly prisma: Prisma,
    /** Told when a login changed a user's staff status, permissions or groups (caches forget them). */
    private readonly onUserChanged: (userId: number) => Promise<void> = async () => {},
  ) {}

  private async link(identity: VerifiedIdentity, rules: IdentityRules): Promise<User> {
    if (identity.email) {
      return linkUser(
        this.prisma,
        {
          pluginId: rules.pluginId,
          issuer: identity.issuer,
          subject: identity.subject,
          email: identity.email,
          emailVerified: identity.emailVerified,
          firstName: identity.firstName,
          lastName: identity.lastName,
        },
        { linkByVerifiedEmail: rules.linkByVerifiedEmail },
      );
    }
    const link = await this.prisma.externalIdentity.findUnique({
      where: { issuer_subject: { issuer: identity.issuer, subject: identity.subject } },
      include: { user: true },
    });
    if (!link) throw new AppError('identity_unknown', 'Missing user\'s email.', 'the identity names an unknown user and carries no email');
    return link.user;
  }

  /**
   * The user an identity speaks for, with the staff status and permissions the provider's
   * statement gives. `authoritative: false` (a bearer token whose scope was not meant for us):
   * the stored staff status and permissions stand. Throws AppError `identity_*`.
   */
  async resolve(identity: VerifiedIdentity, rules: IdentityRules, options: { authoritative: boolean } = { authoritative: true }): Promise<AuthenticatedUser> {
    let user = await this.link(identity, rules);
    if (!user.isActive) throw new AppError('identity_inactive', 'Unable to log in.', `user ${user.id} is inactive`);
    // With neither an email, scope permissions nor groups to go by, nothing new is said.
    const saysSomething = identity.email !== undefined || rules.useScopePermissions || identity.groups !== undefined;
    let permissions;
    if (options.authoritative && saysSomething) {
      const decision = decideStaff(
        { useScopePermissions: rules.useScopePermissions, staffDomains: rules.staffDomains },
        {
          scope: identity.scope,
          permissionsClaim: identity.permissionsClaim,
          email: user.email,
          emailVerified: identity.email ? identity.emailVerified && normalizeEmail(identity.email) === user.email : user.isStaff,
        },
      );
      let changed: boolean;
      ({ user, permissions, changed } = await applyStaffDecision(this.prisma, user, decision, {
        useScopePermissions: rules.useScopePermissions,
        defaultGroupName: rules.defaultGroupName,
        providerGroups: identity.groups,
      }));
      if (changed) await this.onUserChanged(user.id);
    } else {
      permissions = user.isStaff ? await effectivePermissions(this.prisma, user) : [];
    }
    user = await touchLastLogin(this.prisma, user);
    return { user, permissions, isStaff: user.isStaff };
  }

  /** The user of a session as stored (no new statement from the provider), refused when inactive. */
  async current(userId: number): Promise<AuthenticatedUser> {
    const user = await this.prisma.user.findUnique({ where: { id: userId } });
    if (!user || !user.isActive) throw new AppError('identity_inactive', 'Unable to log in.', `user ${userId} is missing or inactive`);
    return { user, permissions: user.isStaff ? await effectivePermissions(this.prisma, user) : [], isStaff: user.isStaff };
  }
}
