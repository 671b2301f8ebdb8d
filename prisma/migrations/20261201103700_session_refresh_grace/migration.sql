-- AlterTable
ALTER TABLE "sessions" ADD COLUMN     "previous_refresh_token_id" TEXT,
ADD COLUMN     "provider_refreshed_at" TIMESTAMPTZ(3),
ADD COLUMN     "refresh_lease_holder" TEXT,
ADD COLUMN     "refresh_lease_until" TIMESTAMPTZ(3),
ADD COLUMN     "rotated_at" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "used_logout_tokens" (
    "issuer" TEXT NOT NULL,
    "jti" TEXT NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "used_logout_tokens_pkey" PRIMARY KEY ("issuer","jti")
);

-- CreateIndex
CREATE INDEX "used_logout_tokens_expires_at_idx" ON "used_logout_tokens"("expires_at");

-- CreateIndex
CREATE INDEX "sessions_expires_at_idx" ON "sessions"("expires_at");
