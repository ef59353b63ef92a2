-- Renamed by hand (--create-only) so the rows survive: Prisma would have dropped and recreated the table.
ALTER TABLE "Domain" RENAME TO "Site";

-- RenamePrimaryKey
ALTER TABLE "Site" RENAME CONSTRAINT "Domain_pkey" TO "Site_pkey";

-- RenameForeignKey
ALTER TABLE "Site" RENAME CONSTRAINT "Domain_workspaceId_fkey" TO "Site_workspaceId_fkey";

-- AlterTable
ALTER TABLE "Site" RENAME COLUMN "name" TO "hostname";

-- AlterTable
ALTER TABLE "Site" RENAME COLUMN "lastChecked" TO "lastCheckedAt";

-- RenameIndex
ALTER INDEX "Domain_name_key" RENAME TO "Site_hostname_key";

-- RenameIndex
ALTER INDEX "Domain_workspaceId_idx" RENAME TO "Site_workspaceId_idx";
