import { describe, expect, it } from 'vitest'
import { ConfigError, configTable, loadConfig, portKinds, variables } from './config.js'

describe('configuration', () => {
  it('defaults to the all-in-one shape on embedded adapters', () => {
    const config = loadConfig({})
    expect(config.port).toBe(8080)
    expect(config.dataDir.endsWith('/data')).toBe(true)
    expect(config.bodyLimit).toBe(1024 * 1024)
    expect(portKinds(config)).toEqual({ db: 'sqlite', cache: 'memory', bus: 'memory', blobs: 'local' })
  })

  it('switches each port independently', () => {
    expect(portKinds(loadConfig({ REEL_DATABASE_URL: 'postgres://u@h/db' }))).toEqual({
      db: 'postgres',
      cache: 'memory',
      bus: 'memory',
      blobs: 'local',
    })
    expect(portKinds(loadConfig({ REEL_REDIS_URLS: 'redis://a:6379, redis://b:6379' })).cache).toBe('redis')
    expect(loadConfig({ REEL_REDIS_URLS: 'redis://a:6379, redis://b:6379' }).redisUrls).toEqual([
      'redis://a:6379',
      'redis://b:6379',
    ])
    expect(portKinds(loadConfig({ REEL_NATS_URL: 'nats://127.0.0.1:4222' })).bus).toBe('jetstream')
    expect(portKinds(loadConfig({ REEL_S3_BUCKET: 'media' })).blobs).toBe('s3')
  })

  it('parses sizes and booleans', () => {
    expect(loadConfig({ REEL_BODY_LIMIT: '512kb' }).bodyLimit).toBe(512 * 1024)
    expect(loadConfig({ REEL_BODY_LIMIT: '10MB' }).bodyLimit).toBe(10 * 1024 * 1024)
    expect(loadConfig({ REEL_S3_FORCE_PATH_STYLE: 'no' }).s3ForcePathStyle).toBe(false)
  })

  it.each([
    ['REEL_PORT', 'abc'],
    ['REEL_PORT', '70000'],
    ['REEL_PORT', '80.5'],
    ['REEL_BODY_LIMIT', 'lots'],
    ['REEL_LOG_LEVEL', 'loud'],
    ['REEL_DATABASE_URL', 'mysql://localhost/x'],
    ['REEL_DATABASE_URL', 'not a url'],
    ['REEL_REDIS_URLS', 'redis://ok:1,http://bad'],
    ['REEL_NATS_URL', 'localhost:4222'],
    ['REEL_S3_FORCE_PATH_STYLE', 'maybe'],
    ['REEL_DATABASE_SCHEMA', 'public; drop table x'],
    ['REEL_PORTT', '8080'],
    ['REEL_BUS_RETENTION_INTERVAL_S', '0'],
    ['REEL_BUS_RETENTION_INTERVAL_S', 'hourly'],
    ['REEL_BUS_RETENTION_DAYS', '-1'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError)
    expect(() => loadConfig({ [name]: value })).toThrow(name)
  })

  it('documents every variable in the configuration table', () => {
    const table = configTable()
    for (const v of Object.values(variables)) expect(table).toContain(`\`${v.env}\``)
  })
})

describe('the README', () => {
  it('documents every variable', async () => {
    const fs = await import('node:fs')
    const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    for (const v of Object.values(variables)) expect(readme).toContain(`| \`${v.env}\``)
  })
})
