-- AlterTable
ALTER TABLE "signing_keys" ADD COLUMN     "signs_from" TIMESTAMPTZ(3);
