/*
  Warnings:

  - The values [legacy] on the enum `EventType` will be removed. If these variants are still used in the database, this will fail.
  - You are about to drop the `LegacyHit` table. If the table is not empty, all the data it contains will be lost.

*/
-- DropTable
DROP TABLE "metrics"."LegacyHit" CASCADE;

-- Delete the events that still use the value before it goes
DELETE FROM "metrics"."Event" WHERE "type" = 'legacy';

-- AlterEnum
BEGIN;
CREATE TYPE "metrics"."EventType_new" AS ENUM ('pageview', 'custom');
ALTER TABLE "metrics"."Event" ALTER COLUMN "type" DROP DEFAULT;
ALTER TABLE "metrics"."Event" ALTER COLUMN "type" TYPE "metrics"."EventType_new" USING ("type"::text::"metrics"."EventType_new");
ALTER TYPE "metrics"."EventType" RENAME TO "EventType_old";
ALTER TYPE "metrics"."EventType_new" RENAME TO "EventType";
DROP TYPE "metrics"."EventType_old";
ALTER TABLE "metrics"."Event" ALTER COLUMN "type" SET DEFAULT 'pageview';
COMMIT;

-- AlterTable
ALTER TABLE "core"."Member" ALTER COLUMN "role" DROP DEFAULT;

-- DropEnum (the role moves to a plain string)
ALTER TABLE "core"."Member" ALTER COLUMN "role" TYPE TEXT USING "role"::text;

-- DropEnum
DROP TYPE "core"."MemberRole";
