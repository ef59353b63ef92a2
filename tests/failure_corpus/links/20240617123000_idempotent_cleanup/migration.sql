-- Written to be re-runnable after a partial deploy on one region
DROP INDEX IF EXISTS "ShortLink_lower_key_key";

-- AlterTable
ALTER TABLE "ShortLink" ADD COLUMN IF NOT EXISTS "expiresAt" TIMESTAMP(3);

-- CreateTable
CREATE TABLE IF NOT EXISTS "Webhook" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "workspaceId" UUID NOT NULL,
    "url" TEXT NOT NULL,
    "triggers" TEXT[],
    "secret" TEXT NOT NULL DEFAULT encode(gen_random_bytes(16), 'hex'),

    CONSTRAINT "Webhook_pkey" PRIMARY KEY ("id")
);

-- AddForeignKey (only once)
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'Webhook_workspaceId_fkey') THEN
    ALTER TABLE "Webhook" ADD CONSTRAINT "Webhook_workspaceId_fkey" FOREIGN KEY ("workspaceId") REFERENCES "Workspace"("id") ON DELETE CASCADE ON UPDATE CASCADE;
  END IF;
END $$;

-- CreateIndex
CREATE UNIQUE INDEX IF NOT EXISTS "ShortLink_key_domain_ci_key" ON "ShortLink"(lower("key"), "domain");

-- AlterTable
ALTER TABLE "Workspace" ALTER COLUMN "settings" SET DEFAULT '{"branding": false}';
