/**
 * The bearer token of a request and its cache key (the token's hash, the Authenticator's key),
 * remembered per connection. A client sends the same Authorization header on every request of a
 * keep-alive connection; parsing and hashing a token of 1.5 KB again each time took about 3 µs
 * of an authenticated request. The headers are compared in full (string equality) with the
 * ones the remembered token came from, so a connection that carries another token, or none, is
 * never answered for the previous one.
 */
import type { IncomingMessage } from 'node:http';
import { tokenFromHeaders } from '../auth/authenticate.ts';
import { hashToken } from '../crypto/secret-box.ts';

export interface Bearer {
  /** The headers the token was read from (Saleor's precedence: see tokenFromHeaders). */
  readonly direct: string | string[] | undefined;
  readonly authorization: string | undefined;
  /** The token, if the headers carry one (never logged). */
  readonly token: string | undefined;
  /** hashToken(token): the token cache's key. */
  readonly key: string | undefined;
}

const NONE: Bearer = { direct: undefined, authorization: undefined, token: undefined, key: undefined };
const REMEMBERED = Symbol('bearer');
type Remembering = { [REMEMBERED]?: Bearer };

export function bearerOf(req: IncomingMessage): Bearer {
  const headers = req.headers;
  const direct = headers['authorization-bearer'];
  const authorization = headers.authorization;
  if (direct === undefined && authorization === undefined) return NONE;
  const socket = req.socket as Remembering;
  const last = socket[REMEMBERED];
  if (last !== undefined && last.authorization === authorization && last.direct === direct && typeof direct !== 'object') return last;
  const token = tokenFromHeaders(headers);
  const bearer: Bearer = { direct, authorization, token, key: token === undefined ? undefined : hashToken(token) };
  socket[REMEMBERED] = bearer;
  return bearer;
}
