-- CreateView
CREATE OR REPLACE VIEW "metrics"."DailyEvents" AS
  SELECT "teamId", date_trunc('day', "createdAt") AS "day", count(*) AS "events"
  FROM "metrics"."Event" GROUP BY 1, 2;

-- Comment
COMMENT ON TABLE "metrics"."Event" IS 'One row per tracked event';

-- AlterTable
ALTER TABLE "core"."Member" ALTER COLUMN "role" SET DEFAULT 'member';

-- RenameIndex
ALTER INDEX "core"."Team_accessCode_key" RENAME TO "Team_access_code_key";

-- AlterTable
ALTER TABLE "core"."Team" RENAME CONSTRAINT "Team_pkey" TO "team_pkey";
