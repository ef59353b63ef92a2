-- AlterTable
ALTER TABLE "School" ADD COLUMN "slug" TEXT;

-- Backfill: every school gets a slug from its code.
UPDATE "School" SET "slug" = lower("code") WHERE "slug" IS NULL;

-- AlterTable
ALTER TABLE "School" ALTER COLUMN "slug" SET NOT NULL;

-- CreateIndex
CREATE UNIQUE INDEX "School_slug_key" ON "School"("slug");
