-- The author wanted the table committed even if the backfill below fails.
BEGIN;

-- CreateTable
CREATE TABLE "FeeReminder" (
    "id" SERIAL NOT NULL,
    "feeId" INTEGER NOT NULL,
    "sentAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "FeeReminder_pkey" PRIMARY KEY ("id")
);

COMMIT;

-- AlterTable
ALTER TABLE "Fee" ADD COLUMN "reminders" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "Fee" ALTER COLUMN "amount" SET DATA TYPE DECIMAL(12,2);

-- AddForeignKey
ALTER TABLE "FeeReminder" ADD CONSTRAINT "FeeReminder_feeId_fkey" FOREIGN KEY ("feeId") REFERENCES "Fee"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
