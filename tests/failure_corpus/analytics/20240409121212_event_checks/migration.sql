-- Added by hand: a check Prisma cannot express
ALTER TABLE "metrics"."Event" ADD CONSTRAINT "Event_urlPath_check" CHECK (char_length("urlPath") > 0);

-- CreateSequence
CREATE SEQUENCE "metrics"."report_number_seq" START WITH 1000 INCREMENT BY 1;

-- AlterTable
ALTER TABLE "metrics"."Event" ADD COLUMN     "reportNumber" INTEGER NOT NULL DEFAULT nextval('"metrics"."report_number_seq"'),
ADD COLUMN     "pathDepth" INTEGER GENERATED ALWAYS AS (array_length(string_to_array("urlPath", '/'), 1)) STORED;

-- AlterSequence
ALTER SEQUENCE "metrics"."report_number_seq" OWNED BY "metrics"."Event"."reportNumber";

-- AddForeignKey (deferred: events are imported before their team in bulk loads)
ALTER TABLE "metrics"."Event" DROP CONSTRAINT "Event_teamId_fkey";

-- AddForeignKey
ALTER TABLE "metrics"."Event" ADD CONSTRAINT "Event_teamId_fkey" FOREIGN KEY ("teamId") REFERENCES "core"."Team"("id") ON DELETE RESTRICT ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED;
