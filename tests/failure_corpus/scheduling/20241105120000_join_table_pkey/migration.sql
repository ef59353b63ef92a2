-- AlterTable
ALTER TABLE "_EventKindToHost" ADD CONSTRAINT "_EventKindToHost_AB_pkey" PRIMARY KEY ("A", "B");

-- DropIndex
DROP INDEX "_EventKindToHost_AB_unique";
