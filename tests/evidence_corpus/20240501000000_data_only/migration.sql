-- Data fix: roll numbers were typed into legacyRoll on some hosts.
UPDATE "Student" SET "rollNumber" = CAST(CAST("legacyRoll" AS INTEGER) AS TEXT) WHERE "rollNumber" IS NULL;

INSERT INTO "AuditLog" ("action") VALUES ('backfill roll numbers; see ticket 42');
