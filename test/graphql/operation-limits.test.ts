import { describe, expect, it } from 'vitest';
import { Kind, parse, type FragmentDefinitionNode, type OperationDefinitionNode } from 'graphql';
import { rootFieldNames } from '../../src/graphql/operation-limits.ts';

function roots(doc: string, cap = 1000): string[] {
  const parsed = parse(doc);
  const op = parsed.definitions.find((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)!;
  const fragments = new Map(parsed.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]));
  return rootFieldNames(op.selectionSet, (n) => fragments.get(n), cap);
}

describe('rootFieldNames', () => {
  it.each([
    ['mutation { a b }', ['a', 'b']],
    ['mutation { x: a y: a }', ['a', 'a']],
    ['mutation { ... on Mutation { a b } c }', ['a', 'b', 'c']],
    ['mutation { ...F } fragment F on Mutation { a ...G } fragment G on Mutation { b }', ['a', 'b']],
    ['mutation { ...F ...F } fragment F on Mutation { a }', ['a', 'a']],
    ['mutation { ...Missing a }', ['a']],
    ['mutation { ...F } fragment F on Mutation { a ...F }', ['a']],
    ['mutation { a { b c } }', ['a']],
  ])('%s → %j', (doc, expected) => {
    expect(roots(doc)).toEqual(expected);
  });

  it('stops counting past the cap, also for an exponential fragment bomb, in linear time', () => {
    const levels = 40;
    const defs = Array.from({ length: levels }, (_, i) => `fragment F${i} on Mutation { ...F${i + 1} ...F${i + 1} }`).join(' ');
    const doc = `mutation { ...F0 } ${defs} fragment F${levels} on Mutation { a }`;
    const started = performance.now();
    expect(roots(doc, 10)).toHaveLength(11);
    expect(performance.now() - started).toBeLessThan(500);
  });
});
