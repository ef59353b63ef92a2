// Test-harness config: the offline Prisma CLI runs its JS/wasm schema engine through adapter-pg
// (the native engine binary cannot be downloaded here). See ../shared/notes/offline-prisma.md.
import { defineConfig } from 'prisma/config'
import { PrismaPg } from '@prisma/adapter-pg'

// adapter-pg 6.19.3 cannot map the `name` type (oid 19) the engine's catalog queries return:
// present such columns as text (oid 25) before the adapter maps column types.
function patchNameType(adapter: any): any {
  let proto = Object.getPrototypeOf(adapter)
  while (proto && !Object.prototype.hasOwnProperty.call(proto, 'performIO')) proto = Object.getPrototypeOf(proto)
  if (proto && !proto.__nameTypePatched) {
    const original = proto.performIO
    proto.performIO = async function (...args: any[]) {
      const result = await original.apply(this, args)
      for (const f of result?.fields ?? []) if (f.dataTypeID === 19) f.dataTypeID = 25
      return result
    }
    proto.__nameTypePatched = true
  }
  return adapter
}

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  adapter: async () => {
    // The native engine sets search_path to the URL's ?schema=; adapter-pg needs to be told.
    const schema = new URL(process.env.DATABASE_URL ?? '').searchParams.get('schema') ?? undefined
    // allowExitOnIdle: idle pooled connections must not keep the CLI alive for pg's 10 s idle timeout.
    const config: any = { connectionString: process.env.DATABASE_URL, allowExitOnIdle: true }
    if (schema) config.options = `-c search_path="${schema}"`
    const factory: any = new PrismaPg(config, schema ? { schema } : undefined)
    for (const method of ['connect', 'connectToShadowDb']) {
      const original = factory[method]?.bind(factory)
      if (original) factory[method] = async (...args: any[]) => patchNameType(await original(...args))
    }
    return factory
  },
})
