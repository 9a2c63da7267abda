/** Events the media service publishes, keyed by title id. */
export const TITLE_PUBLISHED = 'media.title.published'
export const TITLE_FAILED = 'media.title.failed'

export interface PublishedRendition {
  name: string
  kind: 'video' | 'audio'
  width: number | null
  height: number | null
  frameRate: number | null
  codecs: string
  bandwidth: number
  averageBandwidth: number
  playlistKey: string
  parts: number
}

/** What CDN edges (which blobs to fill) and playback (what to offer) need of a new title. */
export interface TitlePublished {
  titleId: string
  title: string
  durationMs: number
  /** Blob keys, relative to the blob store's root. */
  masterPlaylistKey: string
  /** Every blob of the title under this prefix: what an edge pre-fills. */
  prefix: string
  posterKey: string
  thumbnailsKey: string
  renditions: PublishedRendition[]
  bytes: number
}

export interface TitleFailed {
  titleId: string
  code: string
  message: string
}

/** The work queue of the pipeline's tasks, and the task types on it. */
export const TRANSCODE_QUEUE = 'media-transcode'
export const TASK_TYPE = 'media.task.run'

export interface TaskMessage {
  titleId: string
  key: string
}
