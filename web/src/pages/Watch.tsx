import Hls, { type Level } from 'hls.js'
import { useCallback, useEffect, useRef, useState } from 'react'
import { Link, useLocation, useParams, useSearchParams } from 'wouter'
import type { Episode, TitleDetail } from '../../../src/services/catalog/service.js'
import type { Started as PlaybackStart } from '../../../src/services/playback/service.js'
import { ApiError, api, currentAccessToken } from '../api'
import { useSession } from '../session'

/** Seconds between the end of an episode and the next one starting by itself. */
export const NEXT_EPISODE_COUNTDOWN_S = 8

const clock = (ms: number) => {
  const s = Math.floor(ms / 1000)
  const h = Math.floor(s / 3600)
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, '0')
  const ss = String(s % 60).padStart(2, '0')
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`
}

/**
 * Reports position and state while playing: over a WebSocket when it opens, else by HTTP, every
 * heartbeatIntervalMs and on pause/seek; a final stop when the page is left.
 */
function useHeartbeats(video: HTMLVideoElement | null, start: PlaybackStart | undefined) {
  useEffect(() => {
    if (!video || !start) return
    const base = `/api/v1/playback/${start.sessionId}`
    let socket: WebSocket | undefined
    try {
      const url = new URL(`${base}/ws`, location.href)
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
      url.searchParams.set('access_token', currentAccessToken() ?? '')
      socket = new WebSocket(url)
      socket.onerror = () => {
        socket = undefined
      }
    } catch {
      socket = undefined
    }
    let rebuffers = 0
    const onWaiting = () => {
      rebuffers++
    }
    video.addEventListener('waiting', onWaiting)
    const beat = () => {
      const state = video.seeking
        ? 'seeking'
        : video.paused
          ? 'paused'
          : video.readyState < 3
            ? 'buffering'
            : 'playing'
      const body = { positionMs: Math.round(video.currentTime * 1000), state, rebuffers }
      if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(body))
      else api('POST', `${base}/heartbeat`, body).catch(() => undefined)
    }
    const timer = setInterval(beat, start.heartbeatIntervalMs)
    video.addEventListener('pause', beat)
    video.addEventListener('seeked', beat)
    const stop = () => {
      const positionMs = Math.round(video.currentTime * 1000)
      fetch(base, {
        method: 'DELETE',
        keepalive: true,
        headers: {
          authorization: `Bearer ${currentAccessToken() ?? ''}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ positionMs }),
      }).catch(() => undefined)
    }
    window.addEventListener('pagehide', stop)
    return () => {
      clearInterval(timer)
      video.removeEventListener('pause', beat)
      video.removeEventListener('seeked', beat)
      video.removeEventListener('waiting', onWaiting)
      window.removeEventListener('pagehide', stop)
      socket?.close()
      stop()
    }
  }, [video, start])
}

type Placed = { episode: Episode; season: number }

/**
 * What is playing, for its heading: the title, and for a series the episode now and the one after
 * it that can be played (in viewing order: season, then number).
 */
function usePlaying(titleId: string, episodeId: string | null | undefined, profileId: string) {
  const [playing, setPlaying] = useState<{ title: string; episode?: Placed; next?: Placed }>()
  useEffect(() => {
    if (!profileId) return
    api<TitleDetail>('GET', `/api/v1/titles/${titleId}?profileId=${profileId}`)
      .then((title) => {
        const order = title.seasons
          .toSorted((a, b) => a.number - b.number)
          .flatMap((s) =>
            s.episodes
              .toSorted((a, b) => a.number - b.number)
              .map((episode) => ({ episode, season: s.number })),
          )
        const at = episodeId ? order.findIndex((e) => e.episode.id === episodeId) : -1
        setPlaying({
          title: title.title,
          episode: order[at],
          next: at >= 0 ? order.slice(at + 1).find((e) => e.episode.mediaStatus === 'available') : undefined,
        })
      })
      .catch(() => setPlaying(undefined))
  }, [titleId, episodeId, profileId])
  return playing
}

const episodeName = (p: Placed) => `S${p.season}:E${p.episode.number} ${p.episode.name}`.trim()

/**
 * At the end of an episode: the next one starts after a countdown, unless the viewer cancels
 * (button or Escape) or starts it at once.
 */
function UpNext({ next, href }: { next: { episode: Episode; season: number }; href: string }) {
  const [, navigate] = useLocation()
  const [left, setLeft] = useState(NEXT_EPISODE_COUNTDOWN_S)
  const [cancelled, setCancelled] = useState(false)
  const playNow = useRef<HTMLButtonElement>(null)
  useEffect(() => playNow.current?.focus(), [])
  useEffect(() => {
    if (cancelled) return
    if (left <= 0) {
      navigate(href)
      return
    }
    const timer = setTimeout(() => setLeft(left - 1), 1000)
    return () => clearTimeout(timer)
  }, [left, cancelled, href, navigate])
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') setCancelled(true)
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [])
  const name = episodeName(next)
  return (
    <section className="up-next" aria-label="Up next" aria-live="polite">
      <p className="muted">Up next</p>
      <h2>{name}</h2>
      {!cancelled && <p role="timer">Next episode in {left} s</p>}
      <div className="row">
        <button ref={playNow} type="button" className="primary" onClick={() => navigate(href)}>
          ▶ Play next episode
        </button>
        {!cancelled && (
          <button type="button" onClick={() => setCancelled(true)}>
            Cancel
          </button>
        )}
      </div>
    </section>
  )
}

/** One player per title and episode: the next episode gets a fresh player (and playback session). */
export function WatchPage() {
  const { id } = useParams<{ id: string }>()
  const [params] = useSearchParams()
  const episodeId = params.get('episode') ?? undefined
  return <Player key={`${id}/${episodeId ?? ''}`} id={id} episodeId={episodeId} />
}

function Player({ id, episodeId }: { id: string; episodeId: string | undefined }) {
  const session = useSession()
  const videoRef = useRef<HTMLVideoElement>(null)
  const [start, setStart] = useState<PlaybackStart>()
  const [choice, setChoice] = useState<'resume' | 'over'>()
  const [levels, setLevels] = useState<Level[]>([])
  const [level, setLevel] = useState(-1)
  const [error, setError] = useState<{ message: string; devices?: string[] }>()
  const hlsRef = useRef<Hls>(null)
  const [ended, setEnded] = useState(false)
  // Asked once playback has started: a title this profile may not play has nothing to show.
  const playing = usePlaying(id, start?.episodeId, start ? (session.profile?.id ?? '') : '')
  const next = playing?.next

  useEffect(() => {
    if (!session.profile || !id) return
    api<PlaybackStart>('POST', '/api/v1/playback', { profileId: session.profile.id, titleId: id, episodeId })
      .then(setStart)
      .catch((e) => {
        if (e instanceof ApiError && e.code === 'stream_limit_reached') {
          const devices = Array.isArray(e.details?.devices)
            ? (e.details.devices as { device?: string }[]).map((d) => d.device ?? 'a device')
            : []
          setError({
            message: 'Your plan’s screens are all in use. Stop watching on another device first.',
            devices,
          })
        } else setError({ message: e instanceof ApiError ? e.message : 'This title cannot be played now' })
      })
  }, [id, episodeId, session.profile])

  const play = useCallback(
    (fromMs: number) => {
      const video = videoRef.current
      if (!video || !start) return
      const hls = new Hls({ startPosition: fromMs / 1000, capLevelToPlayerSize: false })
      hlsRef.current = hls
      hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
        setLevels(data.levels)
        video.play().catch(() => undefined)
      })
      hls.on(Hls.Events.ERROR, (_e, data) => {
        if (data.fatal) setError({ message: `Playback failed (${data.details}); try again` })
      })
      hls.loadSource(start.manifestUrl)
      hls.attachMedia(video)
      video.addEventListener('ended', () => setEnded(true))
      video.addEventListener('seeking', () => setEnded(false))
    },
    [start],
  )

  useEffect(() => () => hlsRef.current?.destroy(), [])
  useEffect(() => {
    if (start && choice === undefined && start.resumeAtMs < 5000) setChoice('over')
  }, [start, choice])
  useEffect(() => {
    if (start && choice) play(choice === 'resume' ? start.resumeAtMs : 0)
  }, [start, choice, play])

  useHeartbeats(choice ? videoRef.current : null, choice ? start : undefined)

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const video = videoRef.current
      const target = e.target instanceof HTMLElement ? e.target.tagName : ''
      if (!video || ['INPUT', 'SELECT', 'TEXTAREA'].includes(target)) return
      // Space on a focused button or link presses it (Resume, Play next episode…), not the video.
      if (e.key === ' ' && ['BUTTON', 'A'].includes(target)) return
      if (e.key === ' ') video.paused ? video.play() : video.pause()
      else if (e.key === 'ArrowRight') video.currentTime += 10
      else if (e.key === 'ArrowLeft') video.currentTime = Math.max(0, video.currentTime - 10)
      else if (e.key === 'ArrowUp') video.volume = Math.min(1, video.volume + 0.1)
      else if (e.key === 'ArrowDown') video.volume = Math.max(0, video.volume - 0.1)
      else if (e.key === 'f')
        document.fullscreenElement ? document.exitFullscreen() : video.requestFullscreen()
      else if (e.key === 'm') video.muted = !video.muted
      else return
      e.preventDefault()
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [])

  if (error)
    return (
      <section className="card" role="alert">
        <h1>Can’t play this now</h1>
        <p>{error.message}</p>
        {error.devices && error.devices.length > 0 && (
          <ul className="list">
            {error.devices.map((d, i) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: devices may share a name
              <li key={i}>{d}</li>
            ))}
          </ul>
        )}
        <Link href="/">Back to home</Link>
      </section>
    )

  return (
    <section className="player">
      {playing && (
        <h1 className="now-playing">
          {playing.title}
          {playing.episode && <span className="muted"> · {episodeName(playing.episode)}</span>}
        </h1>
      )}
      {/* biome-ignore lint/a11y/useMediaCaption: titles carry no caption tracks yet */}
      <video ref={videoRef} controls playsInline className="video" />
      {start && choice === undefined && (
        <div className="resume">
          <button type="button" className="primary" onClick={() => setChoice('resume')}>
            Resume from {clock(start.resumeAtMs)}
          </button>
          <button type="button" onClick={() => setChoice('over')}>
            Start over
          </button>
        </div>
      )}
      {ended && next && <UpNext next={next} href={`/watch/${id}?episode=${next.episode.id}`} />}
      {ended && !next && playing && (
        <p className="up-next">
          That was {playing.episode ? 'the last episode for now' : 'the end'}.{' '}
          <Link href={`/title/${id}`}>Back to {playing.title}</Link>
        </p>
      )}
      {levels.length > 0 && (
        <label className="inline quality">
          Quality
          <select
            value={level}
            onChange={(e) => {
              const next = Number(e.target.value)
              setLevel(next)
              if (hlsRef.current) hlsRef.current.currentLevel = next
            }}
          >
            <option value={-1}>Auto</option>
            {levels.map((l, i) => (
              <option key={l.url[0] ?? i} value={i}>
                {l.height}p
              </option>
            ))}
          </select>
        </label>
      )}
      <p className="muted">Space play/pause · ←/→ 10 s · ↑/↓ volume · f full screen · m mute</p>
    </section>
  )
}
