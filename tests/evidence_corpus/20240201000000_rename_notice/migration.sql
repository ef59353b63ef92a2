-- Notice becomes Announcement; Prisma writes renames by hand-edited migration (--create-only).
ALTER TABLE "Notice" RENAME TO "Announcement";

-- RenameConstraint
ALTER TABLE "Announcement" RENAME CONSTRAINT "Notice_pkey" TO "Announcement_pkey";

-- RenameForeignKey
ALTER TABLE "Announcement" RENAME CONSTRAINT "Notice_schoolId_fkey" TO "Announcement_schoolId_fkey";

-- AlterTable
ALTER TABLE "Announcement" RENAME COLUMN "body" TO "content";

-- RenameIndex
ALTER INDEX "Payment_feeId_idx" RENAME TO "Payment_fee_idx";
