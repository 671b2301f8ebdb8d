/**
 * What the storefront script knows about its surroundings, fixed when the demo bundles it
 * (esbuild `define` replaces `__DEMO_CONFIG__` with these values).
 */
export interface StorefrontConfig {
  /** The API's GraphQL URL, exactly our token issuer (`PUBLIC_URL` + `/graphql/`). */
  apiUrl: string;
  /** Where the provider sends the browser back with `code` and `state`. */
  callbackUrl: string;
  /** The storefront's own page (post-logout return address). */
  homeUrl: string;
}

declare const __DEMO_CONFIG__: StorefrontConfig;

export const config: StorefrontConfig = __DEMO_CONFIG__;
