/**
 * The five external-authentication mutations. Each routes to the plugin named by `pluginId`;
 * an unknown or inactive plugin (or one without that hook) gives Saleor's empty result with
 * no error. `input` must be a JSON object (Saleor crashes on anything else; we answer a typed
 * error).
 */
import { FieldError } from '../../errors.ts';
import type { JsonObject, PluginInstance } from '../../plugins/contract.ts';
import type { GraphQLContext } from '../context.ts';
import { accountErrors, toErrorItems } from '../results.ts';
import { userNode } from './users.ts';

type Args = { pluginId: string; input: unknown };

function inputObject(input: unknown): JsonObject {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new FieldError('input', 'INVALID', 'Input must be a JSON object.');
  }
  return input as JsonObject;
}

/**
 * Shared shape of the five resolvers: parse input, find the active plugin and its hook,
 * run it, and map failures onto `errors` with every other output field at its empty value.
 */
function externalMutation<K extends keyof PluginInstance, Out extends object>(
  hook: K,
  empty: Out,
  failed: Out,
  present: (result: Awaited<ReturnType<NonNullable<PluginInstance[K]> & ((...a: never[]) => unknown)>>) => Out,
) {
  return async (_: unknown, args: Args, ctx: GraphQLContext) => {
    try {
      const input = inputObject(args.input);
      const plugin = await ctx.app.plugins.active(args.pluginId);
      const fn = plugin?.[hook] as ((input: JsonObject, req: GraphQLContext['req']) => Promise<unknown>) | undefined;
      if (!plugin || typeof fn !== 'function') return { ...empty, ...accountErrors([]) };
      const result = await fn.call(plugin, input, ctx.req);
      return { ...present(result as never), ...accountErrors([]) };
    } catch (e) {
      return { ...failed, ...accountErrors(toErrorItems(ctx, e, String(hook))) };
    }
  };
}

const noTokens = { token: null, refreshToken: null, csrfToken: null, user: null };

const tokensOut = (t: Awaited<ReturnType<NonNullable<PluginInstance['externalObtainAccessTokens']>>>) =>
  t ? { token: t.token, refreshToken: t.refreshToken, csrfToken: t.csrfToken, user: userNode(t.user) } : noTokens;

export const externalResolvers = {
  Mutation: {
    externalAuthenticationUrl: externalMutation(
      'externalAuthenticationUrl',
      { authenticationData: {} as JsonObject | null },
      { authenticationData: null },
      (data) => ({ authenticationData: data as JsonObject }),
    ),
    externalObtainAccessTokens: externalMutation('externalObtainAccessTokens', noTokens, noTokens, tokensOut as never),
    externalRefresh: externalMutation('externalRefresh', noTokens, noTokens, tokensOut as never),
    externalLogout: externalMutation(
      'externalLogout',
      { logoutData: {} as JsonObject | null },
      { logoutData: null },
      (data) => ({ logoutData: data as JsonObject }),
    ),
    externalVerify: externalMutation(
      'externalVerify',
      { user: null, isValid: false, verifyData: {} as JsonObject | null },
      { user: null, isValid: false, verifyData: null },
      (r) => {
        const v = r as Awaited<ReturnType<NonNullable<PluginInstance['externalVerify']>>>;
        return { user: v.user ? userNode(v.user) : null, isValid: v.isValid, verifyData: v.verifyData };
      },
    ),
  },
};
