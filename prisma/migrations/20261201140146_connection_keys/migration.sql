-- CreateTable
CREATE TABLE "connection_keys" (
    "plugin_id" TEXT NOT NULL,
    "kid" TEXT NOT NULL,
    "alg" TEXT NOT NULL,
    "public_jwk" JSONB NOT NULL,
    "private_jwk_encrypted" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "signs_from" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "retired_at" TIMESTAMPTZ(3),

    CONSTRAINT "connection_keys_pkey" PRIMARY KEY ("plugin_id","kid")
);

-- AddForeignKey
ALTER TABLE "connection_keys" ADD CONSTRAINT "connection_keys_plugin_id_fkey" FOREIGN KEY ("plugin_id") REFERENCES "plugin_configurations"("id") ON DELETE CASCADE ON UPDATE CASCADE;
