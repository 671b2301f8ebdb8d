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
  /** Adds a Set-Cookie header to the response. */
  setCookie(header: string): void;
  log: Logger;
}
