/**
 * Who a request (or a login) is authenticated as.
 */
import type { User } from '../generated/prisma/client.ts';
import type { PermissionCode } from './permissions.ts';

export type { User };

/** A user with the permissions the current token grants (not necessarily all they have). */
export interface AuthenticatedUser {
  user: User;
  permissions: PermissionCode[];
  isStaff: boolean;
}

export type Principal =
  | ({ kind: 'user'; /** who vouched for it: our core or a plugin id */ owner: string } & AuthenticatedUser)
  | {
      /** A machine client (e.g. an OAuth client-credentials token): no user behind it. */
      kind: 'app';
      owner: string;
      clientId: string;
      permissions: PermissionCode[];
    };
