import { type FormEvent, useMemo, useState } from 'react'
import type { FeedFormat, ImportReport } from '../../../../src/services/catalog/feed.js'
import { ApiError, currentAccessToken, refreshSession } from '../../api'
import { AdminNav } from './AdminNav'

/** The server's limit (IMPORT_FILE_MAX_BYTES): checked here too, to say so before sending. */
const MAX_BYTES = 32 * 1024 * 1024
const SHOWN_REJECTIONS = 200

type Line =
  | { type: 'started'; rows: number }
  | {
      type: 'progress'
      rows: number
      of: number
      created: number
      updated: number
      unchanged: number
      rejected: number
    }
  | { type: 'done'; report: ImportReport }
  | { type: 'error'; error: { code: string; message: string } }

type Phase =
  | { step: 'idle' }
  | { step: 'sending'; percent: number }
  | { step: 'importing'; rows: number; of: number; rejected: number }
  | { step: 'done'; report: ImportReport; file: string }
  | { step: 'failed'; message: string; report?: ImportReport }

const formatOf = (name: string): FeedFormat | undefined => {
  const ext = name.toLowerCase().split('.').pop()
  if (ext === 'csv') return 'csv'
  if (ext === 'json') return 'json'
  if (ext === 'ndjson' || ext === 'jsonl') return 'ndjson'
  return undefined
}

/**
 * POSTs the file and reads the NDJSON answer as it arrives (XMLHttpRequest: it reports the upload's
 * progress as well as the answer's). One silent token refresh on 401, like every other call.
 */
function sendImport(
  body: unknown,
  onUpload: (percent: number) => void,
  onLine: (line: Line) => void,
  retried = false,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', '/api/v1/admin/catalog/imports')
    xhr.setRequestHeader('content-type', 'application/json')
    xhr.setRequestHeader('x-reel-client', 'web')
    const token = currentAccessToken()
    if (token) xhr.setRequestHeader('authorization', `Bearer ${token}`)
    let read = 0
    const drain = () => {
      if (xhr.status !== 200) return
      const text = xhr.responseText
      let end = text.indexOf('\n', read)
      while (end >= 0) {
        const line = text.slice(read, end).trim()
        read = end + 1
        if (line) onLine(JSON.parse(line) as Line)
        end = text.indexOf('\n', read)
      }
    }
    xhr.upload.onprogress = (e) => e.lengthComputable && onUpload((100 * e.loaded) / e.total)
    xhr.onprogress = drain
    xhr.onerror = () =>
      reject(new ApiError(0, 'network_error', 'reel cannot be reached; check your connection'))
    xhr.onload = async () => {
      if (xhr.status === 200) {
        drain()
        resolve()
        return
      }
      if (xhr.status === 401 && !retried && (await refreshSession())) {
        sendImport(body, onUpload, onLine, true).then(resolve, reject)
        return
      }
      let error = { code: 'http_error', message: `Import failed (${xhr.status})` }
      try {
        error = (JSON.parse(xhr.responseText) as { error: typeof error }).error
      } catch {}
      reject(new ApiError(xhr.status, error.code, error.message))
    }
    xhr.send(JSON.stringify(body))
  })
}

/** Rejected rows as a CSV a person can open next to the feed. */
function rejectedCsv(report: ImportReport): string {
  const quote = (s: string) => `"${s.replaceAll('"', '""')}"`
  return [
    'line,externalId,code,reason',
    ...report.rejected.map((r) => [r.line, quote(r.externalId ?? ''), r.code, quote(r.reason)].join(',')),
    '',
  ].join('\n')
}

function Report({ report, file }: { report: ImportReport; file: string }) {
  const download = useMemo(
    () => URL.createObjectURL(new Blob([rejectedCsv(report)], { type: 'text/csv' })),
    [report],
  )
  return (
    <section aria-label="Import report" className="import-report">
      <h2>Report</h2>
      <p>
        <strong>{report.created}</strong> created · <strong>{report.updated}</strong> updated ·{' '}
        <strong>{report.unchanged}</strong> unchanged · <strong>{report.rejected.length}</strong> rejected
      </p>
      {report.repeated.length > 0 && (
        <p className="muted">
          {report.repeated.length} row(s) repeated an earlier row’s external id and updated it (first: line{' '}
          {report.repeated[0]?.line} repeats line {report.repeated[0]?.firstLine}).
        </p>
      )}
      {report.rejected.length > 0 && (
        <>
          <p>
            <a href={download} download={`${file.replace(/\.[^.]+$/, '')}-rejected.csv`}>
              Download the rejected rows (CSV)
            </a>
          </p>
          <table className="rejected">
            <caption className="muted">Rejected rows</caption>
            <thead>
              <tr>
                <th scope="col">Line</th>
                <th scope="col">External id</th>
                <th scope="col">Code</th>
                <th scope="col">Why</th>
              </tr>
            </thead>
            <tbody>
              {report.rejected.slice(0, SHOWN_REJECTIONS).map((r) => (
                <tr key={`${r.line}-${r.externalId}`}>
                  <td>{r.line}</td>
                  <td>{r.externalId}</td>
                  <td>{r.code}</td>
                  <td>{r.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {report.rejected.length > SHOWN_REJECTIONS && (
            <p className="muted">… and {report.rejected.length - SHOWN_REJECTIONS} more in the download.</p>
          )}
        </>
      )}
    </section>
  )
}

/** Import a catalog file (CSV or JSON, as `reel catalog import` reads them) with progress and a report. */
export function AdminImportPage() {
  const [phase, setPhase] = useState<Phase>({ step: 'idle' })

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const form = new FormData(e.currentTarget)
    const file = form.get('file')
    if (!(file instanceof File) || file.size === 0) {
      setPhase({ step: 'failed', message: 'Choose a non-empty .csv, .json, .ndjson or .jsonl file' })
      return
    }
    const chosen = String(form.get('format') ?? '')
    const format = (chosen || formatOf(file.name)) as FeedFormat | undefined
    if (!format) {
      setPhase({ step: 'failed', message: `${file.name}: say which format it is (CSV, JSON or NDJSON)` })
      return
    }
    if (file.size > MAX_BYTES) {
      setPhase({
        step: 'failed',
        message: `${file.name} is over ${MAX_BYTES / 1024 / 1024} MB; split it in parts`,
      })
      return
    }
    const regions = String(form.get('regions') ?? '*')
      .split(',')
      .map((r) => r.trim())
      .filter(Boolean)
    setPhase({ step: 'sending', percent: 0 })
    let report: ImportReport | undefined
    let failure: string | undefined
    let of = 0
    try {
      await sendImport(
        { format, content: await file.text(), ...(regions.length > 0 ? { regions } : {}) },
        (percent) => setPhase({ step: 'sending', percent }),
        (line) => {
          if (line.type === 'started') {
            of = line.rows
            setPhase({ step: 'importing', rows: 0, of, rejected: 0 })
          } else if (line.type === 'progress')
            setPhase({ step: 'importing', rows: line.rows, of: line.of, rejected: line.rejected })
          else if (line.type === 'done') report = line.report
          else
            failure = `The import stopped part-way (${line.error.code}): ${line.error.message}. Rows before it are imported.`
        },
      )
      if (report && !failure) setPhase({ step: 'done', report, file: file.name })
      else setPhase({ step: 'failed', message: failure ?? 'The import ended without a report; run it again' })
    } catch (err) {
      setPhase({
        step: 'failed',
        message: err instanceof ApiError ? err.message : 'The import failed; try again',
      })
    }
  }

  const busy = phase.step === 'sending' || phase.step === 'importing'
  return (
    <section className="card wide">
      <h1>Admin</h1>
      <AdminNav />
      <h2>Import a catalog file</h2>
      <p className="muted">
        CSV (columns by name; the IMDb-5000 columns are understood; lists separated by |), a JSON array of
        titles, or NDJSON. Titles are matched by external id: importing the same file again changes nothing.
      </p>
      <form className="import-form" onSubmit={submit}>
        <label>
          Catalog file
          <input
            name="file"
            type="file"
            accept=".csv,.json,.ndjson,.jsonl,text/csv,application/json"
            required
          />
        </label>
        <label>
          Format
          <select name="format" defaultValue="">
            <option value="">From the file name</option>
            <option value="csv">CSV</option>
            <option value="json">JSON</option>
            <option value="ndjson">NDJSON</option>
          </select>
        </label>
        <label>
          Shown in (rows without availability)
          <input name="regions" defaultValue="*" placeholder="* or US, GB" />
        </label>
        <button type="submit" className="primary" disabled={busy}>
          Import
        </button>
      </form>
      <div aria-live="polite">
        {phase.step === 'sending' && (
          <p>
            Sending the file… <progress max={100} value={phase.percent} aria-label="Sending the file" />{' '}
            {phase.percent.toFixed(0)}%
          </p>
        )}
        {phase.step === 'importing' && (
          <p>
            Importing… <progress max={phase.of || 1} value={phase.rows} aria-label="Import progress" />{' '}
            {phase.rows} of {phase.of} rows{phase.rejected > 0 ? ` · ${phase.rejected} rejected so far` : ''}
          </p>
        )}
      </div>
      {phase.step === 'failed' && (
        <p className="error" role="alert">
          {phase.message}
        </p>
      )}
      {phase.step === 'done' && <Report report={phase.report} file={phase.file} />}
    </section>
  )
}
