/**
 * The demo provider's interactions (oidc-provider's `interactions.url` points here):
 * - login: a form with the fields `login` and `password`; a wrong password shows the form
 *   again with an error; the right one finishes the login prompt;
 * - consent: never shown. What the client asked for is granted at once, within the account's
 *   allowed `saleor:` scopes (the others are recorded as refused, so oidc-provider does not
 *   ask again for them);
 * - abort ("Cancel"): ends the request with access_denied (RFC 6749 §4.1.2.1).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkCredentials, decideScopes, findAccountBySub } from './accounts.ts';
import type { OidcProvider } from './oidc-types.ts';
import { errorPage, loginPage } from './pages.ts';

/** Paths served here: /interaction/<uid>, /interaction/<uid>/login, /interaction/<uid>/abort. */
const INTERACTION_PATH = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?$/;

export function interactionUrl(uid: string): string {
  return `/interaction/${uid}`;
}

function send(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

async function readForm(req: IncomingMessage, limit = 16 * 1024): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error('form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * Handles the request when it is one of ours; returns false for every other path (the
 * caller hands it to oidc-provider).
 */
export async function handleInteraction(provider: OidcProvider, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const match = INTERACTION_PATH.exec(path);
  if (!match) return false;
  const uid = match[1]!;
  const action = match[2];
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction mismatch');
    const clientName = String(details.params['client_id'] ?? 'the application');
    const loginUrl = `${interactionUrl(uid)}/login`;
    const abortUrl = `${interactionUrl(uid)}/abort`;

    if (action === 'abort') {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'The user cancelled the sign-in.' }, { mergeWithLastSubmission: false });
      return true;
    }
    if (action === 'login') {
      if (req.method !== 'POST' || details.prompt.name !== 'login') {
        send(res, 400, errorPage({ error: 'invalid_request', error_description: 'unexpected login submission' }));
        return true;
      }
      const form = await readForm(req);
      const login = form.get('login') ?? '';
      const account = checkCredentials(login, form.get('password') ?? '');
      if (!account) {
        // 200, as login forms answer: the page is the normal next step, not a failed request.
        send(res, 200, loginPage({ action: loginUrl, abort: abortUrl, clientName, login, error: 'Wrong email or password.' }));
        return true;
      }
      await provider.interactionFinished(req, res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
      return true;
    }
    if (details.prompt.name === 'login') {
      send(res, 200, loginPage({ action: loginUrl, abort: abortUrl, clientName }));
      return true;
    }
    if (details.prompt.name === 'consent') {
      await grantConsent(provider, details, req, res);
      return true;
    }
    send(res, 400, errorPage({ error: 'invalid_request', error_description: `unsupported prompt ${details.prompt.name}` }));
  } catch (e) {
    // Expired or unknown interaction (cookie gone, server restarted): start again from the storefront.
    send(res, 400, errorPage({ error: 'invalid_request', error_description: `This sign-in request cannot continue (${(e as Error).message}). Start again from the storefront.` }));
  }
  return true;
}

async function grantConsent(
  provider: OidcProvider,
  details: Awaited<ReturnType<OidcProvider['interactionDetails']>>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const accountId = details.session?.accountId;
  const account = accountId ? findAccountBySub(accountId) : undefined;
  if (!account) throw new Error('no signed-in account');
  const clientId = String(details.params['client_id']);
  const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId: account.sub, clientId });

  const missing = details.prompt.details;
  const scopes = Array.isArray(missing['missingOIDCScope']) ? (missing['missingOIDCScope'] as string[]) : [];
  const { granted, refused } = decideScopes(account, scopes);
  if (granted.length) grant.addOIDCScope(granted.join(' '));
  if (refused.length) grant.rejectOIDCScope(refused.join(' '));
  if (Array.isArray(missing['missingOIDCClaims'])) grant.addOIDCClaims(missing['missingOIDCClaims'] as string[]);
  const resources = (missing['missingResourceScopes'] ?? {}) as Record<string, string[]>;
  for (const [indicator, requested] of Object.entries(resources)) {
    const decision = decideScopes(account, requested);
    if (decision.granted.length) grant.addResourceScope(indicator, decision.granted.join(' '));
    if (decision.refused.length) grant.rejectResourceScope(indicator, decision.refused.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}
