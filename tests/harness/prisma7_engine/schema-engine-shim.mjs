// Test harness only: a stand-in for the native `schema-engine` binary of Prisma 7.10.1.
//
// Why: Prisma 7's `migrate` commands always spawn the native binary, which the CLI downloads at
// start-up; these machines have no internet, and PRISMA_SCHEMA_ENGINE_BINARY=/bin/true makes every
// command "succeed" without doing anything. This file is what the tests point
// PRISMA_SCHEMA_ENGINE_BINARY at (tests/harness/prisma.py cli_env). It speaks the binary's interface:
//   schema-engine --datamodels <schema.prisma> --datasource '{"url": ...}'   JSON-RPC, one object per line on stdio
//   schema-engine --datasource '{"url": ...}' cli can-connect-to-database | create-database
// and hands every RPC to the schema engine compiled to WebAssembly that ships inside prisma 7.10.1
// (prisma/build/schema_engine_bg.wasm), connected to PostgreSQL through @prisma/adapter-pg 7.10.1.
// The wasm needs its wasm-bindgen JS glue, taken from the @prisma/schema-engine-wasm build that
// matches it. scripts/install-prisma-oracle.sh installs all of these; they are found in the
// node_modules above the working directory (the project's node_modules links to the oracle cache).
//
// What the suite uses: migrate deploy, status and resolve (the RPCs applyMigrations,
// diagnoseMigrationHistory, markMigrationApplied, markMigrationRolledBack, ...) and the
// connection check. There is no shadow database and no `migrate diff`/introspection support.
// Like 6.19.3's JS engine, the wasm engine splits a script on `;` and autocommits each piece; the
// native binary does not (see ../shared/notes/prisma7.md).
//
// SHIM_TRACE=<file> appends every RPC request and answer to <file> (debugging).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

// The engine commit of prisma 7.10.1's wasm; the CLI only prints it (`prisma version`).
const ENGINE_COMMIT = 'd1b3f377ca835d73fd50954a5e22128b9ebdd6b8'
const require = createRequire(import.meta.url)

function trace(label, value) {
  if (process.env.SHIM_TRACE) fs.appendFileSync(process.env.SHIM_TRACE, label + ' ' + JSON.stringify(value) + '\n')
}

function parseArgs(argv) {
  const args = { datamodels: [], datasource: null, cli: null, version: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--datamodels') args.datamodels.push(argv[++i])
    else if (arg === '--datasource') args.datasource = JSON.parse(argv[++i])
    else if (arg === '--version' || arg === '-V') args.version = true
    else if (arg === 'cli') { args.cli = argv[i + 1]; break }
    else if (arg.startsWith('--')) i++ // flags with a value we do not need (--extension-types, ...)
  }
  return args
}

// node_modules/<name> above the working directory, else in the default 7.10.1 oracle cache.
// (Not require.resolve: package "exports" maps hide the files we need.)
function modulePath(name) {
  for (let dir = process.cwd(); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name)
    if (fs.existsSync(candidate)) return candidate
    if (path.dirname(dir) === dir) break
  }
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache')
  const candidate = path.join(cache, 'prisma_ops_migrate', 'prisma-7.10.1', 'node_modules', name)
  if (fs.existsSync(candidate)) return candidate
  throw new Error(`schema-engine shim: no node_modules/${name} above ${process.cwd()} (run scripts/install-prisma-oracle.sh)`)
}

async function loadSchemaEngine() {
  const glue = await import(pathToFileURL(path.join(modulePath('@prisma/schema-engine-wasm'), 'schema_engine_bg.js')).href)
  const wasm = fs.readFileSync(path.join(modulePath('prisma'), 'build', 'schema_engine_bg.wasm'))
  const instance = new WebAssembly.Instance(new WebAssembly.Module(wasm), { './schema_engine_bg.js': glue })
  glue.__wbg_set_wasm(instance.exports)
  instance.exports.__wbindgen_start()
  return glue.SchemaEngine
}

// node-postgres settings for a Prisma URL: `?schema=` is Prisma's, it becomes the search_path.
function pgSettings(url) {
  const parsed = new URL(url)
  const schema = parsed.searchParams.get('schema') || undefined
  parsed.searchParams.delete('schema')
  // allowExitOnIdle: an idle pooled connection must not keep the process alive.
  const config = { connectionString: parsed.toString(), allowExitOnIdle: true }
  if (schema) config.options = `-c search_path="${schema}"`
  return { config, schema }
}

function adapterFactory(datasource) {
  const { PrismaPg } = require(modulePath('@prisma/adapter-pg'))
  const { bindMigrationAwareSqlAdapterFactory } = require(modulePath('@prisma/driver-adapter-utils'))
  const { config, schema } = pgSettings(datasource.url)
  const factory = new PrismaPg(config, schema ? { schema } : undefined)
  factory.connectToShadowDb = async () => {
    throw new Error('schema-engine shim: no shadow database support (the test suite does not use one)')
  }
  return bindMigrationAwareSqlAdapterFactory(factory)
}

// The CLI's connection check before migrate commands; create-database is what deploy does for a
// database that does not exist yet. Errors are logged the way the binary logs them.
async function cliCommand(datasource, command) {
  const pg = require(modulePath('pg'))
  const url = new URL(datasource.url)
  const database = decodeURIComponent(url.pathname.slice(1))
  const server = `${url.hostname}:${url.port || 5432}`
  const fail = (code, message) => {
    process.stderr.write(JSON.stringify({ level: 'ERROR', target: 'schema_engine::logger', fields: { error_code: code, message } }) + '\n')
    process.exit(1)
  }
  const { config } = pgSettings(datasource.url)
  try {
    if (command === 'can-connect-to-database') {
      const client = new pg.Client(config)
      await client.connect()
      await client.end()
    } else if (command === 'create-database') {
      const admin = new URL(config.connectionString)
      admin.pathname = '/postgres'
      const client = new pg.Client({ ...config, connectionString: admin.toString() })
      await client.connect()
      await client.query(`CREATE DATABASE "${database.replaceAll('"', '""')}"`)
      await client.end()
    } else {
      fail('P1000', `schema-engine shim: unsupported cli command ${command}`)
    }
  } catch (e) {
    if (e.code === '3D000') fail('P1003', `Database \`${database}\` does not exist on the database server at \`${server}\`.`)
    if (e.code === '28P01') fail('P1000', `Authentication failed against database server, the provided database credentials for \`${decodeURIComponent(url.username)}\` are not valid.`)
    if (e.code === 'ECONNREFUSED') fail('P1001', `Can't reach database server at \`${server}\``)
    fail('P1000', String(e.message || e))
  }
  process.stdout.write('{"status":"ok"}\n')
  process.exit(0)
}

// A JSON-RPC error the CLI understands: user-facing P-codes keep their code and meta.
function rpcError(id, e) {
  const data = { is_panic: e instanceof WebAssembly.RuntimeError, message: String((e && e.message) || e) }
  if (e && /^P\d{4}$/.test(e.code || '')) Object.assign(data, { error_code: e.code, meta: e.meta ?? {} })
  if (data.is_panic) data.error = { message: data.message }
  return { jsonrpc: '2.0', id, error: { code: 4466, message: 'An error happened. Check the data field for details.', data } }
}

// The binary answers `null`-returning RPCs with an empty object; the CLI expects that.
const EMPTY_RESULT = new Set(['markMigrationApplied', 'markMigrationRolledBack', 'dbExecute', 'reset', 'ensureConnectionValidity'])
const RENAMED = { getDatabaseVersion: 'version' }

async function serve(datasource, datamodelPaths) {
  const SchemaEngine = await loadSchemaEngine()
  const datamodels = datamodelPaths.map((p) => [p, fs.readFileSync(p, 'utf8')])
  const engine = await SchemaEngine.new({ datamodels: datamodels.length ? datamodels : undefined },
    () => {}, adapterFactory(datasource))
  const send = (message) => process.stdout.write(JSON.stringify(message) + '\n')
  let queue = Promise.resolve() // the binary answers one request at a time, in order
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  lines.on('line', (line) => {
    let message
    try { message = JSON.parse(line) } catch { return }
    if (!message || !message.method) return // not a request (an answer to a notification of ours)
    queue = queue.then(async () => {
      trace('<-', message)
      const method = RENAMED[message.method] || message.method
      let answer
      try {
        if (typeof engine[method] !== 'function') throw new Error(`schema-engine shim: unknown method ${message.method}`)
        let result = (await engine[method](message.params)) ?? null
        if (result === null && EMPTY_RESULT.has(method)) result = {}
        answer = { jsonrpc: '2.0', id: message.id, result }
      } catch (e) {
        answer = rpcError(message.id, e)
      }
      trace('->', answer)
      send(answer)
    })
  })
  // The CLI closes stdin when it is done; exit then, whatever timers the engine left armed.
  lines.on('close', async () => {
    await queue
    process.exit(0)
  })
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  if (args.version) {
    process.stdout.write(`schema-engine-cli ${ENGINE_COMMIT} (wasm shim)\n`)
    return
  }
  if (!args.datasource || !args.datasource.url) throw new Error('schema-engine shim: --datasource with a url is required')
  if (args.cli) await cliCommand(args.datasource, args.cli)
  else await serve(args.datasource, args.datamodels)
}

main().catch((e) => {
  process.stderr.write(JSON.stringify({ level: 'ERROR', target: 'schema_engine::logger', fields: { message: String((e && e.stack) || e) } }) + '\n')
  process.exit(1)
})
