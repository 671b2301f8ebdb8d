/**
 * Operation limits, checked during validation (before anything of an operation runs), on the
 * document with its fragments and inline fragments expanded, so that a limit cannot be dodged
 * by moving selections into a fragment:
 * - depth, aliases and fields: graphql-armor's rules (fields counted as a cost of 1 per field,
 *   aliases included, a list's `first`/`last` multiplying what it selects);
 * - root fields of a mutation (below): the external-auth mutations are anonymous and each may
 *   write, so one request must not fan out into thousands of writes;
 * - document size: graphql-js `parse` maxTokens (set on the server, see server.ts).
 * Over a limit: a validation error naming the limit (HTTP 400), and nothing runs.
 */
import { GraphQLError, Kind, type ASTVisitor, type FragmentDefinitionNode, type SelectionSetNode, type ValidationContext, type ValidationRule } from 'graphql';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import type { GraphQLLimits } from '../config.ts';

/** The error every limit reports: `extensions.code` names the limit. */
export function limitExceeded(limit: string, message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'GRAPHQL_VALIDATION_FAILED', limit } });
}

/**
 * The names of the root fields an operation's selection set runs, fragments and inline
 * fragments expanded (a field reached through N spreads counts N times: never fewer than run).
 * Each fragment is expanded once and its result reused, so the walk is linear in the document
 * even when the count it returns is huge.
 */
export function rootFieldNames(selectionSet: SelectionSetNode, fragment: (name: string) => FragmentDefinitionNode | null | undefined, cap: number): string[] {
  const memo = new Map<string, string[]>();
  const walk = (set: SelectionSetNode, seen: ReadonlySet<string>): string[] => {
    const out: string[] = [];
    for (const selection of set.selections) {
      if (out.length > cap) break;
      if (selection.kind === Kind.FIELD) out.push(selection.name.value);
      else if (selection.kind === Kind.INLINE_FRAGMENT) out.push(...walk(selection.selectionSet, seen));
      else {
        const name = selection.name.value;
        // A cycle is reported by graphql-js's own NoFragmentCycles rule.
        if (seen.has(name)) continue;
        let fields = memo.get(name);
        if (!fields) {
          const def = fragment(name);
          fields = def ? walk(def.selectionSet, new Set([...seen, name])) : [];
          memo.set(name, fields);
        }
        out.push(...fields.slice(0, cap + 1 - out.length));
      }
    }
    return out;
  };
  return walk(selectionSet, new Set());
}

/** An operation type the schema does not have (subscription) is a client error, not a 500. */
const supportedOperationRule: ValidationRule = (context: ValidationContext): ASTVisitor => ({
  OperationDefinition(node) {
    if (!context.getSchema().getRootType(node.operation)) {
      context.reportError(new GraphQLError(`This API has no ${node.operation} operations.`, { nodes: [node], extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }));
    }
  },
});

function maxMutationFieldsRule(max: number): ValidationRule {
  return (context: ValidationContext): ASTVisitor => ({
    OperationDefinition(node) {
      if (node.operation !== 'mutation') return;
      const count = rootFieldNames(node.selectionSet, (n) => context.getFragment(n), max).length;
      if (count > max) context.reportError(limitExceeded('maxMutationFields', `A mutation may select at most ${max} root fields, fragments included.`));
    },
  });
}

/** The validation rules enforcing `limits`. */
export function operationLimitRules(limits: GraphQLLimits): ValidationRule[] {
  // armor's own message starts with "Syntax Error:" and says "cost"; ours names the limit.
  const report = (limit: string, message: string) => [(context: ValidationContext | null) => context?.reportError(limitExceeded(limit, message))];
  return [
    supportedOperationRule,
    maxMutationFieldsRule(limits.maxMutationFields),
    maxDepthRule({ n: limits.maxDepth, flattenFragments: true, ignoreIntrospection: false, propagateOnRejection: false, onReject: report('maxDepth', `Query depth limit of ${limits.maxDepth} exceeded (fragments expanded).`) }),
    maxAliasesRule({ n: limits.maxAliases, allowList: [], propagateOnRejection: false, onReject: report('maxAliases', `Aliases limit of ${limits.maxAliases} exceeded (fragments expanded).`) }),
    costLimitRule({
      maxCost: limits.maxFields,
      objectCost: 1,
      scalarCost: 1,
      depthCostFactor: 1,
      flattenFragments: true,
      ignoreIntrospection: false,
      propagateOnRejection: false,
      onReject: report('maxFields', `Fields limit of ${limits.maxFields} exceeded (aliases and fragments expanded, list sizes multiplied).`),
    }),
  ];
}
