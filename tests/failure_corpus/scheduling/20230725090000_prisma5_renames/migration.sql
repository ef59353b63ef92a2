-- RenameForeignKey
ALTER TABLE "EventKind" RENAME CONSTRAINT "EventKind_ownerId_fkey" TO "EventKind_hostId_fkey";

-- RenameIndex
ALTER INDEX "EventKind_ownerId_slug_key" RENAME TO "EventKind_hostId_slug_key";

-- RenameIndex
ALTER INDEX "Reservation_startTime_endTime_idx" RENAME TO "Reservation_startTime_endTime_key";

-- AlterTable
ALTER TABLE "EventKind" RENAME COLUMN "ownerId" TO "hostId";
