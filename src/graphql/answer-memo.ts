/**
 * Answers of principal-pure documents (principal-pure.ts), remembered per principal object.
 *
 * Such a document has one answer per principal: the same `{ me { email } }` sent again with
 * the same token is answered with the text it got last time, without running graphql-js
 * (about 4 us of an authenticated request's CPU, measured). The principal object is the key:
 * the authenticator gives a request the object it cached for the token, and replaces the object
 * (never changes it) when anything about the user or the grant changes or the cache entry
 * expires, so a remembered answer can never outlive what it was computed from. A verdict that is
 * not known without waiting, or an expired token, is never looked up (the request runs as
 * usual), and only answers without errors are remembered (the caller's rule).
 *
 * Bounded: an anonymous answer per operation (operations are bounded by known-operations.ts);
 * per principal at most SLOTS_PER_PRINCIPAL answers of at most MAX_ANSWER_LENGTH characters,
 * dropped with the principal (a WeakMap), and at most `budget` characters (MAX_PRINCIPAL_CHARS by
 * default) over all principals: past it, new answers are not remembered until principals the
 * authenticator dropped are collected (a FinalizationRegistry gives their characters back).
 */
import type { Principal } from '../accounts/principal.ts';

export const MAX_ANSWER_LENGTH = 2048;
export const SLOTS_PER_PRINCIPAL = 2;
/** About 16 MB of answers (two bytes per character at worst). */
export const MAX_PRINCIPAL_CHARS = 8_000_000;

interface Slots {
  /** The operations' memo keys (known-operations.ts: one empty object per operation). */
  keys: object[];
  texts: string[];
  /** Where the next new answer goes once every slot is taken. */
  next: number;
  /** Characters in `texts` (what collecting the principal gives back to the budget). */
  held: { chars: number };
}

export class AnswerMemo {
  private readonly anonymous = new WeakMap<object, string>();
  private readonly byPrincipal = new WeakMap<Principal, Slots>();
  /** Characters remembered for principals not yet collected. */
  private chars = 0;
  private readonly collected = new FinalizationRegistry<{ chars: number }>((held) => {
    this.chars -= held.chars;
  });

  constructor(private readonly budget: number = MAX_PRINCIPAL_CHARS) {}

  /** Characters remembered for principals (for tests). */
  get principalChars(): number {
    return this.chars;
  }

  get(key: object, principal: Principal | null): string | undefined {
    if (principal === null) return this.anonymous.get(key);
    const slots = this.byPrincipal.get(principal);
    if (!slots) return undefined;
    const i = slots.keys.indexOf(key);
    return i === -1 ? undefined : slots.texts[i];
  }

  set(key: object, principal: Principal | null, text: string): void {
    if (text.length > MAX_ANSWER_LENGTH) return;
    if (principal === null) {
      this.anonymous.set(key, text);
      return;
    }
    let slots = this.byPrincipal.get(principal);
    const existing = slots ? slots.keys.indexOf(key) : -1;
    const slot = !slots ? 0 : existing !== -1 ? existing : slots.keys.length < SLOTS_PER_PRINCIPAL ? slots.keys.length : slots.next;
    const replaced = slots?.texts[slot]?.length ?? 0;
    if (this.chars + text.length - replaced > this.budget) return;
    if (!slots) {
      slots = { keys: [], texts: [], next: 0, held: { chars: 0 } };
      this.byPrincipal.set(principal, slots);
      this.collected.register(principal, slots.held);
    }
    if (existing === -1 && slots.keys.length >= SLOTS_PER_PRINCIPAL) slots.next = (slots.next + 1) % SLOTS_PER_PRINCIPAL;
    slots.keys[slot] = key;
    slots.texts[slot] = text;
    slots.held.chars += text.length - replaced;
    this.chars += text.length - replaced;
  }
}
