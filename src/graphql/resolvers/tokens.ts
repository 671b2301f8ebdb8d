/**
 * tokenVerify, tokenRefresh, tokensDeactivateAll: Saleor's behaviour for our own JWTs.
 */
import { FieldError } from '../../errors.ts';
import { deactivateAllTokens } from '../../accounts/users.ts';
import { csrfTokensMatch } from '../../tokens/csrf.ts';
import type { AccessTokenClaims, RefreshTokenClaims } from '../../tokens/jwt.ts';
import { REFRESH_COOKIE } from '../../auth/cookies.ts';
import { requireUser, type GraphQLContext } from '../context.ts';
import { accountErrors, toErrorItems } from '../results.ts';
import { userNode } from './users.ts';

export const tokenResolvers = {
  Mutation: {
    tokenVerify: async (_: unknown, args: { token: string }, ctx: GraphQLContext) => {
      const invalid = (e: unknown) => ({ user: null, isValid: false, payload: null, ...accountErrors(toErrorItems(ctx, e, 'tokenVerify')) });
      try {
        if (!args.token) throw new FieldError('token', 'JWT_MISSING_TOKEN', 'Missing token.');
        const result = await ctx.app.tokens.verify(args.token, 'access');
        if (!result.ok) throw new FieldError('token', result.code, result.message);
        const principal = await ctx.app.authenticator.principalForClaims(result.claims as AccessTokenClaims);
        if (!principal) throw new FieldError('token', 'JWT_INVALID_TOKEN', 'Invalid token.');
        return { user: userNode(principal), isValid: true, payload: result.claims, ...accountErrors([]) };
      } catch (e) {
        return invalid(e);
      }
    },

    tokenRefresh: async (
      _: unknown,
      args: { refreshToken?: string | null; csrfToken?: string | null },
      ctx: GraphQLContext,
    ) => {
      try {
        const fromCookie = !args.refreshToken;
        const token = args.refreshToken || ctx.req.cookies[REFRESH_COOKIE];
        if (!token) throw new FieldError('refreshToken', 'JWT_MISSING_TOKEN', 'Missing refreshToken');
        const result = await ctx.app.tokens.verify(token, 'refresh');
        if (!result.ok) throw new FieldError('refreshToken', result.code, result.message);
        const claims = result.claims as RefreshTokenClaims;
        // A refresh token taken from the cookie must come with the CSRF token it was issued with.
        if (fromCookie && !csrfTokensMatch(args.csrfToken, claims.csrf_token)) {
          throw new FieldError('csrfToken', 'JWT_INVALID_CSRF_TOKEN', 'Invalid csrf token');
        }
        // Plugin-owned refresh tokens go back to the plugin that minted them.
        const plugin = await ctx.app.plugins.active(claims.owner);
        if (!plugin?.externalRefresh) throw new FieldError('refreshToken', 'JWT_INVALID_TOKEN', 'Invalid token.');
        // Saleor's tokenRefresh returns no refresh token, so its clients (@saleor/auth-sdk) keep
        // the one they have: refresh without rotating it (externalRefresh rotates).
        const tokens = await plugin.externalRefresh({ refreshToken: token, csrfToken: args.csrfToken ?? undefined }, ctx.req, { rotate: false });
        if (!tokens) throw new FieldError('refreshToken', 'JWT_INVALID_TOKEN', 'Invalid token.');
        return { token: tokens.token, user: userNode(tokens.user), ...accountErrors([]) };
      } catch (e) {
        return { token: null, user: null, ...accountErrors(toErrorItems(ctx, e, 'tokenRefresh')) };
      }
    },

    tokensDeactivateAll: async (_: unknown, __: unknown, ctx: GraphQLContext) => {
      const principal = await requireUser(ctx);
      // Refresh tokens too: every session of the user ends (in the same transaction).
      const ended = await deactivateAllTokens(ctx.app.db.prisma, principal.user.id);
      ctx.app.sessions.announceRevoked(ended, 'tokens-deactivated');
      await ctx.app.bus.publish({ topic: 'users', ids: [principal.user.id] });
      await ctx.app.audit.record({
        type: 'tokens.deactivated',
        outcome: 'success',
        actorUserId: principal.user.id,
        userId: principal.user.id,
        ip: ctx.req.ip,
        userAgent: ctx.req.userAgent,
        requestId: ctx.req.requestId,
      });
      return accountErrors([]);
    },
  },
};
