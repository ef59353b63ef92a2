-- AlterEnum
ALTER TYPE "BookingStatus" ADD VALUE 'AWAITING_PAYMENT';

-- AlterEnum
ALTER TYPE "SchedulingType" ADD VALUE 'MANAGED' BEFORE 'COLLECTIVE';

-- AlterTable
ALTER TABLE "EventKind" ADD COLUMN     "requiresConfirmation" BOOLEAN NOT NULL DEFAULT false;
