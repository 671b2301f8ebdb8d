/**
 * Staged key rotation, the rule shared by our token-signing keys (tokens/keyring.ts) and the
 * connections' client-assertion keys (plugins/openid-connect/client-keys.ts): a key is published
 * at once and signs from `signsFrom`, when the keys it replaces retire. Decided from the clock,
 * so every process holding the same rows switches at the same instant.
 */

export interface StagedKey {
  signsFrom: Date;
  retiredAt: Date | null;
}

/**
 * The key that signs at `now`: of the keys whose `signsFrom` has come, the latest that has not
 * retired; when all of them have retired (a rotation not loaded yet), the latest of them (it
 * still verifies everywhere).
 */
export function currentSigner<K extends StagedKey>(keys: Iterable<K>, now: number): K | undefined {
  let latest: K | undefined;
  let active: K | undefined;
  for (const k of keys) {
    if (k.signsFrom.getTime() > now) continue;
    if (!latest || k.signsFrom > latest.signsFrom) latest = k;
    if ((k.retiredAt === null || k.retiredAt.getTime() > now) && (!active || k.signsFrom > active.signsFrom)) active = k;
  }
  return active ?? latest;
}
