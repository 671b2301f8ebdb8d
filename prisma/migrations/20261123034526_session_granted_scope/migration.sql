-- AlterTable
ALTER TABLE "sessions" ADD COLUMN     "granted_scope" TEXT;
