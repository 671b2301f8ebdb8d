/**
 * The part of oidc-provider 9.x the demo uses, typed locally (the package ships no types).
 * Deliberately small: only what demo/provider/*.ts calls.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface InteractionDetails {
  uid: string;
  prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
}

export interface GrantInstance {
  addOIDCScope(scope: string): void;
  rejectOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(indicator: string, scope: string): void;
  rejectResourceScope(indicator: string, scope: string): void;
  save(): Promise<string>;
}

export interface GrantClass {
  new (init: { accountId: string; clientId: string }): GrantInstance;
  find(id: string): Promise<GrantInstance | undefined>;
}

export interface InteractionResult {
  login?: { accountId: string };
  consent?: { grantId: string };
  error?: string;
  error_description?: string;
}

export interface OidcProvider {
  readonly issuer: string;
  readonly Grant: GrantClass;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: InteractionResult,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<void>;
  on(event: string, listener: (...args: any[]) => void): unknown;
}

export type OidcProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;
