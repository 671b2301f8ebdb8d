/**
 * Which query documents are answered from the request's principal alone.
 *
 * A field listed in PRINCIPAL_PURE_FIELDS has a resolver that, given a parent produced by
 * listed fields, computes its value from that parent, its literal arguments and the request's
 * principal, and from nothing else: no database, no provider, no configuration, no clock.
 * A document all of whose fields are listed (or `__typename`) and that declares no variables
 * therefore has one answer per principal (and one for anonymous requests) for as long as that
 * principal object lives: the authenticator replaces it, never changes it, when the user or
 * the token's grant changes (auth/authenticate.ts). answer-memo.ts remembers such answers.
 *
 * The list is deliberately narrow: object-type coordinates only (a field asked for through an
 * interface is not listed, as other implementations of it may read the database), and only
 * what `me` reaches. test/graphql/principal-pure.test.ts runs every listed field with a context
 * whose services throw when touched.
 */
import { BREAK, Kind, TypeInfo, visit, visitWithTypeInfo, type ASTNode, type DocumentNode, type FragmentDefinitionNode, type GraphQLSchema } from 'graphql';

export const PRINCIPAL_PURE_FIELDS: ReadonlySet<string> = new Set([
  'Query.me',
  // Properties of the principal's user (default resolvers, or computed from the row alone).
  'User.id',
  'User.email',
  'User.firstName',
  'User.lastName',
  'User.isStaff',
  'User.isActive',
  'User.isConfirmed',
  'User.lastLogin',
  'User.dateJoined',
  'User.updatedAt',
  'User.externalReference',
  'User.metadata',
  'User.metafield',
  'User.metafields',
  // `me`'s user carries the permissions its token grants (users.ts userNode): no lookup.
  'User.userPermissions',
  'User.restrictedAccessToChannels',
  'UserPermission.code',
  'UserPermission.name',
  'MetadataItem.key',
  'MetadataItem.value',
]);

/**
 * Commerce data this server does not store: always null or an empty list, whoever asks. What
 * is selected under them never runs, so it is not inspected (the Saleor Dashboard asks for
 * `avatar { url }` and `accessibleChannels { ...Channel }` with its user).
 */
export const ALWAYS_EMPTY_FIELDS: ReadonlySet<string> = new Set([
  'User.avatar',
  'User.accessibleChannels',
  'User.addresses',
  'User.defaultShippingAddress',
  'User.defaultBillingAddress',
]);

/**
 * True when every field the operations of `document` select (through the fragments they
 * spread) is in PRINCIPAL_PURE_FIELDS (or is `__typename`), or in ALWAYS_EMPTY_FIELDS (then
 * what it selects is not looked at), and no operation declares variables. `document` must have
 * validated against `schema` (so it has no unused fragment).
 */
export function dependsOnlyOnPrincipal(schema: GraphQLSchema, document: DocumentNode): boolean {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const typeInfo = new TypeInfo(schema);
  const reached = new Set<string>();
  const toVisit: ASTNode[] = [];
  let pure = true;
  const impure = () => {
    pure = false;
    return BREAK;
  };
  const visitor = visitWithTypeInfo(typeInfo, {
    OperationDefinition: (node) => (node.operation !== 'query' || (node.variableDefinitions?.length ?? 0) > 0 ? impure() : undefined),
    Field(node) {
      if (node.name.value === '__typename') return undefined;
      const parent = typeInfo.getParentType();
      const coordinate = parent ? `${parent.name}.${node.name.value}` : '';
      if (ALWAYS_EMPTY_FIELDS.has(coordinate)) return false;
      return PRINCIPAL_PURE_FIELDS.has(coordinate) ? undefined : impure();
    },
    FragmentSpread(node) {
      const fragment = fragments.get(node.name.value);
      if (!fragment) return impure();
      if (!reached.has(fragment.name.value)) {
        reached.add(fragment.name.value);
        toVisit.push(fragment);
      }
      return undefined;
    },
    // @include/@skip (with a literal: no variables) are fine; a directive whose effect we do
    // not know is not.
    Directive: (node) => (node.name.value === 'include' || node.name.value === 'skip' ? undefined : impure()),
  });
  for (const d of document.definitions) {
    if (d.kind === Kind.OPERATION_DEFINITION) toVisit.push(d);
    else if (d.kind !== Kind.FRAGMENT_DEFINITION) return false;
  }
  for (let node = toVisit.pop(); node && pure; node = toVisit.pop()) visit(node, visitor);
  return pure;
}
