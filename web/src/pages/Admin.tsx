import { type FormEvent, useEffect, useState } from 'react'
import { Upload } from 'tus-js-client'
import { Link } from 'wouter'
import { ApiError, api, currentAccessToken, refreshSession } from '../api'
import { AdminNav } from './admin/AdminNav'

interface MediaStatus {
  titleId: string
  title: string
  status: string
  stage: string
  percent: number
  durationMs: number | null
  error: { code: string; message: string } | null
  tasks: {
    key: string
    kind: string
    rendition: string | null
    chunk: number | null
    state: string
    percent: number
  }[]
  renditions: { name: string; height: number | null; bandwidth: number }[]
}

const RECENT_KEY = 'reel.admin.uploads'
const recentIds = (): string[] => {
  try {
    const ids: unknown = JSON.parse(localStorage.getItem(RECENT_KEY) ?? '[]')
    return Array.isArray(ids) ? ids.filter((i): i is string => typeof i === 'string') : []
  } catch {
    return []
  }
}

/** Live pipeline state of one title: polls while it is still being made. */
function PipelineCard({ titleId }: { titleId: string }) {
  const [media, setMedia] = useState<MediaStatus>()
  const [error, setError] = useState<string>()
  useEffect(() => {
    let stop = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const poll = async () => {
      try {
        const next = await api<MediaStatus>('GET', `/api/v1/admin/titles/${titleId}/media`)
        if (stop) return
        setMedia(next)
        if (next.status !== 'available' && next.status !== 'failed') timer = setTimeout(poll, 1000)
      } catch (e) {
        if (!stop) setError(e instanceof ApiError ? e.message : 'Could not read the pipeline')
      }
    }
    poll()
    return () => {
      stop = true
      clearTimeout(timer)
    }
  }, [titleId])
  if (error) return <li className="pipeline error">{error}</li>
  if (!media) return <li className="pipeline muted">Loading…</li>
  const done = media.tasks.filter((t) => t.state === 'done').length
  return (
    <li className="pipeline" data-title-id={media.titleId} data-status={media.status}>
      <div className="row">
        <strong>{media.title}</strong>
        <span className={`status ${media.status}`}>{media.stage}</span>
        <span className="muted">
          {Math.round(media.percent)}% · {done}/{media.tasks.length} tasks
        </span>
      </div>
      <progress max={100} value={media.percent} aria-label={`Progress of ${media.title}`} />
      {media.error && (
        <p className="error">
          {media.error.code}: {media.error.message}
        </p>
      )}
      {media.status === 'available' && (
        <p className="muted">
          Ready: {media.renditions.map((r) => (r.height ? `${r.height}p` : r.name)).join(', ')}
        </p>
      )}
      <Link href={`/admin/titles/${media.titleId}`}>Edit details</Link>
    </li>
  )
}

const RATINGS = ['G', 'PG', 'PG-13', 'R', 'NC-17'] as const

export function AdminPage() {
  const [genres, setGenres] = useState<{ id: string; name: string }[]>([])
  useEffect(() => {
    api<{ genres: { id: string; name: string }[] }>('GET', '/api/v1/genres')
      .then((r) => setGenres(r.genres))
      .catch(() => setGenres([]))
  }, [])
  const [progress, setProgress] = useState<number>()
  const [error, setError] = useState<string>()
  const [titles, setTitles] = useState<string[]>(recentIds)

  function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const form = new FormData(e.currentTarget)
    const file = form.get('file')
    if (!(file instanceof File) || file.size === 0) {
      setError('Choose a video file to upload')
      return
    }
    setError(undefined)
    setProgress(0)
    const metadata: Record<string, string> = { title: String(form.get('title')), filename: file.name }
    // What the catalog needs to show the title; the pipeline itself creates it unrated and hidden.
    const catalog = {
      maturityRating: String(form.get('maturityRating') ?? 'NC-17'),
      genres: form.get('genre') ? [String(form.get('genre'))] : [],
      synopsis: String(form.get('synopsis') ?? ''),
      availability: form.get('everywhere') === 'on' ? [{ region: '*' }] : [],
    }
    const year = String(form.get('year') ?? '').trim()
    if (year) metadata.year = year
    const upload = new Upload(file, {
      endpoint: '/api/v1/uploads',
      chunkSize: 8 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000],
      metadata,
      // Resume an interrupted upload of the same file instead of starting over.
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      async onBeforeRequest(req) {
        if (!currentAccessToken()) await refreshSession()
        req.setHeader('authorization', `Bearer ${currentAccessToken() ?? ''}`)
      },
      onProgress: (sent, total) => setProgress((100 * sent) / total),
      onError: (err) => {
        const body = 'originalResponse' in err ? err.originalResponse?.getBody() : undefined
        let message = err.message
        try {
          message = (JSON.parse(body ?? '') as { error: { message: string } }).error.message
        } catch {}
        setError(message)
        setProgress(undefined)
      },
      onSuccess: async () => {
        const id = upload.url?.split('/').pop()
        setProgress(undefined)
        if (!id) return
        await api('PATCH', `/api/v1/admin/titles/${id}`, catalog).catch((err) =>
          setError(
            `Uploaded, but the catalog details were not saved: ${err instanceof ApiError ? err.message : err}`,
          ),
        )
        const next = [id, ...titles.filter((t) => t !== id)].slice(0, 20)
        localStorage.setItem(RECENT_KEY, JSON.stringify(next))
        setTitles(next)
      },
    })
    upload.findPreviousUploads().then((previous) => {
      const last = previous[0]
      if (last) upload.resumeFromPreviousUpload(last)
      upload.start()
    })
  }

  return (
    <section className="card wide">
      <h1>Admin</h1>
      <AdminNav />
      <h2>Upload a title</h2>
      <form className="admin-upload" onSubmit={submit}>
        <label>
          Title
          <input name="title" required maxLength={500} />
        </label>
        <label>
          Year
          <input name="year" type="number" min={1870} max={2100} />
        </label>
        <label>
          Maturity rating
          <select name="maturityRating" defaultValue="PG-13">
            {RATINGS.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <label>
          Genre
          <select name="genre" defaultValue="">
            <option value="">(none)</option>
            {genres.map((g) => (
              <option key={g.id} value={g.id}>
                {g.name}
              </option>
            ))}
          </select>
        </label>
        <label className="wide-field">
          Synopsis
          <input name="synopsis" maxLength={2000} />
        </label>
        <label className="inline">
          <input type="checkbox" name="everywhere" defaultChecked /> Available in every country
        </label>
        <label>
          Video file
          <input name="file" type="file" accept="video/*,.mkv,.mov,.mp4" required />
        </label>
        <button type="submit" className="primary" disabled={progress !== undefined}>
          Upload
        </button>
      </form>
      {progress !== undefined && (
        <p>
          Uploading… <progress max={100} value={progress} aria-label="Upload progress" />{' '}
          {progress.toFixed(0)}%
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <h2>Pipeline</h2>
      {titles.length === 0 ? (
        <p className="muted">Uploads appear here with their transcoding progress.</p>
      ) : (
        <ul className="list">
          {titles.map((id) => (
            <PipelineCard key={id} titleId={id} />
          ))}
        </ul>
      )}
    </section>
  )
}
