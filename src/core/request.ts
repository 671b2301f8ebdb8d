/**
 * Per-request facts and effects that services may use (the HTTP edge builds it).
 */
import type { Logger } from '../log.ts';

export interface RequestInfo {
  requestId: string;
  /** The client's address (TRUST_PROXY honoured). */
  ip: string | undefined;
  userAgent: string | undefined;
  cookies: Readonly<Record<string, string>>;
  /**
   * The request's `Origin` is one listed exactly (no wildcard) in ALLOWED_GRAPHQL_ORIGINS: a
   * browser sent it from a page the operator trusts (cross-site pages cannot forge `Origin`).
   */
  trustedOrigin: boolean;
  /** Adds a Set-Cookie header to the response. */
  setCookie(header: string): void;
  log: Logger;
}
