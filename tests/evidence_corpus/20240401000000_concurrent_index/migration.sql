-- CreateIndex (big table: build it without blocking writes)
CREATE INDEX CONCURRENTLY "Attendance_day_status_idx" ON "Attendance"("day", "status");
