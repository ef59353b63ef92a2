-- Hand-written: all or nothing, even on an engine that sends statements one at a time
BEGIN;

-- AlterTable
ALTER TABLE "ShortLink" ADD COLUMN     "title" TEXT;

-- Backfill
UPDATE "ShortLink" SET "title" = "key" WHERE "title" IS NULL;

-- CreateIndex
CREATE INDEX "ShortLink_title_idx" ON "ShortLink"("title");

COMMIT;
