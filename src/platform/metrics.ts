import { Counter, collectDefaultMetrics, Gauge, Histogram, type LabelValues, Registry } from 'prom-client'

/** The process's Prometheus registry, served at /metrics. */
export const registry = new Registry()
collectDefaultMetrics({ register: registry, prefix: 'reel_' })

/** Metrics are process-wide: asking twice for the same name returns the same metric. */
export function counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []) {
  const existing = registry.getSingleMetric(name)
  if (existing) return existing as Counter<L>
  return new Counter<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      for (const t of tallies.get(this) ?? []) t.flush()
    },
  })
}

/** A count taken on a hot path: a plain number until its counter is read. */
export interface Tally {
  inc(by?: number): void
  flush(): void
}

const tallies = new WeakMap<Counter<string>, Tally[]>()

/**
 * One label set of a counter, counted as a plain number and added to the counter whenever it is
 * read (a scrape of /metrics): prom-client's labelled inc() builds a key string per call, a cost
 * worth avoiding on paths taken several times per request.
 */
export function tally<L extends string>(metric: Counter<L>, labels: LabelValues<L>): Tally {
  let pending = 0
  const t: Tally = {
    inc(by = 1) {
      pending += by
    },
    flush() {
      if (pending === 0) return
      metric.inc(labels, pending)
      pending = 0
    },
  }
  const list = tallies.get(metric as Counter<string>) ?? []
  list.push(t)
  tallies.set(metric as Counter<string>, list)
  return t
}

export function gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []) {
  const existing = registry.getSingleMetric(name)
  if (existing) return existing as Gauge<L>
  return new Gauge<L>({ name, help, labelNames, registers: [registry] })
}

export function histogram<L extends string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
) {
  const existing = registry.getSingleMetric(name)
  if (existing) return existing as Histogram<L>
  return new Histogram<L>({ name, help, labelNames, buckets, registers: [registry] })
}
