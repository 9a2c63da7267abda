import { describe, expect, it } from 'vitest'
import { APPLE_LADDER, chunkPlan, DEFAULT_LADDER, parseLadder, renditionLadder } from './ladder.js'
import {
  avcCodecString,
  masterPlaylist,
  measureBandwidth,
  mediaPlaylist,
  targetDuration,
  thumbnailsVtt,
} from './playlists.js'

const ladder = parseLadder(DEFAULT_LADDER)
const sizes = (source: { width: number; height: number; frameRate: number }) =>
  renditionLadder(source, ladder).map((r) => `${r.width}x${r.height}`)

describe('the rendition ladder', () => {
  it('takes every rung up to a 1080p source, highest first', () => {
    expect(sizes({ width: 1920, height: 1080, frameRate: 24 })).toEqual([
      '1920x1080',
      '1280x720',
      '960x540',
      '640x360',
      '416x234',
    ])
  })

  it('never goes above the source, and keeps its aspect ratio (4:3, portrait, scope)', () => {
    expect(sizes({ width: 640, height: 480, frameRate: 30 })).toEqual(['480x360', '312x234'])
    expect(sizes({ width: 1080, height: 1920, frameRate: 30 })).toEqual([
      '1080x1920',
      '720x1280',
      '540x960',
      '360x640',
      '234x416',
    ])
    expect(sizes({ width: 1998, height: 1080, frameRate: 24 })[0]).toBe('1920x1038')
    // Scope (2.39:1) takes the rungs of its width: 1280 wide fits the 720p frame.
    expect(sizes({ width: 1280, height: 536, frameRate: 24 })).toEqual([
      '1280x536',
      '960x402',
      '640x268',
      '416x174',
    ])
  })

  it('gives a source smaller than every rung one rendition at its own size', () => {
    const [only, ...rest] = renditionLadder({ width: 320, height: 180, frameRate: 25 }, ladder)
    expect(rest).toEqual([])
    expect(only).toMatchObject({ width: 320, height: 180, kbps: 145, name: '180p-145k' })
  })

  it('keeps the frame rate up to 60 and caps faster sources', () => {
    expect(
      renditionLadder({ width: 1920, height: 1080, frameRate: 50 }, ladder)[0]?.maxFrameRate,
    ).toBeUndefined()
    expect(renditionLadder({ width: 1920, height: 1080, frameRate: 120 }, ladder)[0]?.maxFrameRate).toBe(60)
  })

  it('parses a subset of Apple’s rungs and names the unknown ones', () => {
    expect(parseLadder('720p-3000k, 234p-145k').map((r) => r.name)).toEqual(['234p-145k', '720p-3000k'])
    expect(() => parseLadder('720p-3000k,2160p-16000k')).toThrow(/unknown rung 2160p-16000k/)
    expect(APPLE_LADDER).toHaveLength(9)
  })
})

describe('the chunk plan', () => {
  it('cuts on multiples of the segment duration, the last chunk open-ended', () => {
    expect(chunkPlan(13, 6)).toEqual([
      { index: 0, start: 0, end: 6 },
      { index: 1, start: 6, end: 12 },
      { index: 2, start: 12, end: undefined },
    ])
    expect(chunkPlan(125, 60).map((c) => c.start)).toEqual([0, 60, 120])
  })

  it('folds a remainder under a second into the chunk before, and rounds the chunk to segments', () => {
    expect(chunkPlan(12.5, 6)).toEqual([
      { index: 0, start: 0, end: 6 },
      { index: 1, start: 6, end: undefined },
    ])
    expect(chunkPlan(3, 60)).toEqual([{ index: 0, start: 0, end: undefined }])
    expect(chunkPlan(30, 10).map((c) => c.start)).toEqual([0, 12, 24])
  })
})

describe('playlists', () => {
  it('sets the target duration so every EXTINF rounds within it', () => {
    expect(targetDuration([6.006, 6.006, 1.2])).toBe(6)
    expect(targetDuration([6.5, 2])).toBe(7)
    expect(targetDuration([0.4])).toBe(1)
  })

  it('writes a VOD media playlist with its init segment', () => {
    const text = mediaPlaylist('init.mp4', [
      { uri: '00000.m4s', duration: 6 },
      { uri: '00001.m4s', duration: 1.5 },
    ])
    expect(text).toContain('#EXT-X-VERSION:7\n')
    expect(text).toContain('#EXT-X-PLAYLIST-TYPE:VOD\n')
    expect(text).toContain('#EXT-X-MAP:URI="init.mp4"\n')
    expect(text.trim().endsWith('#EXT-X-ENDLIST')).toBe(true)
  })

  it('writes the master playlist with an audio group only when there is audio', () => {
    const variant = {
      uri: '720p/index.m3u8',
      bandwidth: 3_300_000,
      averageBandwidth: 3_000_000,
      codecs: 'avc1.64001f,mp4a.40.2',
      width: 1280,
      height: 720,
      frameRate: 23.976,
    }
    const withAudio = masterPlaylist([variant], { uri: 'audio/index.m3u8', channels: 2 })
    expect(withAudio).toContain('FRAME-RATE=23.976,AUDIO="audio"')
    expect(withAudio).toContain('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"')
    expect(masterPlaylist([variant], undefined)).not.toContain('AUDIO')
  })

  it('measures peak and average bits per second from the segments', () => {
    expect(
      measureBandwidth([
        { duration: 6, bytes: 600_000 },
        { duration: 6, bytes: 1_200_000 },
        { duration: 2, bytes: 100_000 },
      ]),
    ).toEqual({ peak: 1_600_000, average: Math.ceil((1_900_000 * 8) / 14) })
  })

  it('reads the codec string from the avcC box', () => {
    const init = Buffer.concat([
      Buffer.from('....ftypisom....avcC'),
      Buffer.from([1, 0x64, 0x00, 0x28, 0xff]),
    ])
    expect(avcCodecString(init)).toBe('avc1.640028')
    expect(() => avcCodecString(Buffer.from('no box here'))).toThrow(/avcC/)
  })

  it('maps each stretch of the title to its tile in the sprite sheets', () => {
    const vtt = thumbnailsVtt({
      duration: 25,
      interval: 10,
      sprites: ['sprite-001.jpg'],
      width: 160,
      height: 90,
      columns: 2,
      rows: 2,
    })
    expect(vtt).toBe(
      [
        'WEBVTT',
        '',
        '00:00:00.000 --> 00:00:10.000',
        'sprite-001.jpg#xywh=0,0,160,90',
        '',
        '00:00:10.000 --> 00:00:20.000',
        'sprite-001.jpg#xywh=160,0,160,90',
        '',
        '00:00:20.000 --> 00:00:25.000',
        'sprite-001.jpg#xywh=0,90,160,90',
        '',
      ].join('\n'),
    )
  })
})
