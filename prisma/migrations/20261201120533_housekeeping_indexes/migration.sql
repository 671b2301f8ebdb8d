-- CreateIndex
CREATE INDEX "sessions_revoked_at_idx" ON "sessions"("revoked_at");

-- CreateIndex
CREATE INDEX "signing_keys_verify_until_idx" ON "signing_keys"("verify_until");
