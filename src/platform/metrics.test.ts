import { describe, expect, it } from 'vitest'
import { counter, registry, tally } from './metrics.js'

describe('tally', () => {
  it('adds its plain count to the counter whenever the counter is read, per label set', async () => {
    const c = counter('reel_test_tally_total', 'A counter for the tally test', ['result'])
    const hits = tally(c, { result: 'hit' })
    const misses = tally(c, { result: 'miss' })
    hits.inc()
    hits.inc(4)
    misses.inc()
    c.inc({ result: 'hit' })
    const text = await registry.getSingleMetricAsString('reel_test_tally_total')
    expect(text).toContain('reel_test_tally_total{result="hit"} 6')
    expect(text).toContain('reel_test_tally_total{result="miss"} 1')
    hits.inc()
    expect(await registry.metrics()).toContain('reel_test_tally_total{result="hit"} 7')
    // Read again with nothing new: the counts are not added twice.
    expect(await registry.getSingleMetricAsString('reel_test_tally_total')).toContain(
      'reel_test_tally_total{result="hit"} 7',
    )
  })
})
