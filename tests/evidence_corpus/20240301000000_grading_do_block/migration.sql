-- A hand-written guard: the type may exist on hosts patched by hand.
DO $$
BEGIN
    CREATE TYPE "Grade" AS ENUM ('A', 'B', 'C', 'D', 'F');
EXCEPTION
    WHEN duplicate_object THEN null;
END $$;

-- CreateTable
CREATE TABLE "ReportCard" (
    "id" SERIAL NOT NULL,
    "studentId" INTEGER NOT NULL,
    "term" TEXT NOT NULL,
    "grade" "Grade" NOT NULL,
    "remarks" TEXT DEFAULT 'n/a; see teacher',

    CONSTRAINT "ReportCard_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ReportCard_studentId_term_key" ON "ReportCard"("studentId", "term");

-- AddForeignKey
ALTER TABLE "ReportCard" ADD CONSTRAINT "ReportCard_studentId_fkey" FOREIGN KEY ("studentId") REFERENCES "Student"("id") ON DELETE CASCADE ON UPDATE CASCADE;
