// Fails unless PostgreSQL, Redis and NATS JetStream answer at the URLs the test suite will use.
import Redis from 'ioredis'
import { connect } from 'nats'
import pg from 'pg'

const checks = {
  PostgreSQL: async () => {
    const client = new pg.Client({
      connectionString: process.env.REEL_TEST_DATABASE_URL,
      connectionTimeoutMillis: 3000,
    })
    await client.connect()
    const { rows } = await client.query('select version() as v')
    await client.end()
    return rows[0].v.split(' on ')[0]
  },
  Redis: async () => {
    const versions = []
    for (const url of process.env.REEL_TEST_REDIS_URLS.split(',')) {
      const redis = new Redis(url, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0 })
      await redis.connect()
      versions.push(`${url} ${await redis.ping()}`)
      redis.disconnect()
    }
    return versions.join(', ')
  },
  'NATS JetStream': async () => {
    const nc = await connect({ servers: process.env.REEL_TEST_NATS_URL, timeout: 3000 })
    const jsm = await nc.jetstreamManager()
    const info = await jsm.getAccountInfo()
    await nc.close()
    return `${nc.info?.version ?? ''} JetStream streams=${info.streams}`
  },
}

let failed = false
for (const [name, check] of Object.entries(checks)) {
  try {
    console.log(`ok    ${name}: ${await check()}`)
  } catch (e) {
    failed = true
    console.error(`FAIL  ${name}: ${e instanceof Error ? e.message : e}`)
  }
}
if (failed) {
  console.error('CI needs PostgreSQL, Redis and NATS JetStream on localhost; see README "Tests".')
  process.exit(1)
}
