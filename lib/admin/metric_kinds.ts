/**
 * The metric kinds of the registry (metrics.ts): counters, gauges and histograms with labels,
 * rendered in the text exposition format (version 0.0.4). Hand-written
 * because the request path needs only a Map lookup per update.
 *
 * With `server.workers` above 1 every worker thread keeps its own registry;
 * the main thread asks each for a {@linkcode MetricsSnapshot} (plain data)
 * and renders its own registry with the snapshots merged in, metric by
 * metric, by the metric's {@linkcode MergeRule}.
 */

export type Labels = Readonly<Record<string, string>>;

interface Series<T> {
  labels: Labels;
  value: T;
}

/**
 * How a metric's series from several threads combine: `sum` (counters,
 * histograms, and gauges that count things, such as requests in flight),
 * `max` (gauges every thread measures of the same things), `owner` (gauges
 * only the main thread knows, such as the routing table version: the
 * workers' values are ignored).
 */
export type MergeRule = "sum" | "max" | "owner";

/** A histogram series' value as plain data. */
export interface HistogramValue {
  /** Observations per bucket (not cumulative), in the order of the buckets. */
  counts: number[];
  sum: number;
  count: number;
}

/** One series as plain data. */
export interface SeriesData<T = number | HistogramValue> {
  readonly labels: Labels;
  readonly value: T;
}

/**
 * Every series of a registry, by metric name, as plain (structured-cloneable)
 * data: what a worker thread sends the main thread for `/metrics`.
 */
export type MetricsSnapshot = Readonly<Record<string, readonly SeriesData[]>>;

export abstract class Metric<T> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly merge: MergeRule;
  protected readonly series = new Map<string, Series<T>>();

  constructor(name: string, help: string, labelNames: readonly string[], merge: MergeRule) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    this.merge = merge;
  }

  protected entry(labels: Labels, initial: () => T): Series<T> {
    const key = this.#key(labels);
    let found = this.series.get(key);
    if (found === undefined) {
      const copy: Record<string, string> = {};
      for (const name of this.labelNames) copy[name] = labels[name] ?? "";
      found = { labels: copy, value: initial() };
      this.series.set(key, found);
    }
    return found;
  }

  #key(labels: Labels): string {
    let key = "";
    for (const name of this.labelNames) key += (labels[name] ?? "") + "\u0000";
    return key;
  }

  /** The series as plain data (copies: later updates do not show in it). */
  snapshot(): SeriesData<T>[] {
    return [...this.series.values()].map(({ labels, value }) => ({
      labels,
      value: this.copy(value),
    }));
  }

  /**
   * Renders this metric, with other threads' series of it merged in by its
   * rule (series with the same labels combine; the others are added).
   */
  render(others: readonly (readonly SeriesData<T>[])[] = []): string {
    if (others.length === 0 || this.merge === "owner") return this.renderSeries(this.series);
    const merged = new Map<string, Series<T>>();
    for (const [key, { labels, value }] of this.series) {
      merged.set(key, { labels, value: this.copy(value) });
    }
    for (const list of others) {
      for (const { labels, value } of list) {
        const key = this.#key(labels);
        const found = merged.get(key);
        if (found === undefined) merged.set(key, { labels, value: this.copy(value) });
        else found.value = this.combine(found.value, value);
      }
    }
    return this.renderSeries(merged);
  }

  protected abstract copy(value: T): T;
  protected abstract combine(into: T, from: T): T;
  protected abstract renderSeries(series: ReadonlyMap<string, Series<T>>): string;
}

/** A metric whose series each hold one number. */
abstract class NumberMetric extends Metric<number> {
  protected abstract readonly type: "counter" | "gauge";

  /** Adds `by` to the series with these labels. */
  protected addTo(labels: Labels, by: number): void {
    this.entry(labels, () => 0).value += by;
  }

  /** The current value for these labels (0 if never touched). */
  get(labels: Labels = {}): number {
    return this.entry(labels, () => 0).value;
  }

  protected copy(value: number): number {
    return value;
  }

  protected combine(into: number, from: number): number {
    return this.merge === "max" ? Math.max(into, from) : into + from;
  }

  protected renderSeries(series: ReadonlyMap<string, Series<number>>): string {
    let out = header(this, this.type);
    if (series.size === 0 && this.labelNames.length === 0) return out + `${this.name} 0\n`;
    for (const { labels, value } of series.values()) {
      out += `${this.name}${formatLabels(labels)} ${value}\n`;
    }
    return out;
  }
}

/** A monotonically increasing count. */
export class Counter extends NumberMetric {
  protected readonly type = "counter";

  constructor(name: string, help: string, labelNames: readonly string[]) {
    super(name, help, labelNames, "sum");
  }

  /** Adds `by` (default 1) to the series with these labels. */
  inc(labels: Labels = {}, by = 1): void {
    this.addTo(labels, by);
  }

  /** The series with these labels, to add to without a lookup each time (counters are never reset). */
  child(labels: Labels): NumberChild {
    return new NumberChild(this.entry(labels, () => 0));
  }
}

/** One series of a counter or gauge, held: updates need no label lookup. */
export class NumberChild {
  readonly #series: Series<number>;

  constructor(series: Series<number>) {
    this.#series = series;
  }

  /** Adds `by` (default 1; a gauge's may be negative). */
  add(by = 1): void {
    this.#series.value += by;
  }
}

/** A value that goes up and down. */
export class Gauge extends NumberMetric {
  protected readonly type = "gauge";

  /** `merge` says how worker threads' values combine (default `sum`). */
  constructor(name: string, help: string, labelNames: readonly string[], merge: MergeRule = "sum") {
    super(name, help, labelNames, merge);
  }

  /** Sets the series with these labels. */
  set(labels: Labels, value: number): void {
    this.entry(labels, () => 0).value = value;
  }

  /** Adds `by` (may be negative) to the series with these labels. */
  add(labels: Labels, by: number): void {
    this.addTo(labels, by);
  }

  /** Removes every series (before re-setting from a new snapshot); held children are not reset with it. */
  reset(): void {
    this.series.clear();
  }

  /** The series with these labels, held (for a gauge that is never reset). */
  child(labels: Labels): NumberChild {
    return new NumberChild(this.entry(labels, () => 0));
  }
}

/** Observations counted into cumulative buckets. */
export class Histogram extends Metric<HistogramValue> {
  readonly buckets: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: number[]) {
    super(name, help, labelNames, "sum");
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  /** Records one observation. */
  observe(labels: Labels, value: number): void {
    record(this.buckets, this.#entry(labels).value, value);
  }

  /** The series with these labels, to observe into without a lookup each time. */
  child(labels: Labels): HistogramChild {
    return new HistogramChild(this.buckets, this.#entry(labels).value);
  }

  #entry(labels: Labels): Series<HistogramValue> {
    return this.entry(labels, () => ({
      counts: new Array(this.buckets.length).fill(0),
      sum: 0,
      count: 0,
    }));
  }

  protected copy(value: HistogramValue): HistogramValue {
    return { counts: [...value.counts], sum: value.sum, count: value.count };
  }

  protected combine(into: HistogramValue, from: HistogramValue): HistogramValue {
    // Every thread's histogram of a name has the same buckets (one Metrics class).
    for (let i = 0; i < into.counts.length; i++) into.counts[i] += from.counts[i] ?? 0;
    into.sum += from.sum;
    into.count += from.count;
    return into;
  }

  protected renderSeries(series: ReadonlyMap<string, Series<HistogramValue>>): string {
    let out = header(this, "histogram");
    for (const { labels, value } of series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += value.counts[i];
        const le = { ...labels, le: String(this.buckets[i]) };
        out += `${this.name}_bucket${formatLabels(le)} ${cumulative}\n`;
      }
      out += `${this.name}_bucket${formatLabels({ ...labels, le: "+Inf" })} ${value.count}\n`;
      out += `${this.name}_sum${formatLabels(labels)} ${value.sum}\n`;
      out += `${this.name}_count${formatLabels(labels)} ${value.count}\n`;
    }
    return out;
  }
}

/** One series of a histogram, held. */
export class HistogramChild {
  readonly #buckets: readonly number[];
  readonly #value: HistogramValue;

  constructor(buckets: readonly number[], value: HistogramValue) {
    this.#buckets = buckets;
    this.#value = value;
  }

  /** Records one observation. */
  observe(value: number): void {
    record(this.#buckets, this.#value, value);
  }
}

function record(buckets: readonly number[], into: HistogramValue, value: number): void {
  for (let i = 0; i < buckets.length; i++) {
    if (value <= buckets[i]) {
      into.counts[i]++;
      break;
    }
  }
  into.sum += value;
  into.count++;
}

function header(metric: Metric<unknown>, type: string): string {
  return `# HELP ${metric.name} ${metric.help}\n# TYPE ${metric.name} ${type}\n`;
}

function formatLabels(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return "";
  return "{" + keys.map((key) => `${key}="${escapeLabel(labels[key])}"`).join(",") + "}";
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

/** Two lists of one metric's series, summed by labels. */
export function sumSeries(
  metric: Metric<number | HistogramValue>,
  a: readonly SeriesData[],
  b: readonly SeriesData[],
): SeriesData[] {
  const key = (labels: Labels) =>
    metric.labelNames.map((name) => labels[name] ?? "").join("\u0000");
  const out = new Map<string, SeriesData>();
  for (const series of [...a, ...b]) {
    const k = key(series.labels);
    const found = out.get(k);
    if (found === undefined) {
      out.set(k, {
        labels: series.labels,
        value: typeof series.value === "number"
          ? series.value
          : { ...series.value, counts: [...series.value.counts] },
      });
    } else if (typeof found.value === "number" && typeof series.value === "number") {
      out.set(k, { labels: found.labels, value: found.value + series.value });
    } else if (typeof found.value !== "number" && typeof series.value !== "number") {
      const value = found.value;
      series.value.counts.forEach((n, i) => value.counts[i] = (value.counts[i] ?? 0) + n);
      value.sum += series.value.sum;
      value.count += series.value.count;
    }
  }
  return [...out.values()];
}
