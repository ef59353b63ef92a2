-- A large table: built without locking writes (Prisma runs this file statement by statement)
CREATE INDEX CONCURRENTLY "ShortLink_url_idx" ON "ShortLink" USING HASH ("url");

-- CreateIndex
CREATE INDEX CONCURRENTLY "ShortLink_tags_idx" ON "ShortLink" USING GIN ("tags");
