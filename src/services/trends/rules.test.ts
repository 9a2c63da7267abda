import { describe, expect, it } from 'vitest'
import { parseUtcTime } from '../../cli/trends.js'
import { partitionOf } from './archive.js'
import {
  bucketStart,
  HOUR,
  isoWeekName,
  MAX_WATCHED_PER_EVENT_MS,
  MINUTE,
  parseWeek,
  playSignal,
  seasonSubject,
  splitSubject,
  Tally,
  views,
  weekStart,
  windowSlices,
} from './rules.js'

const at = (iso: string) => Date.parse(iso)

describe('trends rules', () => {
  it('cuts time into UTC buckets, hh:59:59.999 and hh:00 apart', () => {
    expect(bucketStart(at('2026-11-26T10:59:59.999Z'), '5m')).toBe(at('2026-11-26T10:55:00Z'))
    expect(bucketStart(at('2026-11-26T11:00:00Z'), '5m')).toBe(at('2026-11-26T11:00:00Z'))
    expect(bucketStart(at('2026-11-26T10:59:59.999Z'), '1h')).toBe(at('2026-11-26T10:00:00Z'))
    expect(bucketStart(at('2026-11-26T23:59:59.999Z'), '1d')).toBe(at('2026-11-26T00:00:00Z'))
    expect(partitionOf(at('2026-11-26T07:59:59.999Z'))).toBe('events/playback/dt=2026-11-26/hr=07/')
    expect(partitionOf(at('2026-11-26T08:00:00Z'))).toBe('events/playback/dt=2026-11-26/hr=08/')
  })

  it('names calendar weeks Monday to Sunday as ISO 8601 does', () => {
    expect(weekStart(at('2026-11-29T23:59:59.999Z'))).toBe(at('2026-11-23T00:00:00Z'))
    expect(weekStart(at('2026-11-30T00:00:00Z'))).toBe(at('2026-11-30T00:00:00Z'))
    expect(isoWeekName(at('2026-11-23T00:00:00Z'))).toBe('2026-W48')
    // 2026-12-28 is in the last week of 2026; 2027-01-01 (a Friday) in it too.
    expect(isoWeekName(weekStart(at('2027-01-01T12:00:00Z')))).toBe('2026-W53')
    expect(isoWeekName(weekStart(at('2025-12-29T00:00:00Z')))).toBe('2026-W01')
    expect(parseWeek('2026-W48')).toBe(at('2026-11-23T00:00:00Z'))
    expect(parseWeek('2026-W01')).toBe(at('2025-12-29T00:00:00Z'))
    expect(parseWeek('2026-11-29')).toBe(at('2026-11-23T00:00:00Z'))
    for (const bad of ['2026-W00', '2026-W54', '2025-W53', '2026-02-30', '26-W01', 'W48', ''])
      expect(() => parseWeek(bad), bad).toThrow(
        expect.objectContaining({ status: 400, code: 'invalid_week' }),
      )
  })

  it('reads a playback event as plays and watched time of its movie, or of its series and season', () => {
    const base = { region: 'de', at: '2026-11-26T10:00:00Z', positionMs: 0, durationMs: 60_000 }
    expect(
      playSignal({
        id: 'a',
        type: 'playback.session.started',
        data: { ...base, titleType: 'movie', titleId: 'm' },
      }),
    ).toEqual({
      id: 'a',
      at: at('2026-11-26T10:00:00Z'),
      region: 'DE',
      plays: 1,
      watchedMs: 0,
      subjects: [{ kind: 'movie', id: 'm' }],
    })
    const episode = {
      ...base,
      titleType: 'episode',
      titleId: 'e',
      seriesId: 's',
      seasonId: 's1',
      watchedMs: 90_000.4,
    }
    expect(playSignal({ id: 'b', type: 'playback.session.heartbeat', data: episode })).toMatchObject({
      plays: 0,
      watchedMs: 90_000,
      subjects: [
        { kind: 'series', id: 's' },
        { kind: 'season', id: 's/s1' },
      ],
    })
    expect(
      playSignal({ id: 'c', type: 'playback.session.stopped', data: { ...episode, watchedMs: 1e12 } }),
    ).toMatchObject({
      watchedMs: MAX_WATCHED_PER_EVENT_MS,
    })
    expect(
      playSignal({
        id: 'd',
        type: 'playback.session.started',
        data: { ...base, region: 'Germany', titleType: 'movie', titleId: 'm' },
      }),
    ).toMatchObject({ region: null })
    for (const data of [
      null,
      'x',
      { ...base, titleType: 'movie' },
      { ...base, titleType: 'movie', titleId: 'a/b' },
      { ...base, at: 'soon', titleType: 'movie', titleId: 'm' },
    ])
      expect(playSignal({ id: 'x', type: 'playback.session.started', data })).toHaveProperty('rejected')
    expect(
      playSignal({
        id: 'x',
        type: 'playback.session.paused',
        data: { ...base, titleType: 'movie', titleId: 'm' },
      }),
    ).toHaveProperty('rejected')
    expect(splitSubject(seasonSubject('series-1', 'season-2'))).toEqual({
      titleId: 'series-1',
      seasonId: 'season-2',
    })
    expect(splitSubject('movie-1')).toEqual({ titleId: 'movie-1', seasonId: null })
  })

  it('tallies per region and worldwide; a region that is not one counts worldwide only', () => {
    const tally = new Tally()
    const signal = {
      id: 'a',
      at: at('2026-11-26T10:07:00Z'),
      plays: 1,
      watchedMs: 5,
      subjects: [{ kind: 'movie' as const, id: 'm' }],
    }
    tally.add({ ...signal, region: 'US' }, ['5m'])
    tally.add({ ...signal, id: 'b', region: 'US' }, ['5m'])
    tally.add({ ...signal, id: 'c', region: null }, ['5m'])
    expect(tally.rows().map((r) => [r.region, r.plays, r.watchedMs])).toEqual([
      ['US', 2, 10],
      ['world', 3, 15],
    ])
  })

  it('makes windows of buckets, an unsealed hour of its 5-minute buckets weighted as the hour', () => {
    const now = at('2026-11-26T12:02:00Z')
    const hour = windowSlices('hour', now, 0)
    expect(hour).toHaveLength(12)
    expect(hour[0]?.bucket).toBe(at('2026-11-26T11:05:00Z'))
    expect(hour[11]?.bucket).toBe(at('2026-11-26T12:00:00Z'))
    expect(hour.every((s, i) => i === 0 || s.weight > (hour[i - 1]?.weight ?? 0))).toBe(true)

    const sealedAll = windowSlices('day', now, now)
    expect(sealedAll).toHaveLength(24)
    expect(sealedAll.every((s) => s.grain === '1h')).toBe(true)
    const twoOpen = windowSlices('day', now, at('2026-11-26T11:00:00Z'))
    expect(twoOpen.filter((s) => s.grain === '1h')).toHaveLength(22)
    // 11:00–11:55 (12 buckets) and 12:00 (the only one begun).
    expect(twoOpen.filter((s) => s.grain === '5m')).toHaveLength(13)
    const weightOf = (slices: typeof twoOpen, bucket: number) =>
      slices.find((s) => s.bucket === bucket)?.weight
    expect(weightOf(twoOpen, at('2026-11-26T11:35:00Z'))).toBe(
      weightOf(sealedAll, at('2026-11-26T11:00:00Z')),
    )
    expect(windowSlices('week', now, now)).toHaveLength(168)
    expect(views(3 * HOUR, 90 * MINUTE)).toBe(2)
    expect(views(HOUR, 0)).toBe(0)
  })

  it('reads command-line times as UTC', () => {
    expect(parseUtcTime('2026-11-20')).toBe(at('2026-11-20T00:00:00Z'))
    expect(parseUtcTime('2026-11-20T06')).toBe(at('2026-11-20T06:00:00Z'))
    expect(parseUtcTime('2026-11-20T06:30')).toBe(at('2026-11-20T06:30:00Z'))
    expect(parseUtcTime('2026-11-20T06:30:00+02:00')).toBe(at('2026-11-20T04:30:00Z'))
    for (const bad of ['yesterday', '2026-13-01', '2026-02-30', '20261120', ''])
      expect(() => parseUtcTime(bad), bad).toThrow('not')
  })
})
