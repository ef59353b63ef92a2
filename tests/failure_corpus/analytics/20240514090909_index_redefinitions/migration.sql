-- DropIndex
DROP INDEX "core"."Member_teamId_username_key";

-- DropIndex
DROP INDEX "metrics"."Event_teamId_createdAt_idx";

-- CreateIndex
CREATE UNIQUE INDEX "Member_teamId_username_key" ON "core"."Member"("teamId", lower("username"));

-- CreateIndex
CREATE INDEX "Event_teamId_createdAt_idx" ON "metrics"."Event" USING BRIN ("teamId", "createdAt");

-- AlterTable
ALTER TABLE "core"."Team" ALTER COLUMN "name" TYPE VARCHAR(100);
