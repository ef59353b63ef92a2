-- AlterTable
ALTER TABLE "Workspace" ADD COLUMN     "shortKey" TEXT;

-- Backfill
UPDATE "Workspace" SET "shortKey" = substr(md5("id"::text), 1, 8) WHERE "shortKey" IS NULL;

-- AlterTable
ALTER TABLE "Workspace" ALTER COLUMN "shortKey" SET NOT NULL;

-- CreateIndex
CREATE UNIQUE INDEX "Workspace_shortKey_key" ON "Workspace"("shortKey");
