import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/** The process's Prometheus registry, served at /metrics. */
export const registry = new Registry()
collectDefaultMetrics({ register: registry, prefix: 'reel_' })

/** Metrics are process-wide: asking twice for the same name returns the same metric. */
export function counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []) {
  const existing = registry.getSingleMetric(name)
  if (existing) return existing as Counter<L>
  return new Counter<L>({ name, help, labelNames, registers: [registry] })
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
