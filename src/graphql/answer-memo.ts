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
 * dropped with the principal (a WeakMap): at most TOKEN_CACHE_MAX_ENTRIES times that in all.
 */
import type { Principal } from '../accounts/principal.ts';

export const MAX_ANSWER_LENGTH = 2048;
export const SLOTS_PER_PRINCIPAL = 2;

interface Slots<K> {
  keys: K[];
  texts: string[];
  /** Where the next new answer goes once every slot is taken. */
  next: number;
}

export class AnswerMemo<K extends object> {
  private readonly anonymous = new WeakMap<K, string>();
  private readonly byPrincipal = new WeakMap<Principal, Slots<K>>();

  get(key: K, principal: Principal | null): string | undefined {
    if (principal === null) return this.anonymous.get(key);
    const slots = this.byPrincipal.get(principal);
    if (!slots) return undefined;
    const i = slots.keys.indexOf(key);
    return i === -1 ? undefined : slots.texts[i];
  }

  set(key: K, principal: Principal | null, text: string): void {
    if (text.length > MAX_ANSWER_LENGTH) return;
    if (principal === null) {
      this.anonymous.set(key, text);
      return;
    }
    let slots = this.byPrincipal.get(principal);
    if (!slots) this.byPrincipal.set(principal, (slots = { keys: [], texts: [], next: 0 }));
    const i = slots.keys.indexOf(key);
    if (i !== -1) {
      slots.texts[i] = text;
    } else if (slots.keys.length < SLOTS_PER_PRINCIPAL) {
      slots.keys.push(key);
      slots.texts.push(text);
    } else {
      slots.keys[slots.next] = key;
      slots.texts[slots.next] = text;
      slots.next = (slots.next + 1) % SLOTS_PER_PRINCIPAL;
    }
  }
}
