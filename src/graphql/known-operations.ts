/**
 * Query operations Apollo Server has already resolved, and answering them again without it.
 *
 * Apollo resolves an operation once per document: it parses the text, validates it (graphql-js
 * rules and ours, operation-limits.ts), picks the operation by operationName, then executes it.
 * A document it accepted is remembered here (by operationName and exact text, with its parsed
 * document and the schema it ran against). A later request for it is answered here by
 * graphql-js `execute` alone, sparing it what Apollo does around execution on every request
 * (measured: about a third of an anonymous `{ me { email } }`: hashing the text to find the
 * cached document, negotiating the Accept header twice, dispatching plugin hooks, building its
 * request and response heads).
 *
 * Only when the answer is byte for byte Apollo's (`match`):
 * - POST, a JSON body that is one object (no batch), `Content-Type: application/json` (with
 *   `charset=utf-8` at most: anything else goes through Apollo's CSRF prevention);
 * - `query` a remembered text for this `operationName`; no `extensions` (persisted queries are
 *   Apollo's); `variables` absent, null or an object (anything else is Apollo's 400);
 * - the Accept header is one Apollo has already answered a 200 for, with no header but its
 *   content type (`learn`): the content type is Apollo's own choice, never ours;
 * - the result has no errors (`execute`: else undefined, and Apollo answers the request, so
 *   error formatting, status codes and the `invalid`/`error` metrics stay Apollo's). Only
 *   queries are remembered, and queries do not write: running one again is safe.
 * A query whose answer depends on the request's principal alone (principal-pure.ts) has its
 * answer remembered per principal object (answer-memo.ts) and given again without executing.
 * Mutations are never remembered (the rate limit and the audit run in Apollo's hooks), nor is a
 * document that failed to parse or validate. Bounded: at most MAX_KNOWN_OPERATIONS texts of at
 * most MAX_KNOWN_QUERY_LENGTH characters, MAX_KNOWN_DOCUMENT_CHARS characters in all (a parsed
 * document takes about 100 bytes per character); past either, the operation not asked for
 * longest makes room (second chance: one-off documents go before those in use);
 * MAX_ACCEPT_VALUES Accept values. After `close()` (shutdown) every request goes to Apollo, which refuses it as stopped.
 */
import { execute, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { GraphQLMetrics, GraphQLOutcome } from '../metrics/metrics.ts';
import type { AnsweredWithoutHooks, GraphQLContext } from './context.ts';
import { dependsOnlyOnPrincipal } from './principal-pure.ts';
import { AnswerMemo } from './answer-memo.ts';

/** Documents of at most this many characters are remembered, ... */
export const MAX_KNOWN_QUERY_LENGTH = 4096;
/** ... at most this many of them, ... */
export const MAX_KNOWN_OPERATIONS = 1000;
/** ... and at most this many characters of text in all (their parsed documents are kept). */
export const MAX_KNOWN_DOCUMENT_CHARS = 256 * 1024;
/** Accept header values whose content type is remembered (each at most MAX_ACCEPT_LENGTH characters). */
export const MAX_ACCEPT_VALUES = 64;
const MAX_ACCEPT_LENGTH = 512;
/**
 * The key of a request without an Accept header: not '', which is a header value of its own,
 * learnt from Apollo's answer to it like any other. No header value holds a newline.
 */
const NO_ACCEPT = '\n';

/** The Content-Type values of a request this module answers (lower-cased). */
const JSON_CONTENT_TYPES: ReadonlySet<string> = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']);

/**
 * How an operation is counted: `rate_limited` for a 429, `invalid` when the document never
 * resolved to an operation, `error` when the response has top-level errors, else `success`.
 */
export function graphqlOutcome(status: number | undefined, resolved: boolean, topLevelErrors: boolean): GraphQLOutcome {
  return status === 429 ? 'rate_limited' : !resolved ? 'invalid' : topLevelErrors ? 'error' : 'success';
}

/** A query (or subscription) operation Apollo resolved: a document that parsed and validated, and the operation its operationName picks. */
export class KnownOperation implements AnsweredWithoutHooks {
  /** Asked for since the eviction sweep last passed it (KnownOperations.evictOne). */
  used = false;
  /**
   * What its remembered answers are keyed by (answer-memo.ts): an empty object, so that the
   * answers a principal keeps hold no document once the operation is evicted.
   */
  readonly memoKey: object = {};

  constructor(
    /** Apollo's operationName: the operation's name, null when it has none. */
    readonly name: string | null,
    /** What the request log shows: the name, else the operation type. */
    readonly logName: string,
    /** The parsed, validated document. */
    readonly document: DocumentNode,
    readonly schema: GraphQLSchema,
    private readonly metrics: GraphQLMetrics | undefined,
    /** Its answer depends on the request's principal alone (principal-pure.ts): remembered per principal. */
    readonly principalPure: boolean = false,
  ) {}

  /**
   * Counts the operation as our Apollo hook would have: `error` when the response has
   * top-level errors (Apollo writes them first: `{"errors":[…`), else `success`.
   */
  answered(status: number, body: string | undefined): void {
    this.metrics?.graphqlOperation(this.name, graphqlOutcome(status, true, body?.startsWith('{"errors":[{') ?? false));
  }
}

/** A request `match` found answerable without Apollo. */
export interface KnownRequest {
  operation: KnownOperation;
  /** The content type Apollo answers this request's Accept header with. */
  contentType: string;
  operationName: string | undefined;
  variables: Record<string, unknown> | undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export class KnownOperations {
  /** By operationName (none: ''), then by document text: no key string built per request. */
  private readonly known = new Map<string, Map<string, KnownOperation>>();
  /** Every remembered operation with its keys, oldest (or longest unused, see evictOne) first. */
  private readonly order = new Map<KnownOperation, { name: string; query: string }>();
  private documentChars = 0;
  /** Accept header value (absent: NO_ACCEPT) → the content type Apollo answered it with. */
  private readonly contentTypes = new Map<string, string>();
  private open = true;
  private readonly answers = new AnswerMemo();

  constructor(private readonly metrics: GraphQLMetrics | undefined) {}

  /** The operation a request for `query` with `operationName` resolves to, if Apollo resolved it before. */
  find(query: unknown, operationName: string | undefined): KnownOperation | undefined {
    if (typeof query !== 'string' || query.length > MAX_KNOWN_QUERY_LENGTH) return undefined;
    const operation = this.known.get(operationName ?? '')?.get(query);
    if (operation && !operation.used) operation.used = true;
    return operation;
  }

  /**
   * Remembers a query operation Apollo resolved (called from its didResolveOperation hook),
   * making room (evictOne) when MAX_KNOWN_OPERATIONS or MAX_KNOWN_DOCUMENT_CHARS is reached.
   */
  remember(query: unknown, operationName: string | undefined, resolved: { name: string | null; logName: string; document: DocumentNode; schema: GraphQLSchema }): void {
    if (typeof query !== 'string' || query.length > MAX_KNOWN_QUERY_LENGTH) return;
    const name = operationName ?? '';
    if (this.known.get(name)?.has(query)) return;
    while (this.order.size > 0 && (this.order.size >= MAX_KNOWN_OPERATIONS || this.documentChars + query.length > MAX_KNOWN_DOCUMENT_CHARS)) this.evictOne();
    let byQuery = this.known.get(name);
    if (!byQuery) this.known.set(name, (byQuery = new Map()));
    const operation = new KnownOperation(resolved.name, resolved.logName, resolved.document, resolved.schema, this.metrics, dependsOnlyOnPrincipal(resolved.schema, resolved.document));
    byQuery.set(query, operation);
    this.order.set(operation, { name, query });
    this.documentChars += query.length;
  }

  /**
   * Forgets the oldest operation not asked for since it was last looked at here: one that was
   * (find) gets a second chance (flag cleared, moved to the end), so documents in use stay and
   * one-off ones go first. Only called with at least one operation remembered.
   */
  private evictOne(): void {
    for (const [operation, where] of this.order) {
      this.order.delete(operation);
      if (operation.used) {
        operation.used = false;
        this.order.set(operation, where);
        continue;
      }
      const byQuery = this.known.get(where.name)!;
      byQuery.delete(where.query);
      if (byQuery.size === 0) this.known.delete(where.name);
      this.documentChars -= where.query.length;
      return;
    }
  }

  /** How many operations are remembered (for tests). */
  get size(): number {
    return this.order.size;
  }

  /**
   * Remembers the content type Apollo chose for an Accept header, from a response it gave: a
   * complete 200 whose only header is its content type.
   */
  learn(accept: string | undefined, status: number, headers: ReadonlyMap<string, string>): void {
    const key = accept ?? NO_ACCEPT;
    if (status !== 200 || headers.size !== 1 || key.length > MAX_ACCEPT_LENGTH || this.contentTypes.has(key) || this.contentTypes.size >= MAX_ACCEPT_VALUES) return;
    const contentType = headers.get('content-type');
    if (contentType !== undefined) this.contentTypes.set(key, contentType);
  }

  /** The request, if it can be answered without Apollo exactly as Apollo would (see the module header). */
  match(method: string | undefined, body: unknown, contentType: string | undefined, accept: string | undefined): KnownRequest | undefined {
    if (!this.open || method !== 'POST' || !isRecord(body) || contentType === undefined) return undefined;
    const responseType = this.contentTypes.get(accept ?? NO_ACCEPT);
    if (responseType === undefined || !JSON_CONTENT_TYPES.has(contentType.toLowerCase())) return undefined;
    const { operationName, variables, extensions } = body;
    if (extensions !== undefined && extensions !== null) return undefined;
    if (variables !== undefined && variables !== null && !isRecord(variables)) return undefined;
    if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') return undefined;
    // "" names no operation (Apollo answers an error), yet it is the key of unnamed requests.
    if (operationName === '') return undefined;
    const name = operationName ?? undefined;
    const operation = this.find(body['query'], name);
    if (!operation) return undefined;
    return { operation, contentType: responseType, operationName: name, variables: variables ?? undefined };
  }

  /**
   * Runs a matched request as Apollo would (graphql-js execute, no root value, the default
   * field resolver) and returns Apollo's body for it, or undefined when the result has errors:
   * then Apollo must answer the request. A principal-pure operation's answer is remembered for
   * the request's principal (answer-memo.ts) and given again without running it.
   */
  async execute(request: KnownRequest, contextValue: GraphQLContext): Promise<string | undefined> {
    const { operation } = request;
    if (operation.principalPure) {
      const principal = contextValue.principalSettled();
      const remembered = principal === undefined ? undefined : this.answers.get(operation.memoKey, principal);
      if (remembered !== undefined) return remembered;
    }
    const result = await execute({
      schema: operation.schema,
      document: operation.document,
      contextValue,
      variableValues: request.variables,
      operationName: request.operationName,
    });
    if (result.errors) return undefined;
    // Apollo's order (errors, data, extensions) and its stringifyResult: JSON plus a newline.
    const text = JSON.stringify({ data: result.data, extensions: result.extensions }) + '\n';
    if (operation.principalPure) {
      // The principal the answer was computed from (a request's verdict never changes once known).
      const principal = contextValue.principalSettled();
      if (principal !== undefined) this.answers.set(operation.memoKey, principal, text);
    }
    return text;
  }

  /** From now on every request goes to Apollo (shutdown). */
  close(): void {
    this.open = false;
  }
}
