/**
 * plugin, pluginUpdate, shop (the plugins list is in ./lists.ts). Reading and changing plugin
 * configuration requires MANAGE_PLUGINS; secrets are masked on read (see src/plugins/configuration.ts).
 */
import { PERMISSION_CODES } from '../../accounts/permissions.ts';
import type { PluginView } from '../../plugins/manager.ts';
import type { ConfigurationUpdate } from '../../plugins/configuration.ts';
import type { Principal } from '../../accounts/principal.ts';
import { OIDC_PLUGIN_KIND } from '../../plugins/openid-connect/settings.ts';
import { requirePermission, type GraphQLContext } from '../context.ts';
import { pluginErrors, toErrorItems } from '../results.ts';
import { permissionView } from './users.ts';

function auditBase(ctx: GraphQLContext, principal: Principal, pluginId: string) {
  return {
    actorUserId: principal.kind === 'user' ? principal.user.id : null,
    pluginId,
    ip: ctx.req.ip,
    userAgent: ctx.req.userAgent,
    requestId: ctx.req.requestId,
  };
}

export const pluginResolvers = {
  Query: {
    shop: () => ({}),
    plugin: async (_: unknown, args: { id: string }, ctx: GraphQLContext) => {
      await requirePermission(ctx, ['MANAGE_PLUGINS']);
      return (await ctx.app.plugins.get(args.id)) ?? null;
    },
  },
  Shop: {
    availableExternalAuthentications: async (_: unknown, __: unknown, ctx: GraphQLContext) =>
      (await ctx.app.plugins.activeInstances())
        .filter((p) => typeof p.externalAuthenticationUrl === 'function')
        .map((p) => ({ id: p.id, name: p.name })),
    permissions: () => PERMISSION_CODES.map(permissionView),
  },
  Plugin: {
    globalConfiguration: (p: PluginView) => ({ active: p.active, configuration: p.configuration }),
    channelConfigurations: () => [],
  },
  Mutation: {
    openIdConnectConnectionCreate: async (_: unknown, args: { input: { id: string; name: string } }, ctx: GraphQLContext) => {
      const principal = await requirePermission(ctx, ['MANAGE_PLUGINS']);
      try {
        const plugin = await ctx.app.plugins.create(args.input.id, OIDC_PLUGIN_KIND, args.input.name);
        await ctx.app.audit.record({ ...auditBase(ctx, principal, args.input.id), type: 'plugin.created', outcome: 'success' });
        return { plugin, errors: [] };
      } catch (e) {
        return { plugin: null, errors: toErrorItems(ctx, e, 'openIdConnectConnectionCreate') };
      }
    },
    openIdConnectConnectionDelete: async (_: unknown, args: { id: string }, ctx: GraphQLContext) => {
      const principal = await requirePermission(ctx, ['MANAGE_PLUGINS']);
      try {
        // (The plugin kind ends the connection's sessions.)
        // (Every instance forgets what it cached under it: PluginManager announces the change.)
        await ctx.app.plugins.remove(args.id);
        await ctx.app.audit.record({ ...auditBase(ctx, principal, args.id), type: 'plugin.deleted', outcome: 'success' });
        return { errors: [] };
      } catch (e) {
        return { errors: toErrorItems(ctx, e, 'openIdConnectConnectionDelete') };
      }
    },
    pluginUpdate: async (
      _: unknown,
      args: { id: string; channelId?: string | null; input: ConfigurationUpdate },
      ctx: GraphQLContext,
    ) => {
      const principal = await requirePermission(ctx, ['MANAGE_PLUGINS']);
      const audit = { ...auditBase(ctx, principal, args.id), type: 'plugin.updated' };
      try {
        // Cached bearer-token answers were given under the old configuration: every instance
        // forgets them (PluginManager announces the change).
        const { plugin, changed } = await ctx.app.plugins.update(args.id, args.input);
        // Field names only: values (secrets) never reach the audit trail.
        await ctx.app.audit.record({ ...audit, outcome: 'success', detail: { changed } });
        return { plugin, ...pluginErrors([]) };
      } catch (e) {
        const items = toErrorItems(ctx, e, 'pluginUpdate');
        await ctx.app.audit.record({ ...audit, outcome: 'failure', detail: { errors: items.map((i) => i.field) } });
        return { plugin: null, ...pluginErrors(items) };
      }
    },
  },
};
