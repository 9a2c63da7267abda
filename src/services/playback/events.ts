/**
 * Events the playback service publishes, keyed by profile id (so one profile's events stay in
 * order). Trends, history and recommendations consume them; until the playback service lands, tests
 * and benchmarks publish events of exactly these shapes.
 */
export const PLAYBACK_STARTED = 'playback.session.started'
export const PLAYBACK_HEARTBEAT = 'playback.session.heartbeat'
export const PLAYBACK_STOPPED = 'playback.session.stopped'

export interface PlaybackEventBase {
  sessionId: string
  accountId: string
  profileId: string
  /** The playable title: a movie, or an episode. */
  titleId: string
  titleType: 'movie' | 'episode'
  /** For an episode: its series and season; null for a movie. */
  seriesId: string | null
  seasonId: string | null
  /** ISO 3166 alpha-2 country of the client (from the address→region table or a trusted header). */
  region: string
  /** Position in the title, ms. */
  positionMs: number
  /** Runtime of the playable title, ms. */
  durationMs: number
  /** ISO-8601 UTC time the client was at positionMs (the event time; buckets use it). */
  at: string
}

export interface PlaybackStarted extends PlaybackEventBase {
  /** Where playback began (a resume point, or 0). */
  resumeAtMs: number
  maxHeight: number
  device: string
}

export interface PlaybackHeartbeat extends PlaybackEventBase {
  state: 'playing' | 'paused' | 'buffering' | 'seeking'
  /** Media time actually watched since the previous heartbeat of this session (0 while paused). */
  watchedMs: number
  bitrate?: number
  bufferMs?: number
  rebuffers?: number
}

export interface PlaybackStopped extends PlaybackEventBase {
  /** Media time watched since the previous heartbeat of this session. */
  watchedMs: number
  /** The position reached the credits (≥ ~95 %): the title counts as watched. */
  completed: boolean
}
