-- Move "reference" into "externalRef" through a temporary column.
ALTER TABLE "Payment" ADD COLUMN "tmp_ref" TEXT;

UPDATE "Payment" SET "tmp_ref" = "reference";

ALTER TABLE "Payment" ADD COLUMN "externalRef" TEXT;

UPDATE "Payment" SET "externalRef" = "tmp_ref";

ALTER TABLE "Payment" DROP COLUMN "tmp_ref";

-- DropIndex
DROP INDEX IF EXISTS "Payment_reference_idx";

-- CreateExtension
CREATE EXTENSION IF NOT EXISTS "pg_trgm";
