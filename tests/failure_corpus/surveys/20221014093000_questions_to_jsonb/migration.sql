-- AlterTable: keep the questions, now as JSON
ALTER TABLE "Survey" ALTER COLUMN "questions" DROP DEFAULT;

-- AlterTable
ALTER TABLE "Survey" ALTER COLUMN "questions" TYPE JSONB USING "questions"::jsonb;

-- AlterTable
ALTER TABLE "Survey" ALTER COLUMN "questions" SET DEFAULT '[]';

-- AlterTable
ALTER TABLE "Response" ADD COLUMN     "ttc" JSONB;

-- Backfill time-to-complete from the old meta blob
UPDATE "Response" SET "ttc" = "meta" -> 'ttc' WHERE "meta" ? 'ttc';

-- AlterTable
ALTER TABLE "Response" ALTER COLUMN "ttc" SET DEFAULT '{}',
ALTER COLUMN "ttc" SET NOT NULL;
