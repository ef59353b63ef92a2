-- CreateTable
CREATE TABLE "Click" (
    "id" BIGSERIAL NOT NULL,
    "linkId" UUID NOT NULL,
    "country" VARCHAR(2),
    "at" TIMESTAMPTZ(6) NOT NULL DEFAULT now(),

    CONSTRAINT "Click_pkey" PRIMARY KEY ("id")
);

-- AddForeignKey
ALTER TABLE "Click" ADD CONSTRAINT "Click_linkId_fkey" FOREIGN KEY ("linkId") REFERENCES "ShortLink"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Keep ShortLink.clicks in step with the Click rows (not expressible in schema.prisma)
CREATE OR REPLACE FUNCTION "count_click"() RETURNS TRIGGER AS $$
BEGIN
  UPDATE "ShortLink" SET "clicks" = "clicks" + 1 WHERE "id" = NEW."linkId";
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- CreateTrigger
CREATE TRIGGER "Click_count_click" AFTER INSERT ON "Click" FOR EACH ROW EXECUTE FUNCTION "count_click"();

-- CreateView
CREATE VIEW "LinkStats" AS
  SELECT l."id", l."domain", l."key", count(c."id") AS "total", max(c."at") AS "lastClick"
  FROM "ShortLink" l LEFT JOIN "Click" c ON c."linkId" = l."id"
  GROUP BY l."id", l."domain", l."key";
