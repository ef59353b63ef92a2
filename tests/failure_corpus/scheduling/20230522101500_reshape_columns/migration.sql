/*
  Warnings:

  - You are about to drop the column `theme` on the `Host` table. All the data in the column will be lost.
  - You are about to drop the column `avatar` on the `Host` table. All the data in the column will be lost.
  - You are about to drop the column `currency` on the `EventKind` table. All the data in the column will be lost.

*/
-- AlterTable
ALTER TABLE "Host" DROP COLUMN "theme",
ADD COLUMN     "theme" JSONB NOT NULL DEFAULT '{}';

-- AlterTable
ALTER TABLE "Host" DROP COLUMN "avatar";

-- AlterTable
ALTER TABLE "Host" RENAME COLUMN "name" TO "avatar";

-- AlterTable
ALTER TABLE "EventKind" DROP COLUMN "currency",
ADD COLUMN     "currency" VARCHAR(3) NOT NULL DEFAULT 'usd',
ADD COLUMN     "metadata" JSONB;
