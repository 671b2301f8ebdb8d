/**
 * Users from provider identities (saleor-contract.md section 4): link by (issuer, sub) in a
 * table of its own; fall back to an existing account by email only when the provider says the
 * email is verified (and the connection allows it) and that account is confirmed, and never
 * re-link an account that already has another subject at the same issuer. First login creates
 * an active user, confirmed when the email is verified; later logins sync names, and the email
 * when the provider verified it. Writes happen only when something changed.
 */
import type { Prisma } from '../db/database.ts';
import type { User } from '../generated/prisma/client.ts';
import { FieldError } from '../errors.ts';
import { effectivePermissions, isValidEmail, newTokenKey, normalizeEmail } from './users.ts';
import type { StaffDecision } from './staff.ts';
import type { PermissionCode } from './permissions.ts';

/** lastLogin is written at most this often (not on every request). */
export const LAST_LOGIN_RESOLUTION_MS = 5 * 60_000;

export interface ProviderIdentity {
  pluginId: string;
  issuer: string;
  subject: string;
  email: string;
  emailVerified: boolean;
  firstName?: string | undefined;
  lastName?: string | undefined;
}

export interface LinkOptions {
  linkByVerifiedEmail: boolean;
}

const isUniqueViolation = (e: unknown) => (e as { code?: string } | null)?.code === 'P2002';

async function syncProfile(prisma: Prisma, user: User, identity: ProviderIdentity): Promise<User> {
  const data: { email?: string; firstName?: string; lastName?: string } = {};
  const email = normalizeEmail(identity.email);
  // Only an email the provider verified replaces the stored one.
  if (email !== user.email && identity.emailVerified && isValidEmail(email)) {
    // An email already taken by another user is not copied; the other updates still apply.
    const taken = await prisma.user.findUnique({ where: { email }, select: { id: true } });
    if (!taken) data.email = email;
  }
  if (identity.firstName !== undefined && identity.firstName !== user.firstName) data.firstName = identity.firstName;
  if (identity.lastName !== undefined && identity.lastName !== user.lastName) data.lastName = identity.lastName;
  if (Object.keys(data).length === 0) return user;
  try {
    return await prisma.user.update({ where: { id: user.id }, data });
  } catch (e) {
    if (isUniqueViolation(e) && data.email) {
      // Someone took the email in between: keep the rest of the update.
      delete data.email;
      return Object.keys(data).length ? prisma.user.update({ where: { id: user.id }, data }) : user;
    }
    throw e;
  }
}

async function linkOnce(prisma: Prisma, identity: ProviderIdentity, options: LinkOptions): Promise<User> {
  const linked = await prisma.externalIdentity.findUnique({
    where: { issuer_subject: { issuer: identity.issuer, subject: identity.subject } },
    include: { user: true },
  });
  if (linked) return syncProfile(prisma, linked.user, identity);

  const email = normalizeEmail(identity.email);
  if (!isValidEmail(email)) throw new FieldError('code', 'INVALID', "Missing user's email.");
  const existing = await prisma.user.findUnique({ where: { email }, include: { identities: true } });
  if (existing) {
    if (!options.linkByVerifiedEmail || !identity.emailVerified) {
      throw new FieldError('code', 'INVALID', 'An account with this email already exists and the provider did not verify the email.');
    }
    // An account whose own email was never verified may have been created by someone who does
    // not own the address (pre-hijacking): never link a verified identity into it.
    if (!existing.isConfirmed) {
      throw new FieldError('code', 'INVALID', 'An unconfirmed account with this email already exists.');
    }
    if (existing.identities.some((i) => i.issuer === identity.issuer && i.subject !== identity.subject)) {
      throw new FieldError('code', 'INVALID', 'This account is already linked to another identity at this provider.');
    }
    await prisma.externalIdentity.create({
      data: { userId: existing.id, pluginId: identity.pluginId, issuer: identity.issuer, subject: identity.subject },
    });
    const { identities: _ignored, ...user } = existing;
    return syncProfile(prisma, user, identity);
  }
  return prisma.user.create({
    data: {
      email,
      firstName: identity.firstName ?? '',
      lastName: identity.lastName ?? '',
      isActive: true,
      // Confirmed only when the provider verified the email (see the linking rule above).
      isConfirmed: identity.emailVerified,
      tokenKey: newTokenKey(),
      identities: { create: { pluginId: identity.pluginId, issuer: identity.issuer, subject: identity.subject } },
    },
  });
}

/** The user for a provider identity, linked or created. Throws FieldError('code', INVALID). */
export async function linkUser(prisma: Prisma, identity: ProviderIdentity, options: LinkOptions): Promise<User> {
  try {
    return await linkOnce(prisma, identity, options);
  } catch (e) {
    // Two first logins of the same identity at once: the loser finds the winner's rows.
    if (isUniqueViolation(e)) return linkOnce(prisma, identity, options);
    throw e;
  }
}

/**
 * Applies the staff decision: staff flag, scope permissions (stored as the user's direct
 * permissions: the provider is their source of truth), default group membership. Returns the
 * user and the permissions a token for this login carries (none for non-staff).
 */
export async function applyStaffDecision(
  prisma: Prisma,
  user: User,
  decision: StaffDecision,
  options: {
    useScopePermissions: boolean;
    defaultGroupName: string | null;
    /** Group names from the provider's groups claim; undefined when no claim is mapped. */
    providerGroups?: string[] | undefined;
  },
): Promise<{ user: User; permissions: PermissionCode[]; changed: boolean }> {
  // Our permission groups the provider names (only existing ones: names are not created).
  const named = options.providerGroups?.length
    ? await prisma.permissionGroup.findMany({ where: { name: { in: options.providerGroups } }, select: { id: true, name: true } })
    : [];
  const data: { isStaff?: boolean; permissions?: string[] } = {};
  // The provider decides who is staff when scope permissions are on: then a user who no
  // longer qualifies loses staff. With them off, staff domains only promote (as Saleor), so
  // staff made here (e.g. by the CLI) stay staff. Members of a mapped group are staff.
  const byRules = options.useScopePermissions ? decision.isStaff : decision.isStaff || user.isStaff;
  const isStaff = byRules || named.length > 0;
  if (isStaff !== user.isStaff) data.isStaff = isStaff;
  if (options.useScopePermissions) {
    const wanted = isStaff ? decision.permissions : [];
    if (wanted.join(',') !== [...user.permissions].join(',')) data.permissions = wanted;
  }
  let current = user;
  let changed = Object.keys(data).length > 0;
  if (changed) current = await prisma.user.update({ where: { id: user.id }, data });
  if (options.providerGroups !== undefined) {
    // Membership follows the claim: join the named groups, leave the others (but the default
    // staff group, which follows the staff rules below).
    const memberships = await prisma.groupMember.findMany({ where: { userId: current.id }, include: { group: { select: { name: true } } } });
    const wanted = new Set(named.map((g) => g.id));
    const leave = memberships.filter((m) => !wanted.has(m.groupId) && m.group.name !== options.defaultGroupName).map((m) => m.groupId);
    const join = named.filter((g) => !memberships.some((m) => m.groupId === g.id)).map((g) => ({ userId: current.id, groupId: g.id }));
    if (leave.length) await prisma.groupMember.deleteMany({ where: { userId: current.id, groupId: { in: leave } } });
    if (join.length) await prisma.groupMember.createMany({ data: join, skipDuplicates: true });
    changed ||= leave.length > 0 || join.length > 0;
  }
  if (isStaff && options.defaultGroupName) {
    const group = await prisma.permissionGroup.upsert({
      where: { name: options.defaultGroupName },
      create: { name: options.defaultGroupName },
      update: {},
    });
    const joined = await prisma.groupMember.createMany({ data: [{ userId: current.id, groupId: group.id }], skipDuplicates: true });
    changed ||= joined.count > 0;
  }
  return { user: current, permissions: current.isStaff ? await effectivePermissions(prisma, current) : [], changed };
}

/** Records a login, at most once per LAST_LOGIN_RESOLUTION_MS. */
export async function touchLastLogin(prisma: Prisma, user: User): Promise<User> {
  if (user.lastLogin && Date.now() - user.lastLogin.getTime() < LAST_LOGIN_RESOLUTION_MS) return user;
  return prisma.user.update({ where: { id: user.id }, data: { lastLogin: new Date() } });
}
