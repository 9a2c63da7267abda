import fs from 'node:fs'
import type { Command } from 'commander'
import { loadConfig } from '../platform/config.js'
import { type FeedRecord, type ImportReport, importFeedItems, readFeed } from '../services/catalog/feed.js'
import type { ImportOutcome } from '../services/catalog/service.js'
import { CliError, callApi, serverUrl } from './client.js'

/** Records per request: well under the API's limit, small enough for a smooth progress bar. */
const BATCH = 200
const SHOWN_REJECTIONS = 30

export type { ImportReport }

/** `reel catalog import FILE`: sends a feed to a running reel (REEL_URL) as an administrator. */
export function registerCatalogCommands(cli: Command): void {
  const catalog = cli.command('catalog').description('the catalog of titles')
  catalog
    .command('import')
    .description(
      'create or update titles from a CSV or JSON feed, by external id (run again: nothing changes)',
    )
    .argument('<file>', 'a .csv, .json, .ndjson or .jsonl feed (the IMDb-5000 CSV columns are understood)')
    .option('--regions <list>', 'where titles without availability are shown: country codes or *', '*')
    .option('--report <file>', 'write every rejected row, with the reason, to this CSV file')
    .action(async (file: string, opts: { regions: string; report?: string }) => {
      if (!fs.existsSync(file)) throw new CliError(`no such file: ${file}`)
      const config = loadConfig(process.env)
      const regions = opts.regions
        .split(',')
        .map((r) => r.trim())
        .filter(Boolean)
      const progress = progressBar()
      const started = Date.now()
      const report = await importFeed(file, regions, progress, (records) =>
        callApi<{ outcomes: ImportOutcome[] }>(config, 'POST', '/api/v1/admin/titles/import', { records }),
      )
      progress.done()
      const seconds = ((Date.now() - started) / 1000).toFixed(1)
      console.log(
        `imported ${file} into ${serverUrl(config)} in ${seconds} s: ${report.created} created, ${report.updated} updated, ` +
          `${report.unchanged} unchanged, ${report.rejected.length} rejected` +
          (report.repeated.length > 0
            ? ` (${report.repeated.length} rows repeated an earlier row’s id)`
            : ''),
      )
      for (const r of report.rejected.slice(0, SHOWN_REJECTIONS))
        console.log(`  line ${r.line}${r.externalId ? ` (${r.externalId})` : ''}: ${r.code}: ${r.reason}`)
      if (report.rejected.length > SHOWN_REJECTIONS)
        console.log(
          `  … and ${report.rejected.length - SHOWN_REJECTIONS} more${opts.report ? '' : ' (--report FILE lists all)'}`,
        )
      if (opts.report) {
        const quote = (s: string) => `"${s.replaceAll('"', '""')}"`
        const lines = report.rejected.map((r) =>
          [r.line, quote(r.externalId ?? ''), r.code, quote(r.reason)].join(','),
        )
        fs.writeFileSync(opts.report, ['line,externalId,code,reason', ...lines, ''].join('\n'))
        console.log(`rejected rows written to ${opts.report}`)
      }
    })
}

/** Reads the feed and sends it in batches; send is the API call (one batch of records). */
export async function importFeed(
  file: string,
  regions: string[],
  progress: { update(read: number, total: number, rows: number): void },
  send: (records: FeedRecord[]) => Promise<{ outcomes: ImportOutcome[] }>,
): Promise<ImportReport> {
  let bytes: [number, number] = [0, 1]
  const items = readFeed(file, {
    regions,
    onBytes: (read, total) => {
      bytes = [read, total]
    },
  })
  return importFeedItems(items, send, {
    batch: BATCH,
    onBatch: (rows) => progress.update(bytes[0], bytes[1], rows),
  })
}

function progressBar() {
  const tty = process.stderr.isTTY === true
  let shown = -1
  return {
    update(read: number, total: number, rows: number) {
      const percent = Math.min(100, Math.floor((read / Math.max(total, 1)) * 100))
      if (!tty || percent === shown) return
      shown = percent
      const width = 30
      const filled = Math.round((percent / 100) * width)
      process.stderr.write(
        `\rimporting [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${percent}% ${rows} rows`,
      )
    },
    done() {
      if (tty && shown >= 0) process.stderr.write('\n')
    },
  }
}
