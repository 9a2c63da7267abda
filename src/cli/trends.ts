import { type Command, InvalidArgumentError } from 'commander'
import { createReel } from '../platform/app.js'
import { loadConfig } from '../platform/config.js'

/** A UTC time: a date (2026-11-20) or an ISO date-time; one without a zone is read as UTC. */
export function parseUtcTime(raw: string): number {
  const value = raw.trim()
  const m =
    /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2}(?:\.\d+)?))?)?)?(Z|[+-]\d{2}:?\d{2})?$/i.exec(
      value,
    )
  if (!m) throw new InvalidArgumentError(`"${raw}" is not a time such as 2026-11-20 or 2026-11-20T06:00Z`)
  const [, date = '', hh = '00', mm = '00', ss = '00', zone = 'Z'] = m
  const ms = Date.parse(`${date}T${hh}:${mm}:${ss}${zone.toUpperCase()}`)
  // Date.parse rolls 2026-02-30 over into March: the day must survive a round trip.
  const day = Date.parse(`${date}T00:00:00Z`)
  if (Number.isNaN(ms) || Number.isNaN(day) || new Date(day).toISOString().slice(0, 10) !== date)
    throw new InvalidArgumentError(`"${raw}" is not a valid time`)
  return ms
}

/** `reel trends …`: the batch side of the trends service, run on the server machine (talks to the engines). */
export function registerTrendsCommands(cli: Command): void {
  const trends = cli.command('trends').description('trends: batch jobs over the raw playback archive')
  trends
    .command('rollup')
    .description(
      'recompute from the raw archive the 5-minute and hourly counters of [from, to) and the daily counters (with all their hours) of the wholly closed days it touches; idempotent',
    )
    .requiredOption(
      '--from <time>',
      'start, UTC: 2026-11-20 or 2026-11-20T06:00Z (rounded down to the hour)',
      parseUtcTime,
    )
    .requiredOption('--to <time>', 'end, UTC, exclusive (rounded up to the hour)', parseUtcTime)
    .action(async (opts: { from: number; to: number }) => {
      const reel = await createReel({ config: { ...loadConfig(process.env), logLevel: 'warn' }, roles: [] })
      try {
        const report = await reel.use('trends').rollup(opts.from, opts.to)
        console.log(
          `rolled up ${report.from} … ${report.to}: ${report.events} events (${report.duplicates} repeats ignored), ${report.rows} counters`,
        )
        console.log(
          report.days.length > 0
            ? `daily counters recomputed for ${report.days.join(', ')}`
            : 'no day wholly closed in the range: daily counters left as they are',
        )
      } finally {
        await reel.stop()
      }
    })
}
