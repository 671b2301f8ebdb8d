/**
 * Minimal local typings for `oidc-provider` 9.x (it ships no TypeScript types and there is no
 * matching @types package for v9). Only what test/helpers/idp.ts uses is typed; the model
 * classes are left loose on purpose (they are internal-ish and change between majors).
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** Provider configuration (see panva/node-oidc-provider docs/README.md); deliberately loose. */
  export type Configuration = Record<string, any>;

  /** A token/grant model class exposed by a Provider instance (AccessToken, Grant, …). */
  export type ModelClass = (new (...args: any[]) => any) & Record<string, any>;

  /** Provider extends Koa; only the members the test harness uses are listed. */
  export class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: string, listener: (...args: any[]) => void): this;
    off(event: string, listener: (...args: any[]) => void): this;
    urlFor(name: string, opt?: Record<string, unknown>): string;
    readonly AccessToken: ModelClass;
    readonly ClientCredentials: ModelClass;
    readonly RefreshToken: ModelClass;
    readonly AuthorizationCode: ModelClass;
    readonly Grant: ModelClass;
    readonly Session: ModelClass;
    readonly Interaction: ModelClass;
    readonly IdToken: ModelClass;
    readonly ResourceServer: ModelClass;
    readonly Client: ModelClass & { find(id: string): Promise<any> };
  }

  export const errors: {
    InvalidRequest: new (description?: string, detail?: string) => Error;
    InvalidTarget: new (description?: string, detail?: string) => Error;
    [name: string]: (new (...args: any[]) => Error) | undefined;
  };
  export const interactionPolicy: Record<string, any>;
  export default Provider;
}
